"""Shared test helpers: in-process and command-line runs, fake IDX datasets, and the real-data skip."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clrelu.config import compose
from clrelu.data.datasets import FILES
from clrelu.data.idx import write_idx
from clrelu.training.experiment import run_experiment

REAL_ROOT = os.environ.get("CLRELU_DATA")

pytest_plugins = ["ci_rule"]  # with CLRELU_REQUIRE_ALL_TESTS=1 (.ci/run) a skip fails the session


def pytest_configure(config):
    """Ctrl-C stops this process, and the processes the tests start, as it does a user's shell command: a pytest-xdist
    worker starts with SIGINT ignored, which its children would inherit."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def has_dataset(folder: str) -> bool:
    if not REAL_ROOT:
        return False
    raw = Path(REAL_ROOT) / folder / "raw"
    return all((raw / f"{name}.gz").is_file() or (raw / name).is_file() for name in FILES)


needs_fmnist = pytest.mark.skipif(not has_dataset("FashionMNIST"),
                                  reason="no FashionMNIST under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")


def run_in_process(folder: Path, *overrides: str):
    """Run `clrelu run <overrides>` in this process (no Hydra run folder logic) and return its record."""
    cfg, names = compose(list(overrides))
    return run_experiment(cfg, folder, names)


def refusal(folder: Path, *overrides: str) -> tuple[str, int]:
    """The one line and the exit code with which `clrelu run <overrides>` refuses a config, found in this process:
    compose the config with Hydra's compose API and build the run into `folder`, as the command does before it
    trains; the error must come before anything is written there. (test_cli checks that the command prints this
    line as `clrelu: error: <line>` and exits with the code.)"""
    import clrelu.training.trainer
    from clrelu.cli import describe

    class NotRefused(Exception):
        pass

    def train(*_, **__):
        raise NotRefused(f"clrelu run {' '.join(overrides)} was not refused: it reached training")

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(clrelu.training.trainer.Trainer, "run", train)
            cfg, names = compose(list(overrides))
            run_experiment(cfg, folder, names)
    except NotRefused as exc:
        raise AssertionError(str(exc)) from None
    except Exception as exc:
        assert not folder.exists(), f"{folder} was written before the refusal"
        return describe(exc)
    raise AssertionError("unreachable: training always raises here")


def crash_during_task(folder: Path, task: int, *overrides: str) -> None:
    """Run `clrelu run <overrides>` in this process into `folder`, crashing when training reaches task `task`:
    an unfinished run whose checkpoint holds the tasks before it."""
    import clrelu.training.trainer

    train = clrelu.training.trainer.Trainer._train

    def crash(self, phase):
        if phase.row == task:
            raise RuntimeError("simulated crash")
        return train(self, phase)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clrelu.training.trainer.Trainer, "_train", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_in_process(folder, *overrides)


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`clrelu <args>` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "clrelu.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def start_and_kill_after(folder: Path, task: int, *overrides: str) -> None:
    """Start `clrelu run <overrides>` into `folder` and SIGKILL it once it reports the end of task `task`."""
    # quoted: a sweep's run folder has = and , in its name, which Hydra's override grammar reads otherwise
    process = subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", *overrides, f"hydra.run.dir='{folder}'"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith(f"after task {task} "):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def read_accuracy(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "accuracy.csv", index_col="after_task")


def fake_dataset(root: Path, folder: str = "MNIST", n_train: int = 200, n_test: int = 100, side: int = 4,
                 seed: int = 0) -> Path:
    """A small valid dataset in torchvision's layout: class k's images are bright in pixel k."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 50, size=(n, side, side), dtype=np.uint8)
        images.reshape(n, -1)[np.arange(n), labels] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return raw


def hashes(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder` (links and special files by what they are, never followed)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"link to {os.readlink(path)}"
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif not path.is_dir():
            found[name] = "special"
    return found


@pytest.fixture
def decoy(tmp_path) -> Path:
    """A folder of a user's own files beside the run folders, that nothing clrelu does may change."""
    folder = tmp_path / "decoy"
    (folder / "notes").mkdir(parents=True)
    (folder / "thesis.txt").write_text("chapter 1\n" * 100)
    (folder / "notes" / "results.csv").write_text("a,b\n1,2\n")
    (folder / "summary.csv").write_text("model,stream,seed,n_tasks,tasks_done,status\nmlp,synthetic,0,3,3,finished\n")
    return folder


def one_line(stderr: str, prefix: str = "clrelu: error: ") -> str:
    """The message of a one-line report on stderr (the test fails on anything else)."""
    assert stderr.count("\n") == 1 and stderr.startswith(prefix), stderr
    return stderr[len(prefix):-1]


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail with TimeoutError when the block takes longer (a FIFO that blocks an open or a read)."""
    def expired(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
