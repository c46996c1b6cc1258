"""The image datasets clrelu knows, found in torchvision's folder layout or downloaded there."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clrelu.data.download import DownloadFailed, download
from clrelu.data.idx import read_idx
from clrelu.errors import DataError, choices_error

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the data root, where to fetch it and what its classes are called."""

    folder: str
    mirrors: tuple[str, ...]
    md5: tuple[str, str, str, str]  # official md5 of the four .gz files, in the order of FILES
    class_names: tuple[str, ...]
    n_train: int = 60000  # the official counts and image side: a file declaring more is refused unread
    n_test: int = 10000
    side: int = 28


DATASETS = {
    "mnist": DatasetSpec(
        folder="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        md5=(
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        class_names=tuple(str(d) for d in range(10)),
    ),
    "fmnist": DatasetSpec(
        folder="FashionMNIST",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        md5=(
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"),
    ),
}


@dataclass(frozen=True)
class ImageData:
    """A whole dataset in memory: images flattened to uint8 rows, labels as int64, and the images' shape."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (channels, height, width) of an image before flattening
    source: str = ""  # where the data was read from (a folder), for error messages

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / f"{name}.gz", raw / name):
        if candidate.is_file():
            return candidate
    return None


def _fetch_missing(spec: DatasetSpec, raw: Path) -> None:
    for name, md5 in zip(FILES, spec.md5):
        if _find(raw, name) is None:
            try:
                download([m + f"{name}.gz" for m in spec.mirrors], raw / f"{name}.gz", md5)
            except (DownloadFailed, OSError) as exc:
                wanted = ", ".join(f"{n}.gz" for n in FILES)
                raise DataError(
                    f"{spec.folder} is not in {raw} and could not be downloaded ({exc}); "
                    f"put {wanted} in {raw}, or point data.root (or $CLRELU_DATA) at a folder that has them"
                ) from None


def _images(path: Path, most: int, side: int) -> np.ndarray:
    """The images of an IDX file, N x rows x cols, N from 1 to `most` images of at most `side` x `side`."""
    images = read_idx(path, max_bytes=most * side * side)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 images of shape N x rows x cols, "
                        f"found {images.dtype} of shape {images.shape}")
    if not len(images) or not images.shape[1] * images.shape[2]:
        raise DataError(f"{path}: holds no image ({'x'.join(map(str, images.shape))}); a dataset needs at least one")
    return images


def _labels(path: Path, n_images: int, n_classes: int, most: int) -> np.ndarray:
    labels = read_idx(path, max_bytes=most)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{path}: expected a uint8 label vector, found {labels.dtype} of shape {labels.shape}")
    if len(labels) != n_images:
        raise DataError(f"{path}: holds {len(labels)} labels for {n_images} images")
    if len(labels) and labels.max() >= n_classes:
        raise DataError(f"{path}: label {labels.max()} is outside 0..{n_classes - 1}")
    return labels


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a known dataset (config key `stream.dataset`)."""
    if name not in DATASETS:
        raise choices_error("stream.dataset", name, DATASETS)
    return DATASETS[name]


def load_dataset(name: str, root: str | Path) -> ImageData:
    """Load a known dataset from `<root>/<Folder>/raw`, downloading missing files first."""
    spec = dataset_spec(name)
    raw = Path(root).expanduser().resolve() / spec.folder / "raw"
    _fetch_missing(spec, raw)
    paths = tuple(_find(raw, file) for file in FILES)
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _decode(spec, paths, stamps)


@functools.lru_cache(maxsize=4)
def _decode(spec: DatasetSpec, paths: tuple[Path, ...], stamps: tuple) -> ImageData:
    """Decode the four files; `stamps` (mtime, size) keys the cache so a changed file is read again."""
    n_classes = len(spec.class_names)
    x_train, x_test = _images(paths[0], spec.n_train, spec.side), _images(paths[2], spec.n_test, spec.side)
    y_train = _labels(paths[1], len(x_train), n_classes, spec.n_train)
    y_test = _labels(paths[3], len(x_test), n_classes, spec.n_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{paths[2]}: images are {x_test.shape[1]} x {x_test.shape[2]} pixels, the training images "
                        f"{x_train.shape[1]} x {x_train.shape[2]}")
    return ImageData(
        x_train=torch.from_numpy(x_train.reshape(len(x_train), -1)),
        y_train=torch.from_numpy(y_train.astype(np.int64)),
        x_test=torch.from_numpy(x_test.reshape(len(x_test), -1)),
        y_test=torch.from_numpy(y_test.astype(np.int64)),
        class_names=spec.class_names,
        image_shape=(1, *x_train.shape[1:]),
        source=str(paths[0].parent),
    )
