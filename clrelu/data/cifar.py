"""CIFAR-10 and CIFAR-100 in torchvision's folder layout, read without running code from the files.

CIFAR's python-version batch files are pickles, and unpickling runs whatever callables a file names.
torchvision's own CIFAR classes unpickle after comparing each file's md5 with the official release;
clrelu reads the files itself with an unpickler that resolves nothing but the few numpy names a
uint8 array needs, so a hostile file is refused with one line naming it, whatever its md5. Local
files are then checked by structure (shapes, dtype, label counts and range), as MNIST's are, so any
faithful copy works. Sizes are checked before memory is spent: a file larger than its dataset's batches
can be is refused unread, and an array a pickle declares must fit in the bytes the file holds (a small
file cannot make clrelu allocate a huge one). Missing files are downloaded with torchvision's integrity-checked download (the
md5 of the official archive) into a temporary folder and moved into place.
"""

from __future__ import annotations

import functools
import io
import math
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clrelu.data.datasets import ImageData
from clrelu.data.regular import open_regular
from clrelu.data.vision import import_torchvision
from clrelu.errors import DataError

IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class CifarSpec:
    """Which torchvision dataset class describes the files, and where the labels and class names are."""

    torchvision_class: str
    label_key: str
    n_classes: int
    batch_images: int  # the most images one official file holds

    @property
    def file_limit(self) -> int:
        """The most bytes a file of this dataset can hold: its images, and generously its labels, names and
        the pickle's overhead."""
        return self.batch_images * (int(np.prod(IMAGE_SHAPE)) + 512) + (1 << 20)


CIFAR = {
    "cifar10": CifarSpec("CIFAR10", label_key="labels", n_classes=10, batch_images=10000),
    "cifar100": CifarSpec("CIFAR100", label_key="fine_labels", n_classes=100, batch_images=50000),
}


class Refused(pickle.UnpicklingError):
    """A pickle named a callable that a CIFAR file never needs."""


class Oversized(pickle.UnpicklingError):
    """A pickle declared an array larger than the file that holds it."""


class _NdarrayName:
    """What the pickle name numpy.ndarray resolves to: the type argument `_reconstruct` expects, which a pickle
    cannot call (numpy.ndarray(shape, dtype) would allocate an uninitialised array of any size)."""

    def __new__(cls, *args, **kwargs):
        raise Refused("numpy.ndarray directly")


def _latin1_encode(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes at protocol 2; only the latin1 codec it uses."""
    if encoding != "latin1" or not isinstance(text, str):
        raise Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# Everything a pickled numpy array needs, under the module names numpy 1 (CIFAR's own files) and numpy 2
# write, at every pickle protocol (5 passes the array's bytes to `_frombuffer`); nothing else resolves.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler for dictionaries of numpy arrays, lists, numbers and strings: no other callable resolves, and
    no array larger than `limit` bytes (the file's size) is made."""

    def __init__(self, file, limit: int, **options):
        super().__init__(file, **options)
        self.limit = limit

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise Refused(f"{module}.{name}")
        found = ALLOWED[(module, name)]
        return self._reconstruct if found is _RECONSTRUCT else found

    def _reconstruct(self, subtype, shape, dtype):
        """numpy's `_reconstruct`, for an ndarray of a size the file can hold (numpy then fills it from the
        file's bytes, checking that they match)."""
        if subtype is not _NdarrayName:
            raise Refused(f"_reconstruct of {subtype!r}")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Refused(f"_reconstruct with shape {shape!r}")
        declared = math.prod(shape) * np.dtype(dtype).itemsize
        if declared > self.limit:
            raise Oversized(f"an array of shape {shape} ({declared} bytes) in a file of {self.limit} bytes")
        return _RECONSTRUCT(np.ndarray, shape, dtype)

    def persistent_load(self, pid):
        raise Refused(f"persistent id {pid!r}")


def read_pickle(path: Path, limit: int) -> dict:
    """The dictionary in a CIFAR python-version file of at most `limit` bytes, unpickled with nothing but numpy
    arrays allowed, none larger than the file."""
    try:
        with open_regular(path, limit, "a file of this dataset") as handle:
            content = handle.read()
        payload = ArrayUnpickler(io.BytesIO(content), len(content), encoding="latin1").load()
    except Refused as exc:
        raise DataError(f"{path}: refused: the file asks to call {exc}, which a CIFAR batch never needs "
                        "(clrelu runs no code from data files); replace it with the official file") from None
    except Oversized as exc:
        raise DataError(f"{path}: refused: it declares {exc}; not a faithful CIFAR file") from None
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways
        raise DataError(f"{path}: not a CIFAR python-version file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: not a CIFAR python-version file (it holds a {type(payload).__name__}, "
                        "not a dictionary)")
    return payload


def _batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """The images (N x 3072 uint8, channel-major as CIFAR stores them) and labels of one batch file."""
    payload = read_pickle(path, spec.file_limit)
    missing = [key for key in ("data", spec.label_key) if key not in payload]
    if missing:
        raise DataError(f"{path}: has no '{missing[0]}' entry; found {', '.join(map(str, payload))}")
    data, labels = payload["data"], payload[spec.label_key]
    width = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        found = f"{data.dtype} of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: expected uint8 images of shape N x {width}, found {found}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{path}: its '{spec.label_key}' are not integers") from None
    if labels.shape != (len(data),):
        raise DataError(f"{path}: holds {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.n_classes):
        raise DataError(f"{path}: label {labels.max() if labels.max() >= spec.n_classes else labels.min()} "
                        f"is outside 0..{spec.n_classes - 1}")
    return np.ascontiguousarray(data), labels


def _class_names(path: Path, key: str, spec: CifarSpec) -> tuple[str, ...]:
    n_classes = spec.n_classes
    payload = read_pickle(path, spec.file_limit)
    names = payload.get(key)
    if not isinstance(names, list) or len(names) != n_classes or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: its '{key}' entry is not a list of {n_classes} class names")
    return tuple(names)


def _files(dataset) -> tuple[list[str], list[str], str]:
    """The train batches, test batches and meta file of a torchvision CIFAR class."""
    return ([name for name, _ in dataset.train_list], [name for name, _ in dataset.test_list],
            dataset.meta["filename"])


def _download(dataset, root: Path) -> None:
    """Fetch and unpack the official archive with torchvision (md5-checked) into a temporary folder under
    `root`, then move its batch folder into place; nothing outside that temporary folder is touched."""
    from torchvision.datasets.utils import download_and_extract_archive

    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".clrelu-download-", dir=root))
    try:
        download_and_extract_archive(dataset.url, str(scratch), filename=dataset.filename, md5=dataset.tgz_md5)
        os.rename(scratch / dataset.base_folder, root / dataset.base_folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_cifar(name: str, root: str | Path) -> ImageData:
    """CIFAR-10 or CIFAR-100 from `<root>/cifar-10-batches-py` (or `cifar-100-python`), torchvision's layout,
    downloading the official archive first when the folder is absent."""
    spec = CIFAR[name]
    dataset = getattr(import_torchvision(f"stream.dataset={name}").datasets, spec.torchvision_class)
    root = Path(root).expanduser().resolve()
    folder = root / dataset.base_folder
    train, test, meta = _files(dataset)
    wanted = ", ".join([*train, *test, meta])
    if not folder.exists():
        try:
            _download(dataset, root)
        except Exception as exc:  # noqa: BLE001 - no network, a refused write, a bad archive: one line
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{name} is not in {folder} and could not be downloaded ({reason}); put {wanted} there "
                            f"(unpack {dataset.filename} into {root}), or point data.root (or $CLRELU_DATA) at a "
                            f"folder that has {dataset.base_folder}") from None
    missing = [file for file in [*train, *test, meta] if not (folder / file).is_file()]
    if missing:
        raise DataError(f"{folder}: {', '.join(missing)} missing; it needs {wanted}")
    paths = tuple(folder / file for file in [*train, *test, meta])
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _decode(spec, paths, len(train), dataset.meta["key"], stamps)


@functools.lru_cache(maxsize=2)
def _decode(spec: CifarSpec, paths: tuple[Path, ...], n_train: int, names_key: str, stamps: tuple) -> ImageData:
    """Read every batch; `stamps` (mtime, size) keys the cache so that a changed file is read again."""
    train = [_batch(p, spec) for p in paths[:n_train]]
    test = [_batch(p, spec) for p in paths[n_train:-1]]
    return ImageData(
        x_train=torch.from_numpy(np.concatenate([x for x, _ in train])),
        y_train=torch.from_numpy(np.concatenate([y for _, y in train])),
        x_test=torch.from_numpy(np.concatenate([x for x, _ in test])),
        y_test=torch.from_numpy(np.concatenate([y for _, y in test])),
        class_names=_class_names(paths[-1], names_key, spec),
        image_shape=IMAGE_SHAPE,
        source=str(paths[0].parent),
    )
