"""Benchmark: clrelu's runner against a bare PyTorch loop doing the same work, in one process, alternating.

    CLRELU_DATA=../shared/data python scripts/bench.py            # the three streams, 3 repeats each
    python scripts/bench.py --streams synthetic --repeats 1       # a quick check without data
    python scripts/bench.py --streams split_cifar10 --repeats 2   # the cnn trunk on CIFAR-10 (needs torchvision)

For each stream the bare loop builds the same model from the same seed, trains on the same tensors in
the same batch order with the same optimizer, and evaluates every task after each, so both sides must
end with the same accuracy matrix (the script checks it, bit for bit). Printed: the median seconds of
training and of evaluation on each side and their ratio clrelu/bare, plus start-up time, data loading
time and peak memory (the plasticity probe is off in the comparison: the bare loop has none; its cost
has a line of its own), and for long streams: the peak memory of a 1,000-task permuted MNIST run against a
10-task one, and the seconds pandas takes to read a 1,000-task run's accuracy.csv.

split_cifar10 runs the same work with the `cnn` trunk (3x3 conv 32, ReLU, 2x2 max pool, 3x3 conv 64, ReLU,
2x2 max pool, then the 400 units) on CIFAR-10 from `$CLRELU_DATA/cifar-10-batches-py` when it is
there; otherwise on synthetic data of CIFAR-10's size and on-disk format (random uint8 pixels, random
labels) that the script writes into a temporary folder, and says so (`--cifar-size` makes it smaller). Its
plasticity probe and diagnostics are off (the bare loop does neither). It also prints the time of one task.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from clrelu.config import compose
from clrelu.training.experiment import build, run_experiment, stream_factory

# The work of the issue: 784-400 ReLU MLP, a head per task, SGD lr 0.01 momentum 0.9, batch 128, one epoch.
COMMON = ["model=mlp", "model.hidden=[400]", "optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.9",
          "trainer.batch_size=128", "trainer.epochs=1", "stream.scenario=task", "seed=0"]
# What the bare loop does not do either: the plasticity probe (counted as evaluation time; its cost has its own line)
SAME_WORK = [*COMMON, "plasticity.enabled=false"]
CLRELU = [sys.executable, "-m", "clrelu.cli"]  # the command, in this interpreter
STREAMS = {
    "split_fmnist": ["stream=split_fmnist"],
    "split_mnist": ["stream=split_mnist"],
    "permuted_mnist": ["stream=permuted_mnist", "stream.n_tasks=10"],
    "synthetic": ["stream=synthetic"],
    # the diagnostics off: the bare loop does not count the conv maps' outputs
    "split_cifar10": ["stream=split_cifar10", "model.trunk=cnn", "model.channels=[32,64]", "diagnostics.enabled=false"],
}
CIFAR_FOLDER = "cifar-10-batches-py"


def write_synthetic_cifar10(root: Path, n_train: int, n_test: int) -> None:
    """CIFAR-10's files in its on-disk layout under `root`, with random uint8 pixels and random labels (pickled by
    Python 3, which clrelu reads as it reads the official files)."""
    rng = np.random.default_rng(0)
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True)
    batches = [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]
    for name, n in batches:
        payload = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                   "labels": rng.integers(0, 10, size=n).tolist()}
        (folder / name).write_bytes(pickle.dumps(payload, protocol=4))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=4))


def cifar10_root(n_train: int, n_test: int, scratch: Path) -> str:
    """$CLRELU_DATA when it holds CIFAR-10, else a synthetic copy written into `scratch` (and a line saying so)."""
    root = os.environ.get("CLRELU_DATA")
    if root and (Path(root) / CIFAR_FOLDER).is_dir():
        print(f"split_cifar10: CIFAR-10 from {root}")
        return root
    write_synthetic_cifar10(scratch, n_train, n_test)
    print(f"split_cifar10: SYNTHETIC data in CIFAR-10's format ({n_train} training and {n_test} test images "
          "of random uint8 pixels and random labels; no CIFAR-10 under $CLRELU_DATA): timings only, accuracy is chance")
    return str(scratch)


def materialised(split) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of a split as float32 inputs and targets, built in advance (as clrelu's streams once were)."""
    return split.gather(torch.arange(len(split)))


def bare_trunk(cfg, stream, width: int) -> nn.Module:
    """One ReLU layer of `width` units, after conv blocks (3x3 conv, ReLU, 2x2 max pool) for the cnn trunk."""
    if cfg.model.trunk == "mlp":
        return nn.Sequential(nn.Linear(stream.in_features, width), nn.ReLU())
    channels, (c, h, w) = list(cfg.model.channels), stream.image_shape
    blocks: list[nn.Module] = [nn.Unflatten(1, (c, h, w))]
    for out in channels:
        blocks += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU())


def bare_loop(cfg) -> tuple[float, float, list[list[float]]]:
    """The same run written as a plain PyTorch loop on tensors built in advance: (train seconds, eval seconds,
    accuracy matrix)."""
    torch.manual_seed(cfg.seed)  # as clrelu seeds before building the stream and the model
    generator = torch.Generator().manual_seed(cfg.seed)
    stream = build(stream_factory(cfg.stream), "stream")
    train = [materialised(task.train) for task in stream.tasks]
    test = [materialised(task.test) for task in stream.tasks]
    width, classes = cfg.model.hidden[-1], stream.classes_per_task
    trunk = bare_trunk(cfg, stream, width)
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


def compare_stream(name: str, repeats: int, extra: tuple[str, ...] = ()) -> dict[str, list]:
    """Print the stream's row of the table; return each side's runs (train, eval, matrix, whole run seconds)."""
    cfg, names = compose([*SAME_WORK, *STREAMS[name], *extra])
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
    return sides


def one_task(runs: list, n_tasks: int) -> str:
    """clrelu's median seconds of one task: training, evaluation after it, and the whole run's share."""
    train, evaluation, whole = (statistics.median(r[i] for r in runs) / n_tasks for i in (0, 1, 3))
    return f"one task takes {train:.2f} s of training, {evaluation:.2f} s of evaluation, {whole:.2f} s of the whole run"


def diagnostics_overhead(repeats: int) -> tuple[float, float]:
    """Median evaluation seconds of the split_fmnist run with the diagnostics on and off, alternating."""
    on, off = (compose([*SAME_WORK, *STREAMS["split_fmnist"], f"diagnostics.enabled={flag}"]) for flag in (True, False))
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


PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_memory_mb(run_args: list[str], folder: str) -> float:
    """Peak resident memory, in MB, of a whole `clrelu run` process writing into `folder`, measured by a fresh
    parent process (so that no earlier child's peak counts)."""
    command = [*CLRELU, "run", *COMMON, *run_args, f"hydra.run.dir={folder}"]
    out = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *command], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


# A long permuted MNIST stream with little work a task: 10 steps, the current task evaluated every 100 tasks on
# 1,000 test images, every task after the last. What grows with the number of tasks is the stream's, the
# record's and the files' share of memory, which is what the long-stream target bounds.
LONG = ["stream=permuted_mnist", "stream.scenario=domain", "stream.test_limit=1000", "trainer.iters=10",
        "eval.every=100", "eval.tasks=current"]


def long_stream(n_tasks: int, folder: str) -> float:
    """Peak resident memory, in MB, of a LONG run of `n_tasks` tasks into `folder`."""
    return peak_memory_mb([*LONG, f"stream.n_tasks={n_tasks}"], folder)


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
    parser.add_argument("--cifar-size", type=int, nargs=2, default=(50000, 10000), metavar=("TRAIN", "TEST"),
                        help="images of the synthetic CIFAR-10 (CIFAR-10's own numbers by default)")
    args = parser.parse_args()
    root = os.environ.get("CLRELU_DATA")
    if root and "split_fmnist" in args.streams:
        with tempfile.TemporaryDirectory() as folder:
            peak = peak_memory_mb(STREAMS["split_fmnist"], f"{folder}/run")
        print(f"peak resident memory of a split_fmnist run: {peak:.0f} MB")
    streams = args.streams.split(",")
    scratch = tempfile.TemporaryDirectory()
    extra = {}
    if "split_cifar10" in streams:
        extra["split_cifar10"] = (f"data.root={cifar10_root(*args.cifar_size, Path(scratch.name))}",)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"seconds, medians of {args.repeats} alternating runs per side\n")
    print("| stream | train clrelu | train bare | ratio | eval clrelu | eval bare | ratio "
          "| whole run clrelu | whole run bare | ratio | same accuracy matrix |")
    print("| --- " * 11 + "|")
    notes = []
    for name in streams:
        sides = compare_stream(name, args.repeats, extra.get(name, ()))
        if name == "split_cifar10":
            tasks = len(sides["clrelu"][0][2])
            notes.append(f"split_cifar10 with the cnn trunk ({tasks} tasks): {one_task(sides['clrelu'], tasks)}")
    scratch.cleanup()
    for note in notes:
        print(note)
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
