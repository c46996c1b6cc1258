"""IDX reading and validation, the dataset loader, and the offline download error."""

import gzip
import hashlib
import os
import urllib.request

import numpy as np
import pytest
from conftest import fake_dataset

from clrelu.data import download as download_module
from clrelu.data.datasets import FILES, load_dataset
from clrelu.data.idx import read_idx, write_idx
from clrelu.errors import DataError


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4) % 7).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((10, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated: its header says 10x4x4 \(160 bytes"):
        read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(1000, np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: cannot be read as gzip"):
        read_idx(path)


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "labels.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(DataError, match=r"labels.gz: wrong magic number 0x12340801"):
        read_idx(path)


def test_dataset_counts_come_from_the_files(tmp_path):
    fake_dataset(tmp_path, n_train=230, n_test=70, side=5)
    data = load_dataset("mnist", tmp_path)
    assert data.x_train.shape == (230, 25) and data.x_test.shape == (70, 25)
    assert data.y_train.dtype.is_floating_point is False and int(data.y_train.max()) == 9


def test_label_count_mismatch_names_the_file(tmp_path):
    raw = fake_dataset(tmp_path, n_train=50, n_test=20)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(49, np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: holds 49 labels for 50 images"):
        load_dataset("mnist", tmp_path)


def test_uncompressed_files_are_found(tmp_path):
    raw = fake_dataset(tmp_path, n_train=30, n_test=10)
    for name in FILES:
        gz = raw / f"{name}.gz"
        (raw / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert load_dataset("mnist", tmp_path).x_train.shape[0] == 30


def test_offline_download_error_names_folder_and_files(tmp_path, monkeypatch):
    def no_network(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError) as caught:
        load_dataset("fmnist", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    for name in FILES:
        assert f"{name}.gz" in message


def test_download_checks_md5_and_renames(tmp_path, monkeypatch):
    payload = b"not the official file"

    class Response:
        def __init__(self):
            self.sent = False

        def read(self, n):
            if self.sent:
                return b""
            self.sent = True
            return payload

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(download_module.urllib.request, "urlopen", lambda url, timeout: Response())
    target = tmp_path / "file.gz"
    with pytest.raises(download_module.DownloadFailed, match="md5"):
        download_module.download(["http://mirror/file.gz"], target, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    download_module.download(["http://mirror/file.gz"], target, md5=hashlib.md5(payload).hexdigest())
    assert target.read_bytes() == payload and list(tmp_path.iterdir()) == [target]


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(Exception, match="stream.dataset=cifar: unknown choice; valid choices are mnist, fmnist"):
        load_dataset("cifar", tmp_path)


def test_a_dataset_is_decoded_once_per_process_until_one_of_its_files_changes(tmp_path):
    """The jobs of a sweep in one process share one decoded copy; a file rewritten since is read again."""
    raw = fake_dataset(tmp_path, n_train=40, n_test=20, seed=0)
    first = load_dataset("mnist", tmp_path)
    assert load_dataset("mnist", tmp_path) is first  # decoded once: the same tensors, not a second copy
    images = raw / "train-images-idx3-ubyte.gz"
    stamp = images.stat().st_mtime_ns
    fake_dataset(tmp_path, n_train=40, n_test=20, seed=1)  # the same sizes, other pixels
    os.utime(images, ns=(stamp + 10**9, stamp + 10**9))  # a later time, even on a coarse clock
    second = load_dataset("mnist", tmp_path)
    assert second is not first and not np.array_equal(second.x_train.numpy(), first.x_train.numpy())
    assert np.array_equal(second.x_train.numpy(), read_idx(images).reshape(40, -1))
