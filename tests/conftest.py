"""Shared test helpers: in-process and command-line runs, fake IDX datasets, and the real-data skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clrelu.config import compose
from clrelu.data.datasets import FILES
from clrelu.data.idx import write_idx
from clrelu.experiment import run_experiment

REAL_ROOT = os.environ.get("CLRELU_DATA")


def has_dataset(folder: str) -> bool:
    if not REAL_ROOT:
        return False
    raw = Path(REAL_ROOT) / folder / "raw"
    return all((raw / f"{name}.gz").is_file() or (raw / name).is_file() for name in FILES)


needs_mnist = pytest.mark.skipif(not has_dataset("MNIST"), reason="no MNIST under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")
needs_fmnist = pytest.mark.skipif(not has_dataset("FashionMNIST"),
                                  reason="no FashionMNIST under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")


def run_in_process(folder: Path, *overrides: str):
    """Run `clrelu run <overrides>` in this process (no Hydra run folder logic) and return its record."""
    cfg, names = compose(list(overrides))
    return run_experiment(cfg, folder, names)


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`clrelu <args>` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "clrelu.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


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
