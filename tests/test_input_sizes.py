"""Attack: inputs whose declared size is a lie or out of all proportion (a gzip bomb, a pickle that declares a
huge array, a 1 TiB sparse file, a config asking for more than the machine has) are refused in one line before
the memory is spent, naming the file or the key."""

import functools
import os
import pickle
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import threadpoolctl
import torch
from conftest import fake_dataset, run_in_process

from clrelu.cli import main
from clrelu.data.cifar import CIFAR, read_pickle
from clrelu.data.datasets import load_dataset
from clrelu.errors import ConfigError, DataError
from clrelu.machine import cores, memory
from clrelu.training.experiment import build, use_threads
from clrelu.training.footprint import check_fits

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]
TIB = 1 << 40


def gzip_bomb(path, header: bytes, inflated: int) -> None:
    """A gzip file whose IDX header is followed by `inflated` zero bytes (about a thousandth as many on disk)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    chunk = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(compressor.compress(header))
        for _ in range(inflated // len(chunk)):
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())


@pytest.mark.parametrize("declared", [(10, 28, 28), (700_000, 28, 28)], ids=["a small header", "a huge header"])
def test_a_gzip_bomb_is_refused_before_it_inflates(tmp_path, declared):
    raw = fake_dataset(tmp_path, n_train=20, n_test=10)
    bomb = raw / "train-images-idx3-ubyte.gz"
    inflated = 512 << 20 if declared[0] == 10 else 1 << 20  # the huge header is refused before any data is read
    gzip_bomb(bomb, bytes([0, 0, 8, 3]) + struct.pack(">3I", *declared), inflated)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as refused:
            load_dataset("mnist", tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert message.startswith(f"{bomb}: ") and "\n" not in message
    if declared[0] == 10:  # read exactly the declared bytes, then one more: refused
        assert "has trailing bytes: its header says 10x28x28 (7840 bytes of data), the file inflates to more" in message
    else:  # more images than MNIST has: refused from the header alone
        assert "its header declares 700000x28x28 (523.4 MiB of data), more than this dataset's file can hold" in message
    assert peak < 16 << 20  # what the file inflates to never reaches memory


def lying_batch(path, reduce) -> None:
    """A CIFAR batch whose 'data' is made by `reduce` (what a pickle calls to build it)."""
    class Lie:
        def __reduce__(self):
            return reduce

    path.write_bytes(pickle.dumps({"data": Lie(), "labels": [0, 1]}, protocol=2))


RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]


@pytest.mark.parametrize("reduce, message", [
    ((np.ndarray, ((250_000, 3072), np.dtype("uint8"))), "the file asks to call numpy.ndarray directly"),
    ((RECONSTRUCT, (np.ndarray, (250_000, 3072), b"B")), "it declares an array of shape (250000, 3072) (768000000 "
                                                          "bytes) in a file of "),
], ids=["ndarray called", "reconstruct declaring more"])
def test_a_pickle_that_declares_a_huge_array_is_refused(tmp_path, reduce, message):
    batch = tmp_path / "data_batch_1"
    lying_batch(batch, reduce)
    assert batch.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as refused:
            read_pickle(batch, CIFAR["cifar10"].file_limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(f"{batch}: refused: ") and message in str(refused.value)
    assert peak < 1 << 20


def sparse(path, size: int, head: bytes = b"") -> None:
    with open(path, "wb") as out:
        out.write(head)
    os.truncate(path, size)


def test_a_one_tebibyte_sparse_file_is_one_line_wherever_it_is(tmp_path, capsys, monkeypatch):
    # a dataset file: its size is checked against its header before anything is read
    raw = fake_dataset(tmp_path / "data", n_train=20, n_test=10)
    (raw / "train-images-idx3-ubyte.gz").unlink()
    sparse(raw / "train-images-idx3-ubyte", TIB, bytes([0, 0, 8, 3]) + struct.pack(">3I", 20, 4, 4))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: has trailing bytes: its header says 20x4x4 "):
        load_dataset("mnist", tmp_path / "data")
    # a CIFAR batch: larger than any of its dataset's files
    sparse(tmp_path / "test_batch", TIB)
    with pytest.raises(DataError, match=r"test_batch: holds 1.0 TiB, more than a file of this dataset can \(35.2 MiB\); it was not read$"):
        read_pickle(tmp_path / "test_batch", CIFAR["cifar10"].file_limit)
    # a checkpoint to resume from
    run = tmp_path / "run"
    run_in_process(run, *FAST)
    (run / "summary.csv").unlink()
    sparse(run / "checkpoint.pt", TIB)
    with pytest.raises(ConfigError) as refused:
        run_in_process(run, *FAST, "resume=true")
    assert str(refused.value).startswith(f"resume=true: {run / 'checkpoint.pt'}: holds 1.0 TiB, more than half this "
                                         "machine's memory")
    # a summary.csv under a compare path
    sparse(run / "summary.csv", TIB)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "summary.csv: holds 1.0 TiB, more than a summary.csv holds (1.0 MiB)" in err
    assert "MemoryError" not in err


def config(*overrides):
    from clrelu.config import compose

    return compose(list(overrides))[0]


def test_a_config_larger_than_the_machine_is_refused_naming_the_key(tmp_path):
    total = memory()[0]
    for overrides, key in ((["stream.n_tasks=1000000000"], "stream.n_tasks=1000000000"),
                           (["model.hidden=[1000000000000]"], "model.hidden=[1000000000000]")):
        with pytest.raises(ConfigError) as refused:
            run_in_process(tmp_path / "run", *FAST, *overrides)
        message = str(refused.value)
        assert message.startswith(f"{key}: a run would take at least ") and "this machine has " in message, message
        assert refused.value.exit_code == 2 and "\n" not in message
        assert not (tmp_path / "run").exists()
    # the estimate is a lower bound: a config refused needs more than the machine's whole memory
    assert check_fits(config("stream=permuted_mnist", "stream.n_tasks=1000")) is None
    n = int((total / 9) ** 0.5) + 1
    with pytest.raises(ConfigError, match=f"stream.n_tasks={n}: a run would take at least"):
        check_fits(config("stream=permuted_mnist", f"stream.n_tasks={n}"))


def test_threads_are_bounded_by_the_machine(tmp_path):
    with pytest.raises(ConfigError) as refused:
        run_in_process(tmp_path / "run", *FAST, "threads=100000")
    n = cores()
    assert str(refused.value) == (f"threads=100000: this machine has {n} cores; use at most {n} (0: torch's "
                                  "default)")
    assert not (tmp_path / "run").exists()


def test_numpy_blas_runs_on_as_many_threads_as_torch(tmp_path):
    """The probe's Gram matrices run on numpy's BLAS, which left alone takes every core: a run gives it torch's
    thread count, `threads` when set, else torch's own."""
    def blas_threads():
        return {pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"}

    before = torch.get_num_threads()
    many = min(2, cores())
    try:
        run_in_process(tmp_path / "one", *FAST, "threads=1")
        assert blas_threads() == {1}
        torch.set_num_threads(many)
        run_in_process(tmp_path / "default", *FAST, "threads=0")
        assert blas_threads() == {many}
    finally:
        use_threads(before)


def test_building_more_than_the_allocator_gives_is_one_line_naming_the_group():
    """What the estimate cannot foresee (a model's own layers): the allocator's refusal, named by its group."""
    def huge():
        return torch.empty(1 << 62, dtype=torch.uint8)

    with pytest.raises(ConfigError) as refused:
        build(functools.partial(huge), "model")
    assert str(refused.value).startswith("model: building it takes more memory than this machine can give (")
    assert "this machine has " in str(refused.value) and "\n" not in str(refused.value)
