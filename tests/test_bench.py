"""The benchmark script runs, and its clrelu and bare-loop sides do the same work (no timing asserted)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_on_the_synthetic_stream():
    env = {k: v for k, v in os.environ.items() if k != "CLRELU_DATA"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--streams", "synthetic",
                           "--repeats", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| synthetic "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 11 and cells[-1] == "yes"  # both sides end with the same accuracy matrix
    assert all(float(c) > 0 for c in cells[1:10])
    assert "start-up to the first training step" in done.stdout


def test_bench_runs_split_cifar10_on_synthetic_cifar_files():
    pytest.importorskip("torchvision", reason="the vision extra is not installed")
    env = {k: v for k, v in os.environ.items() if k != "CLRELU_DATA"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--streams", "split_cifar10",
                           "--repeats", "1", "--cifar-size", "200", "100"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC data in CIFAR-10's format (200 training and 100 test images" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("| split_cifar10 "))
    assert row.strip("|").split("|")[-1].strip() == "yes"  # the cnn trunk and the bare loop end alike, bit for bit
    assert "split_cifar10 with the cnn trunk (5 tasks): one task takes" in done.stdout
