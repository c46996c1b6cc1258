"""Small CIFAR datasets written in CIFAR's own on-disk format, for the tests that read them.

CIFAR's python-version files were written by Python 2's cPickle: dictionaries whose strings are
Python 2 byte strings (the BINSTRING opcodes) and whose `data` is a numpy uint8 array pickled through
`numpy.core.multiarray._reconstruct`. `Py2Pickler` writes exactly that, so the tests read the files
through clrelu's real loading code (which checks structure, not the official md5).
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
LAYOUT = {  # folder, train files, test files, meta file, label key, class-names key, classes
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                "labels", "label_names", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names", 100),
}


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did for CIFAR: str and bytes as byte strings, numpy under numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        if obj is RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dump_py2(path: Path, payload) -> None:
    with open(path, "wb") as handle:
        Py2Pickler(handle, protocol=2).dump(payload)


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dim random images (values below 100) in which the image of class k is 255 at flat index k."""
    images = rng.integers(0, 100, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
    images[np.arange(len(labels)), labels] = 255
    return images


def write_cifar(root: Path, name: str = "cifar10", n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """A small CIFAR-10 or CIFAR-100 in torchvision's layout under `root`; returns its folder.

    Sample i has label i % classes; the training samples are spread over the training files in order.
    """
    folder, train_files, test_files, meta, label_key, names_key, n_classes = LAYOUT[name]
    rng = np.random.default_rng(seed)
    out = root / folder
    out.mkdir(parents=True, exist_ok=True)
    for files, n in ((train_files, n_train), (test_files, n_test)):
        labels = np.arange(n) % n_classes
        images = class_images(labels, rng)
        for file, rows in zip(files, np.array_split(np.arange(n), len(files))):
            dump_py2(out / file, {"batch_label": f"{file} of a test fixture", label_key: labels[rows].tolist(),
                                  "data": images[rows], "filenames": [f"img_{i}.png" for i in rows]})
    dump_py2(out / meta, {names_key: [f"class_{k}" for k in range(n_classes)], "num_cases_per_batch": n_train})
    return out
