"""Reading CIFAR's python-version files: structure checks, the refusal of hostile pickles, the offline error,
and the refusal without torchvision.

torchvision's CIFAR classes compare every file's md5 with the official release before unpickling it, so
their loading code cannot be reached with test data. clrelu reads the files with its own restricted
unpickler (clrelu/data/cifar.py) and checks structure instead of md5, so these tests write small datasets
in CIFAR's exact on-disk format (tests/cifar_files.py: Python 2 pickles, as cPickle wrote them) and go
through the same code as a real run; one test shows that torchvision, with its md5 check switched off,
reads the same arrays from them.
"""

import os
import pickle
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
from cifar_files import dump_py2, write_cifar

from clrelu.data import cifar
from clrelu.errors import ConfigError, DataError
from clrelu.extras import install_command

torchvision = pytest.importorskip("torchvision", reason="the vision extra is not installed")


@pytest.fixture(autouse=True)
def fresh_cache():
    cifar._decode.cache_clear()


def test_reads_the_batches_in_order(tmp_path):
    write_cifar(tmp_path, "cifar10", n_train=230, n_test=70)
    data = cifar.load_cifar("cifar10", tmp_path)
    assert data.x_train.shape == (230, 3072) and data.x_test.shape == (70, 3072)
    assert data.x_train.dtype == data.x_test.dtype == torch.uint8
    assert data.y_train.tolist() == [i % 10 for i in range(230)]  # five files, concatenated in order
    assert data.class_names == tuple(f"class_{k}" for k in range(10))
    # the fixture's image of class k is 255 at flat index k (channel 0, row 0, column k)
    assert (data.x_train[range(230), data.y_train] == 255).all()


def test_cifar100_uses_the_fine_labels(tmp_path):
    write_cifar(tmp_path, "cifar100", n_train=300, n_test=100)
    data = cifar.load_cifar("cifar100", tmp_path)
    assert data.x_train.shape == (300, 3072) and int(data.y_train.max()) == 99 and len(data.class_names) == 100


def test_torchvision_reads_the_same_arrays(tmp_path, monkeypatch):
    write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    theirs = torchvision.datasets.CIFAR10(str(tmp_path), train=True)
    ours = cifar.load_cifar("cifar10", tmp_path)
    assert np.array_equal(ours.x_train.view(-1, 3, 32, 32).permute(0, 2, 3, 1).numpy(), theirs.data)
    assert ours.y_train.tolist() == theirs.targets and list(ours.class_names) == theirs.classes


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_copies_pickled_by_python_3_are_read_too(tmp_path, protocol):
    folder = write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    original = cifar.load_cifar("cifar10", tmp_path)
    cifar._decode.cache_clear()
    for name in ("data_batch_1", "test_batch"):
        payload = pickle.loads((folder / name).read_bytes(), encoding="latin1")
        (folder / name).write_bytes(pickle.dumps(payload, protocol=protocol))
    again = cifar.load_cifar("cifar10", tmp_path)
    assert torch.equal(again.x_train, original.x_train) and torch.equal(again.x_test, original.x_test)


def test_a_hostile_pickle_runs_nothing(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Payload(), "labels": [0]}, protocol=2))
    with pytest.raises(DataError) as caught:
        cifar.load_cifar("cifar10", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "data_batch_3: refused" in message and "system" in message
    assert not marker.exists()
    # the payload is real: a plain unpickler runs it
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(folder / 'data_batch_3')!r}, 'rb'))"],
                   check=True)
    assert marker.exists()


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "test_batch").write_bytes(b"\x80\x02}q\x00(U\x04data"), "test_batch: not a CIFAR python-version file"),
    (lambda f: dump_py2(f / "test_batch", [1, 2]), "test_batch: not a CIFAR python-version file (it holds a list"),
    (lambda f: dump_py2(f / "test_batch", {"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}),
     "test_batch: holds 2 labels for 3 images"),
    (lambda f: dump_py2(f / "test_batch", {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}),
     "test_batch: expected uint8 images of shape N x 3072, found uint8 of shape (2, 100)"),
    (lambda f: dump_py2(f / "test_batch", {"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}),
     "test_batch: expected uint8 images"),
    (lambda f: dump_py2(f / "test_batch", {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}),
     "test_batch: label 10 is outside 0..9"),
    (lambda f: dump_py2(f / "test_batch", {"data": np.zeros((2, 3072), np.uint8)}), "test_batch: has no 'labels' entry"),
    (lambda f: (f / "data_batch_2").unlink(), "data_batch_2 missing"),
])
def test_damaged_files_are_named(tmp_path, damage, expected):
    folder = write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    damage(folder)
    with pytest.raises(DataError) as caught:
        cifar.load_cifar("cifar10", tmp_path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_offline_download_error_names_folder_and_files(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_network)
    with pytest.raises(DataError) as caught:
        cifar.load_cifar("cifar100", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "Name or service not known" in message
    assert str(tmp_path / "cifar-100-python") in message and "train, test, meta" in message
    assert list(tmp_path.iterdir()) == []  # the temporary download folder is gone


def test_without_torchvision_one_line_names_the_extra(tmp_path, monkeypatch):
    write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # what an install without the extra sees
    with pytest.raises(ConfigError) as caught:
        cifar.load_cifar("cifar10", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("stream.dataset=cifar10 needs torchvision, which is not installed")
    assert install_command("vision") in message
