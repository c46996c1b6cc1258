"""Benchmark: clrelu's runner against a bare PyTorch loop doing the same work, in one process, alternating.

    CLRELU_DATA=../shared/data python scripts/bench.py            # the three streams, 3 repeats each
    python scripts/bench.py --streams synthetic --repeats 1       # a quick check without data

For each stream the bare loop builds the same model from the same seed, trains on the same tensors in
the same batch order with the same optimizer, and evaluates every task after each, so both sides must
end with the same accuracy matrix (the script checks it, bit for bit). Printed: the median seconds of
training and of evaluation on each side and their ratio clrelu/bare, plus start-up time, data loading
time and peak memory, and for long streams: the peak memory of a 1,000-task permuted MNIST run against a
10-task one, and the seconds pandas takes to read a 1,000-task run's accuracy.csv.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from clrelu.config import compose
from clrelu.experiment import build, factory, run_experiment

# The work of the issue: 784-400 ReLU MLP, a head per task, SGD lr 0.01 momentum 0.9, batch 128, one epoch.
COMMON = ["model=mlp", "model.hidden=[400]", "optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.9",
          "trainer.batch_size=128", "trainer.epochs=1", "stream.scenario=task", "seed=0"]
CLRELU = [sys.executable, "-m", "clrelu.cli"]  # the command, in this interpreter
STREAMS = {
    "split_fmnist": ["stream=split_fmnist"],
    "split_mnist": ["stream=split_mnist"],
    "permuted_mnist": ["stream=permuted_mnist", "stream.n_tasks=10"],
    "synthetic": ["stream=synthetic"],
}


def materialised(split) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of a split as float32 inputs and targets, built in advance (as clrelu's streams once were)."""
    return split.gather(torch.arange(len(split)))


def bare_loop(cfg) -> tuple[float, float, list[list[float]]]:
    """The same run written as a plain PyTorch loop on tensors built in advance: (train seconds, eval seconds,
    accuracy matrix)."""
    torch.manual_seed(cfg.seed)  # as clrelu seeds before building the stream and the model
    generator = torch.Generator().manual_seed(cfg.seed)
    stream = build(factory("stream", cfg.stream), "stream")
    train = [materialised(task.train) for task in stream.tasks]
    test = [materialised(task.test) for task in stream.tasks]
    width, classes = cfg.model.hidden[-1], stream.classes_per_task
    trunk = nn.Sequential(nn.Linear(stream.in_features, width), nn.ReLU())
    heads = nn.ModuleList(nn.Linear(width, classes) for _ in stream.tasks)
    params = [*trunk.parameters(), *heads.parameters()]
    train_seconds = eval_seconds = 0.0
    matrix = []

    def evaluate():
        row = []
        with torch.inference_mode():
            for task, (x_test, y_test) in zip(stream.tasks, test):
                correct, loss = 0, 0.0
                for start in range(0, len(x_test), cfg.trainer.eval_batch_size):
                    x = x_test[start:start + cfg.trainer.eval_batch_size]
                    y = y_test[start:start + cfg.trainer.eval_batch_size]
                    logits = heads[task.id](trunk(x))
                    loss += F.cross_entropy(logits, y, reduction="sum").item()
                    correct += (logits.argmax(1) == y).sum().item()
                row.append(correct / len(x_test))
        return row

    started = time.perf_counter()
    evaluate()
    eval_seconds += time.perf_counter() - started
    for task, (x_train, y_train) in zip(stream.tasks, train):
        started = time.perf_counter()
        optimizer = torch.optim.SGD(params, lr=cfg.optimizer.lr, momentum=cfg.optimizer.momentum)
        n, size = len(x_train), cfg.trainer.batch_size
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, size):
            idx = order[start:start + size]
            loss = F.cross_entropy(heads[task.id](trunk(x_train[idx])), y_train[idx])
            if not math.isfinite(loss.item()):
                raise RuntimeError("nan")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds += time.perf_counter() - started
        started = time.perf_counter()
        matrix.append(evaluate())
        eval_seconds += time.perf_counter() - started
    return train_seconds, eval_seconds, matrix


def clrelu_run(cfg, names) -> tuple[float, float, list[list[float]]]:
    with tempfile.TemporaryDirectory() as folder:
        record = run_experiment(cfg, Path(folder), names)
    return record.train_seconds, record.eval_seconds, record.R.tolist()


def timed(run):
    """The run's (train, eval, matrix), and its whole wall time (stream building and writing files included)."""
    started = time.perf_counter()
    train, evaluation, matrix = run()
    return train, evaluation, matrix, time.perf_counter() - started


def compare_stream(name: str, repeats: int) -> None:
    cfg, names = compose([*COMMON, *STREAMS[name]])
    sides = {"clrelu": [], "bare": []}
    for _ in range(repeats):
        sides["clrelu"].append(timed(lambda: clrelu_run(cfg, names)))
        sides["bare"].append(timed(lambda: bare_loop(cfg)))
    same = all(c[2] == b[2] for c, b in zip(sides["clrelu"], sides["bare"]))
    medians = {side: [statistics.median(r[i] for r in runs) for i in (0, 1, 3)] for side, runs in sides.items()}
    cells = []
    for i, label in enumerate(("train", "eval", "whole run")):
        mine, bare = medians["clrelu"][i], medians["bare"][i]
        cells.append(f"| {mine:.3f} | {bare:.3f} | {mine / bare:.3f} ")
    print(f"| {name} " + "".join(cells) + f"| {'yes' if same else 'NO'} |")


def diagnostics_overhead(repeats: int) -> tuple[float, float]:
    """Median evaluation seconds of the split_fmnist run with the diagnostics on and off, alternating."""
    on, off = (compose([*COMMON, *STREAMS["split_fmnist"], f"diagnostics.enabled={flag}"]) for flag in (True, False))
    seconds = {True: [], False: []}
    for _ in range(repeats):
        for flag, (cfg, names) in ((True, on), (False, off)):
            seconds[flag].append(clrelu_run(cfg, names)[1])
    return statistics.median(seconds[True]), statistics.median(seconds[False])


def plasticity_overhead(repeats: int) -> tuple[float, float, int]:
    """Median seconds (training and evaluation) of the split_fmnist run with the plasticity probe on and off,
    alternating, and the number of tasks it measured."""
    on, off = (compose([*COMMON, *STREAMS["split_fmnist"], f"plasticity.enabled={flag}"]) for flag in (True, False))
    seconds = {True: [], False: []}
    for _ in range(repeats):
        for flag, (cfg, names) in ((True, on), (False, off)):
            with tempfile.TemporaryDirectory() as folder:
                record = run_experiment(cfg, Path(folder), names)
            seconds[flag].append(record.train_seconds + record.eval_seconds)
    return statistics.median(seconds[True]), statistics.median(seconds[False]), record.n_tasks


def startup_seconds() -> tuple[float, float]:
    """`clrelu run --help`, and a run's start to its first training step (import, config, model)."""
    started = time.perf_counter()
    subprocess.run([*CLRELU, "run", "--help"], capture_output=True, check=True)
    help_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([*CLRELU, "run", "stream=synthetic", f"hydra.run.dir={folder}/run"],
                                   stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            if line.startswith("initial"):  # printed right after the first evaluation, before training
                first_step = time.perf_counter() - started
                break
        process.wait()
    return help_seconds, first_step


def data_seconds(root: str) -> float:
    from clrelu.data import datasets

    datasets._decode.cache_clear()
    started = time.perf_counter()
    datasets.load_dataset("fmnist", root)
    return time.perf_counter() - started


def peak_memory_mb(stream_args: list[str]) -> float:
    """Peak resident memory of a whole `clrelu run` process, in MB."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([*CLRELU, "run", *COMMON, *stream_args, f"hydra.run.dir={folder}/run"],
                       capture_output=True, check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# A long permuted MNIST stream with little work a task: 10 steps, the current task evaluated every 100 tasks on
# 1,000 test images, every task after the last. What grows with the number of tasks is the stream's, the
# record's and the files' share of memory, which is what the long-stream target bounds.
LONG = ["stream=permuted_mnist", "stream.scenario=domain", "stream.test_limit=1000", "trainer.iters=10",
        "eval.every=100", "eval.tasks=current"]
PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def long_stream(n_tasks: int, folder: str) -> float:
    """Peak resident memory, in MB, of a LONG run of `n_tasks` tasks into `folder`, measured by a fresh parent
    process (so that no earlier child's peak counts)."""
    command = [*CLRELU, "run", *COMMON, *LONG, f"stream.n_tasks={n_tasks}", f"hydra.run.dir={folder}"]
    out = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *command], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


def long_stream_figures() -> tuple[float, float, float]:
    """(peak MB of 10 tasks, of 1,000 tasks, seconds pandas takes to read the 1,000-task accuracy.csv)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as folder:
        short = long_stream(10, f"{folder}/short")
        long = long_stream(1000, f"{folder}/long")
        started = time.perf_counter()
        matrix = pd.read_csv(f"{folder}/long/accuracy.csv", index_col=0)
        read = time.perf_counter() - started
    assert matrix.shape == (1000, 1000), matrix.shape
    return short, long, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="split_fmnist,split_mnist,permuted_mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-long", dest="long", action="store_false", help="skip the 1,000-task memory figure")
    args = parser.parse_args()
    root = os.environ.get("CLRELU_DATA")
    if root and "split_fmnist" in args.streams:
        # first, while this process is small: a forked child starts out with the parent's resident pages
        print(f"peak resident memory of a split_fmnist run: {peak_memory_mb(STREAMS['split_fmnist']):.0f} MB")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"seconds, medians of {args.repeats} alternating runs per side\n")
    print("| stream | train clrelu | train bare | ratio | eval clrelu | eval bare | ratio "
          "| whole run clrelu | whole run bare | ratio | same accuracy matrix |")
    print("| --- " * 11 + "|")
    for name in args.streams.split(","):
        compare_stream(name, args.repeats)
    help_seconds, first_step = startup_seconds()
    print(f"\nclrelu run --help: {help_seconds:.2f} s; start-up to the first training step: {first_step:.2f} s")
    if root and "split_fmnist" in args.streams:
        print(f"full Fashion-MNIST from the gz files: {data_seconds(root):.2f} s")
        on, off = diagnostics_overhead(args.repeats)
        print(f"split_fmnist evaluation with diagnostics on {on:.3f} s, off {off:.3f} s: overhead {on / off - 1:+.1%}")
        on, off, tasks = plasticity_overhead(args.repeats)
        print(f"split_fmnist training and evaluation with the plasticity probe on {on:.3f} s, off {off:.3f} s: "
              f"overhead {on / off - 1:+.1%} ({(on - off) / tasks * 1000:.0f} ms a task)")
    if root and args.long:
        short, long, read = long_stream_figures()
        print(f"peak resident memory of a permuted_mnist run of 10 tasks {short:.0f} MB, of 1,000 tasks {long:.0f} MB: "
              f"ratio {long / short:.3f}; pandas reads its 1,000 x 1,000 accuracy.csv in {read:.3f} s")


if __name__ == "__main__":
    sys.exit(main())
