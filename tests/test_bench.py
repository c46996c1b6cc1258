"""The benchmark script runs, and its clrelu and bare-loop sides do the same work (no timing asserted)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import has_dataset

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    """scripts/bench.py as a module of its own (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def one_sample_more_right(bare_loop):
    """The bare loop, ending with one sample of the last task more right: an accuracy matrix the bench must catch."""
    def run(cfg):
        train, evaluation, matrix, initial = bare_loop(cfg)
        matrix[-1][0] += 1e-4
        return train, evaluation, matrix, initial
    return run


def test_bench_runs_on_the_synthetic_stream():
    env = {k: v for k, v in os.environ.items() if k != "CLRELU_DATA"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--streams", "synthetic",
                           "--repeats", "1", "--sweep-jobs", "2", "--clock", "cpu"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| synthetic "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 12 and cells[-1] == "yes"  # both sides end with the same accuracy matrix
    assert all(float(c) > 0 for c in cells[1:11])
    assert ", 1 threads, " in done.stdout and "seconds of CPU time, medians of 1" in done.stdout
    assert "load average" in done.stdout
    assert "synthetic: per pass after a task (5 a side) clrelu" in done.stdout  # after each of 5 tasks
    assert "; the pass at initialisation alone: " in done.stdout
    assert "start-up to the first training step" in done.stdout
    assert "a sweep of 2 synthetic jobs (clrelu run -m, Hydra's basic launcher)" in done.stdout
    assert "  its cpu time inside the command, " in done.stdout and "ms each alone" in done.stdout  # the job's split


def test_bench_fails_when_the_accuracy_matrices_differ(monkeypatch, capsys):
    bench = load_bench()
    monkeypatch.setattr(bench, "bare_loop", one_sample_more_right(bench.bare_loop))
    monkeypatch.setattr(bench, "startup_seconds", lambda threads: (0.0, 0.0))
    monkeypatch.setattr(sys, "argv", ["bench.py", "--streams", "synthetic", "--repeats", "1", "--sweep-jobs", "0"])
    monkeypatch.delenv("CLRELU_DATA", raising=False)
    assert bench.main() == 1
    out, err = capsys.readouterr()
    assert "| synthetic " in out and out.split("| synthetic ")[1].splitlines()[0].endswith("| NO |")
    assert "bench.py: error: clrelu and the bare loop ended with different accuracy matrices: synthetic" in err


def test_bench_runs_split_cifar10_on_synthetic_cifar_files():
    pytest.importorskip("torchvision", reason="the vision extra is not installed")
    env = {k: v for k, v in os.environ.items() if k != "CLRELU_DATA"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--streams", "split_cifar10",
                           "--repeats", "1", "--cifar-size", "200", "100", "--sweep-jobs", "0"],  # the sweep: above
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "SYNTHETIC data in CIFAR-10's format (200 training and 100 test images" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("| split_cifar10 "))
    assert row.strip("|").split("|")[-1].strip() == "yes"  # the cnn trunk and the bare loop end alike, bit for bit
    assert "split_cifar10 with the cnn trunk (5 tasks): one task takes" in done.stdout


@pytest.mark.skipif(not (has_dataset("MNIST") and has_dataset("FashionMNIST")),
                    reason="no MNIST and FashionMNIST under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")
def test_bench_rotated_figures_run_both_sides_and_check_their_matrices(monkeypatch):
    bench = load_bench()
    small = ["stream.n_tasks=2", "stream.train_limit=64", "stream.test_limit=64", "plasticity.probe_size=16"]
    monkeypatch.setattr(bench, "COMMON", [*bench.COMMON, *small])
    found, same = bench.rotated_figures(1)
    assert same and {name: set(sides) for name, sides in found.items()} == {
        "rotated_mnist": {"clrelu", "bare"}, "rotated_fmnist": {"clrelu"}}
    assert all(seconds > 0 for sides in found.values() for pair in sides.values() for seconds in pair)
    lines = bench.rotated_lines(found, 1)
    assert lines[0].startswith("rotated_mnist at its defaults (20 tasks, medians of 1): clrelu training ")
    assert "; bare training " in lines[0] and lines[1].startswith("rotated_fmnist at its defaults")
    monkeypatch.setattr(bench, "bare_loop", one_sample_more_right(bench.bare_loop))
    assert bench.rotated_figures(1)[1] is False


@pytest.mark.skipif(not has_dataset("FashionMNIST"),
                    reason="no FashionMNIST under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")
def test_bench_prices_the_probe_by_evaluation_seconds(monkeypatch):
    """The probe's line compares evaluation seconds (where the trainer counts the probe) with the probe on and off,
    and relates the difference to the whole training and evaluation of the run without it."""
    bench = load_bench()
    monkeypatch.setitem(bench.STREAMS, "split_fmnist", ["stream=split_fmnist", "stream.n_tasks=2", "stream.train_limit=64",
                                                        "stream.test_limit=64", "plasticity.probe_size=16"])
    on, off, whole, tasks = bench.plasticity_overhead(1)
    assert tasks == 2 and on > 0 and off > 0 and whole > off
