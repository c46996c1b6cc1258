"""Attack: failures that used to surface as another library's message (torch's `enforce fail at
inline_container.cc`, numpy's `cannot reshape array of size 0`, pandas' `could not convert string to float`) are
one line naming the file and what is wrong, and those that can be known before training are refused before it."""

import errno
import io
import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import fake_dataset, hashes, one_line, run_in_process

from clrelu.cli import main
from clrelu.data.datasets import load_dataset
from clrelu.data.idx import write_idx
from clrelu.errors import DataError, RunError
from clrelu.rundir import files

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]


def test_a_file_size_limit_during_torch_save_names_the_checkpoint(tmp_path, decoy):
    """A real limit (RLIMIT_FSIZE): the checkpoint (about 29 KB) is the first file larger than 16 KB."""
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    before = hashes(decoy)
    done = subprocess.run([sys.executable, "-m", "clrelu.cli", "run", *FAST, "hydra.run.dir=run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, preexec_fn=limited)
    assert done.returncode == 1
    assert one_line(done.stderr) == f"{tmp_path / 'run' / 'checkpoint.pt'}: cannot be written (File too large)"
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").iloc[0]
    assert summary.status == "failed" and "checkpoint.pt: cannot be written (File too large)" in summary.error
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert hashes(decoy) == before


def test_a_read_only_folder_during_torch_save_names_the_checkpoint(tmp_path, monkeypatch):
    """torch.save onto a file whose writes fail: torch says `unexpected pos`; clrelu says the file's error."""
    class ReadOnly(io.FileIO):
        def write(self, data):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    opened, real_open, real_file = [], files._open_in, files.io.FileIO
    monkeypatch.setattr(files, "_open_in", lambda fd, name, *rest, **options: opened.append(name) or real_open(
        fd, name, *rest, **options))
    monkeypatch.setattr(files.io, "FileIO", lambda fd, mode: (
        ReadOnly if opened[-1].startswith(".checkpoint.pt.") else real_file)(fd, mode))
    with pytest.raises(RunError) as failed:
        run_in_process(tmp_path / "run", *FAST)
    assert str(failed.value) == f"{tmp_path / 'run' / 'checkpoint.pt'}: cannot be written (Read-only file system)"
    assert pd.read_csv(tmp_path / "run" / "summary.csv").status.iloc[0] == "failed"


def test_an_idx_file_with_no_image_is_one_line_naming_it(tmp_path):
    raw = fake_dataset(tmp_path, n_train=20, n_test=10)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((0, 4, 4), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with pytest.raises(DataError) as refused:
        load_dataset("mnist", tmp_path)
    assert str(refused.value) == (f"{raw / 't10k-images-idx3-ubyte.gz'}: holds no image (0x4x4); a dataset needs at "
                                  "least one")


def test_a_reduced_dataset_missing_classes_is_refused_before_training(tmp_path):
    raw = fake_dataset(tmp_path / "data", n_train=200, n_test=100)
    labels = (np.arange(200) % 8).astype(np.uint8)  # no 8 and no 9: the fifth task of split MNIST has nothing
    write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError) as refused:
        run_in_process(tmp_path / "run", f"data.root={tmp_path / 'data'}", "model.hidden=[8]",
                       "stream.class_order=[0,1,2,3,4,5,6,7,8,9]")
    assert str(refused.value) == (f"{raw}: holds no training sample of class 8 (8), which task 4 takes; "
                                  "stream.class_order or stream.n_tasks can choose the classes it has")
    assert not (tmp_path / "run").exists()  # refused before anything trained or was written


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "run"
    run_in_process(folder, *FAST)
    return folder


def with_cell(text: str, row: int, column: str, value: str) -> str:
    """A CSV's text with one cell replaced (`row` 1 is the first after the header)."""
    lines = [line.split(",") for line in text.splitlines()]
    lines[row][lines[0].index(column)] = value
    return "\n".join(",".join(cells) for cells in lines) + "\n"


@pytest.mark.parametrize("name, column, message", [
    ("accuracy.csv", "0", "damaged (column 0 holds 'high', not a number)"),
    ("evals.csv", "accuracy", "damaged (column accuracy holds 'high', not a number)"),
    ("summary.csv", "status", "damaged (status is 'high', not one of "),
])
def test_plot_of_a_csv_holding_text_is_one_line_naming_the_file(finished, tmp_path, capsys, name, column, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / name).write_text(with_cell((run / name).read_text(), 1, column, "high"))
    assert main(["plot", str(run), "--out", str(tmp_path / "figure.png")]) == 2
    error = one_line(capsys.readouterr().err)
    assert error.startswith(f"{run / name}: {message}"), error
    assert "could not convert" not in error and not (tmp_path / "figure.png").exists()
