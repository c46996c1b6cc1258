"""Benchmark: clrelu's runner against a bare PyTorch loop doing the same work, in one process, alternating.

    CLRELU_DATA=../shared/data python scripts/bench.py            # the default streams, 3 repeats each
    python scripts/bench.py --streams synthetic --repeats 1       # a quick check without data
    python scripts/bench.py --streams split_cifar10 --repeats 2   # the cnn trunk on CIFAR-10 (needs torchvision)

Every run uses one torch thread (`--threads`), and the machine's load average is printed before and after.
For each stream the bare loop builds the same model from the same seed, trains on the same tensors in
the same batch order with the same optimizer, and evaluates every task at initialisation and after each
task, so both sides must end with the same accuracy matrix (the script checks it, bit for bit, and exits
with status 1 when they differ). Printed: the median seconds of training and of evaluation on each side
and their ratio clrelu/bare, plus start-up time, data loading time and peak memory (the plasticity probe
is off in the comparison: the bare loop has none; the row "split_fmnist, every default on" runs clrelu
with the probe and the diagnostics on against the same bare loop), the evaluation's seconds per pass,
and for long streams: the peak memory of a 1,000-task permuted MNIST run against a 10-task one, and the
seconds pandas takes to read a 1,000-task run's accuracy.csv. With data, rotated MNIST (clrelu and the
bare loop, whose matrices must agree too) and rotated Fashion-MNIST (clrelu) at their defaults, 20 tasks:
evaluation against training (`--no-rotated` skips it). A sweep of `--sweep-jobs` synthetic jobs through
`clrelu run -m` (Hydra's basic launcher: every job in one process) against a sweep of one job: its wall time
against the sum of its jobs' own training and evaluation, the cost of each job beyond it, and that cost's
split between clrelu's own work (the check of the job's folder before the sweep, the job's claim, files and
set-up) and Hydra's (composing the job's config, twice, and launching it).

split_cifar10 runs the same work with the `cnn` trunk (3x3 conv 32, ReLU, 2x2 max pool, 3x3 conv 64, ReLU,
2x2 max pool, then the 400 units) on CIFAR-10 from `$CLRELU_DATA/cifar-10-batches-py` when it is
there; otherwise on synthetic data of CIFAR-10's size and on-disk format (random uint8 pixels, random
labels) that the script writes into a temporary folder, and says so (`--cifar-size` makes it smaller). Its
plasticity probe and diagnostics are off (the bare loop does neither). It also prints the time of one task.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from clrelu.config import compose
from clrelu.training import trainer as trainer_module
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
    # the same with a test cache that holds all ten permuted test sets as uint8 (78 MB; the bare loop's float32: 314 MB)
    "permuted_mnist_cached": ["stream=permuted_mnist", "stream.n_tasks=10", "stream.test_cache=7"],
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


CLOCK = time.perf_counter  # of the in-process runs (both sides): wall time, or this thread's CPU time (--clock cpu)


def use_cpu_clock() -> None:
    """Time the in-process runs, on both sides, by this thread's CPU time: with one torch thread their work runs on
    it, and CPU time leaves out the time other processes hold the core, so ratios hold steadier on a shared machine.
    clrelu's trainer times itself with time.perf_counter, so it gets the same clock."""
    global CLOCK
    CLOCK = time.thread_time
    trainer_module.time = types.SimpleNamespace(perf_counter=time.thread_time)


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


def bare_loop(cfg) -> tuple[float, float, list[list[float]], float]:
    """The same run written as a plain PyTorch loop on tensors built in advance: (train seconds, eval seconds,
    accuracy matrix, the seconds of the evaluation at initialisation, included in eval seconds)."""
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

    started = CLOCK()
    evaluate()
    initial_seconds = eval_seconds = CLOCK() - started
    for task, (x_train, y_train) in zip(stream.tasks, train):
        started = CLOCK()
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
        train_seconds += CLOCK() - started
        started = CLOCK()
        matrix.append(evaluate())
        eval_seconds += CLOCK() - started
    return train_seconds, eval_seconds, matrix, initial_seconds


def clrelu_run(cfg, names) -> tuple[float, float, list[list[float]], float]:
    """As bare_loop: (train seconds, eval seconds with the probe and the initial evaluation, accuracy matrix, the
    initial evaluation's seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        record = run_experiment(cfg, Path(folder), names)
    evaluation = record.eval_seconds + record.eval_seconds_initial
    return record.train_seconds, evaluation, record.R.tolist(), record.eval_seconds_initial


TRAIN, EVAL, MATRIX, WHOLE, INITIAL = range(5)  # the fields of a timed run


def timed(run) -> tuple:
    """The run's (train, eval, matrix), its whole wall time (stream building and writing files included), and its
    initial evaluation's seconds."""
    started = CLOCK()
    train, evaluation, matrix, initial = run()
    return train, evaluation, matrix, CLOCK() - started, initial


def median(runs: list, field: int) -> float:
    return statistics.median(r[field] for r in runs)


def compare_stream(label: str, overrides: list[str], repeats: int) -> tuple[dict[str, list], bool]:
    """Print the row of the table of the run `overrides` describe; return each side's timed runs and whether both
    sides ended with the same accuracy matrix every time."""
    cfg, names = compose(overrides)
    sides = {"clrelu": [], "bare": []}
    for _ in range(repeats):
        sides["clrelu"].append(timed(lambda: clrelu_run(cfg, names)))
        sides["bare"].append(timed(lambda: bare_loop(cfg)))
    same = all(c[MATRIX] == b[MATRIX] for c, b in zip(sides["clrelu"], sides["bare"]))
    cells = []
    for field in (TRAIN, EVAL, None, WHOLE):
        if field is None:  # training and evaluation together
            mine, bare = (statistics.median(r[TRAIN] + r[EVAL] for r in runs) for runs in sides.values())
            cells.append(f"| {mine / bare:.3f} ")
            continue
        mine, bare = median(sides["clrelu"], field), median(sides["bare"], field)
        cells.append(f"| {mine:.3f} | {bare:.3f} | {mine / bare:.3f} ")
    print(f"| {label} " + "".join(cells) + f"| {'yes' if same else 'NO'} |")
    return sides, same


def per_pass(label: str, sides: dict[str, list]) -> str:
    """The evaluation's seconds per pass after a task on each side, and the pass at initialisation apart: clrelu's
    first pass keeps the test images it reads (stream.test_cache), which the bare loop builds before its clock runs."""
    passes = len(sides["clrelu"][0][MATRIX])
    mine, bare = (statistics.median(r[EVAL] - r[INITIAL] for r in runs) / passes for runs in sides.values())
    first = median(sides["clrelu"], INITIAL) / median(sides["bare"], INITIAL)
    return (f"{label}: per pass after a task ({passes} a side) clrelu {mine:.4f} s, bare {bare:.4f} s: ratio "
            f"{mine / bare:.3f}; the pass at initialisation alone: {first:.3f}")


def one_task(runs: list, n_tasks: int) -> str:
    """clrelu's median seconds of one task: training, evaluation after it, and the whole run's share."""
    train, evaluation, whole = (median(runs, field) / n_tasks for field in (TRAIN, EVAL, WHOLE))
    return f"one task takes {train:.2f} s of training, {evaluation:.2f} s of evaluation, {whole:.2f} s of the whole run"


def diagnostics_overhead(repeats: int) -> tuple[float, float]:
    """Median evaluation seconds of the split_fmnist run with the diagnostics on and off, alternating."""
    on, off = (compose([*SAME_WORK, *STREAMS["split_fmnist"], f"diagnostics.enabled={flag}"]) for flag in (True, False))
    seconds = {True: [], False: []}
    for _ in range(repeats):
        for flag, (cfg, names) in ((True, on), (False, off)):
            seconds[flag].append(clrelu_run(cfg, names)[1])
    return statistics.median(seconds[True]), statistics.median(seconds[False])


def plasticity_overhead(repeats: int) -> tuple[float, float, float, int]:
    """The split_fmnist run with the plasticity probe on and off, alternating: the median evaluation seconds of each
    (the probe is counted there; training, the same work either way, would only add its noise to the difference),
    the median training and evaluation seconds with the probe off, and the number of tasks the probe measured."""
    on, off = (compose([*COMMON, *STREAMS["split_fmnist"], f"plasticity.enabled={flag}"]) for flag in (True, False))
    evaluation, whole = {True: [], False: []}, []
    for _ in range(repeats):
        for flag, (cfg, names) in ((True, on), (False, off)):
            train, seconds, matrix, _ = clrelu_run(cfg, names)
            evaluation[flag].append(seconds)
            if not flag:
                whole.append(train + seconds)
    medians = (statistics.median(seconds) for seconds in (evaluation[True], evaluation[False], whole))
    return (*medians, len(matrix))  # the matrix has a row per task


def rotated_figures(repeats: int) -> tuple[dict[str, dict[str, tuple[float, float]]], bool]:
    """Median (training, evaluation) seconds of rotated MNIST and rotated Fashion-MNIST at their defaults (20 tasks,
    every task evaluated after every task, the probe and the diagnostics on), alternating; rotated MNIST also
    through the bare loop, which does the same work on rotated images built in advance. And whether rotated MNIST's
    accuracy matrices were the same on both sides every time."""
    runs = {name: compose([*COMMON, f"stream={name}"]) for name in ("rotated_mnist", "rotated_fmnist")}
    sides = {("rotated_mnist", "clrelu"): lambda cfg, names: clrelu_run(cfg, names),
             ("rotated_mnist", "bare"): lambda cfg, names: bare_loop(cfg),
             ("rotated_fmnist", "clrelu"): lambda cfg, names: clrelu_run(cfg, names)}
    timed_runs = {key: [] for key in sides}
    for _ in range(repeats):
        for (name, side), run in sides.items():
            timed_runs[name, side].append(run(*runs[name]))
    same = all(c[MATRIX] == b[MATRIX] for c, b in zip(timed_runs["rotated_mnist", "clrelu"],
                                                       timed_runs["rotated_mnist", "bare"]))
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for (name, side), values in timed_runs.items():
        found.setdefault(name, {})[side] = (median(values, TRAIN), median(values, EVAL))
    return found, same


def rotated_lines(found: dict[str, dict[str, tuple[float, float]]], repeats: int) -> list[str]:
    """A line per rotated stream: each side's training and evaluation seconds, and evaluation over training."""
    lines = []
    for name, sides in found.items():
        cells = [f"{side} training {train:.2f} s, evaluation {evaluation:.2f} s ({evaluation / train:.2f} times "
                 f"training)" for side, (train, evaluation) in sides.items()]
        lines.append(f"{name} at its defaults (20 tasks, medians of {repeats}): " + "; ".join(cells))
    return lines


# `clrelu <arguments>` (clrelu.cli.main) in a process of its own, timing by the clock its first argument names (wall:
# time.perf_counter; cpu: this thread's CPU time, the basic launcher runs every job in it) the whole command, the entry
# point's check of every job before the sweep (plan.plan, its compose of the sweep's config included), each job's part
# that is clrelu's (job._run_in: claim, .hydra/ files, the run), and the runs' own training and evaluation (the
# trainer's clock, made the same). Its last line: those seconds as JSON.
TIMED_SWEEP = """
import json, sys, time, types
import clrelu.launch.job as job, clrelu.launch.plan as plan, clrelu.training.trainer as trainer
from clrelu.cli import main
clock = {"wall": time.perf_counter, "cpu": time.thread_time}[sys.argv[1]]
trainer.time = types.SimpleNamespace(perf_counter=clock)
spent = {"plan": 0.0, "run_in": 0.0}
def timed(module, name):
    inner = getattr(module, name)
    def wrapper(*args, **kwargs):
        started = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name.strip('_')] += clock() - started
    setattr(module, name, wrapper)
timed(plan, "plan"); timed(job, "_run_in")
started = clock()
code = main(sys.argv[2:])
spent["run"] = spent.pop("run_in")
print(json.dumps({"code": code, "total": clock() - started, **spent}))
"""


def sweep_seconds(jobs: int, threads: int, clock: str) -> dict[str, float]:
    """A sweep of `jobs` synthetic runs with `clrelu run -m` (Hydra's basic launcher: one process), in a process of its
    own: its wall and CPU seconds, and by `clock` (wall or cpu) the sum of its jobs' own training and evaluation
    seconds (from their summary.csv), the seconds of clrelu's entry point (`plan`), of clrelu's part of every job
    (`run`) and of the command (`total`, from `clrelu run` to its exit)."""
    seeds = ",".join(str(seed) for seed in range(jobs))
    with tempfile.TemporaryDirectory() as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", TIMED_SWEEP, clock, "run", "-m", "stream=synthetic",
                              f"threads={threads}", f"seed={seeds}", f"hydra.sweep.dir={folder}/sweep"],
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        summaries = [pd.read_csv(path) for path in Path(folder, "sweep").glob("*/summary.csv")]
    timed = json.loads(out.stdout.splitlines()[-1])
    assert timed["code"] == 0 and len(summaries) == jobs, f"{len(summaries)} of {jobs} jobs wrote a summary"
    own = sum(float((s.train_seconds + s.eval_seconds + s.eval_seconds_initial).iloc[0]) for s in summaries)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": wall, "cpu": cpu, "own": own, "plan": timed["plan"], "run": timed["run"], "total": timed["total"]}


def compose_seconds(repeats: int = 11) -> float:
    """Median seconds (by CLOCK) of composing one job of the sweep (clrelu's config, `hydra.compose`, Hydra's public
    API), in this process, after two composes that warm it up: what each compose of a job costs."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from clrelu.config import config_dir

    seconds = []
    with initialize_config_dir(str(config_dir()), version_base="1.3", job_name="clrelu"):
        for seed in range(repeats + 2):
            started = CLOCK()
            hydra_compose("config", ["stream=synthetic", "threads=1", f"seed={seed}"], return_hydra_config=True)
            seconds.append(CLOCK() - started)
    return statistics.median(seconds[2:])


HYDRA_COMPOSES = 2  # of each job, with Hydra's basic sweeper (validate_batch_is_legal) and launcher (the job's config)


def sweep_figures(jobs: int, threads: int, repeats: int) -> str:
    """A sweep of `jobs` jobs against a sweep of one, alternating: the median wall (and CPU) seconds, their jobs' own
    training and evaluation, what each job beyond the first costs besides its own work, and its split: clrelu's own
    (the entry point's check of the job, composing its config once; the job's claim, .hydra/ files and the run's
    set-up, checkpoints and files) and Hydra's (composing the job's config twice, and launching it)."""
    clock = "cpu" if CLOCK is time.thread_time else "wall"
    found = {1: [], jobs: []}
    for _ in range(repeats):
        for n in found:
            found[n].append(sweep_seconds(n, threads, clock))
    one, many = ({key: statistics.median(r[key] for r in found[n]) for key in found[n][0]} for n in found)

    def per_job(key: str, less_own: bool = False) -> float:
        """What a job beyond the first adds to `key` (less its own training and evaluation)."""
        return ((many[key] - less_own * many["own"]) - (one[key] - less_own * one["own"])) / (jobs - 1)

    extra, extra_cpu = per_job("wall", True), per_job("cpu", True)
    command = per_job("total", True)
    plan, run = per_job("plan"), per_job("run", True)
    hydra = command - plan - run
    compose = compose_seconds()
    ms = 1000
    return (f"a sweep of {jobs} synthetic jobs (clrelu run -m, Hydra's basic launcher): {many['wall']:.2f} s wall "
            f"({many['cpu']:.2f} s CPU), its jobs' own training and evaluation {many['own']:.2f} s; a sweep of one job "
            f"{one['wall']:.2f} s ({one['cpu']:.2f} s CPU, own {one['own']:.2f} s); each job beyond the first costs "
            f"{extra:.3f} s wall ({extra_cpu:.3f} s CPU) besides its own training and evaluation\n"
            f"  its {clock} time inside the command, {command * ms:.0f} ms: clrelu's own {(plan + run) * ms:.0f} ms "
            f"(the check of its folder before the sweep {plan * ms:.0f} ms, a compose of its config in it; its claim, "
            f".hydra/ files, the run's set-up, checkpoints and files {run * ms:.0f} ms), Hydra's {hydra * ms:.0f} ms "
            f"({HYDRA_COMPOSES} composes of its config, {compose * ms:.0f} ms each alone: "
            f"{HYDRA_COMPOSES * compose * ms:.0f} ms; the rest of its sweeper and launcher "
            f"{(hydra - HYDRA_COMPOSES * compose) * ms:.0f} ms)")


def startup_seconds(threads: int) -> tuple[float, float]:
    """`clrelu run --help`, and a run's start to its first training step (import, config, model)."""
    started = time.perf_counter()
    subprocess.run([*CLRELU, "run", "--help"], capture_output=True, check=True)
    help_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([*CLRELU, "run", "stream=synthetic", f"threads={threads}", f"hydra.run.dir={folder}/run"],
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


def peak_memory_mb(run_args: list[str], folder: str, threads: int) -> float:
    """Peak resident memory, in MB, of a whole `clrelu run` process with `threads` torch threads writing into
    `folder`, measured by a fresh parent process (so that no earlier child's peak counts)."""
    command = [*CLRELU, "run", *COMMON, *run_args, f"threads={threads}", f"hydra.run.dir={folder}"]
    out = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *command], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


# A long permuted MNIST stream with little work a task: 10 steps, the current task evaluated every 100 tasks on
# 1,000 test images, every task after the last. What grows with the number of tasks is the stream's, the
# record's and the files' share of memory, which is what the long-stream target bounds.
LONG = ["stream=permuted_mnist", "stream.scenario=domain", "stream.test_limit=1000", "trainer.iters=10",
        "eval.every=100", "eval.tasks=current"]


def long_stream(n_tasks: int, folder: str, threads: int) -> float:
    """Peak resident memory, in MB, of a LONG run of `n_tasks` tasks into `folder`."""
    return peak_memory_mb([*LONG, f"stream.n_tasks={n_tasks}"], folder, threads)


def long_stream_figures(threads: int) -> tuple[float, float, float]:
    """(peak MB of 10 tasks, of 1,000 tasks, seconds pandas takes to read the 1,000-task accuracy.csv)."""
    with tempfile.TemporaryDirectory() as folder:
        short = long_stream(10, f"{folder}/short", threads)
        long = long_stream(1000, f"{folder}/long", threads)
        started = time.perf_counter()
        matrix = pd.read_csv(f"{folder}/long/accuracy.csv", index_col=0)
        read = time.perf_counter() - started
    assert matrix.shape == (1000, 1000), matrix.shape
    return short, long, read


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 minutes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="split_fmnist,split_mnist,permuted_mnist,permuted_mnist_cached")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (default 1)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time the in-process runs by wall time or by this thread's CPU time (with --threads 1)")
    parser.add_argument("--no-long", dest="long", action="store_false", help="skip the 1,000-task memory figure")
    parser.add_argument("--no-rotated", dest="rotated", action="store_false",
                        help="skip rotated MNIST and Fashion-MNIST at their defaults (needs data; minutes)")
    parser.add_argument("--rotated-repeats", type=int, default=1)
    parser.add_argument("--sweep-jobs", type=int, default=20, help="jobs of the sweep figure (0 skips it)")
    parser.add_argument("--cifar-size", type=int, nargs=2, default=(50000, 10000), metavar=("TRAIN", "TEST"),
                        help="images of the synthetic CIFAR-10 (CIFAR-10's own numbers by default)")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        use_cpu_clock()
    print(f"before: {load()}")
    root = os.environ.get("CLRELU_DATA")
    if root and "split_fmnist" in args.streams:
        with tempfile.TemporaryDirectory() as folder:
            peak = peak_memory_mb(STREAMS["split_fmnist"], f"{folder}/run", args.threads)
        print(f"peak resident memory of a split_fmnist run: {peak:.0f} MB")
    streams = args.streams.split(",")
    scratch = tempfile.TemporaryDirectory()
    extra = {}
    if "split_cifar10" in streams:
        extra["split_cifar10"] = (f"data.root={cifar10_root(*args.cifar_size, Path(scratch.name))}",)
    clock = "seconds of CPU time" if args.clock == "cpu" else "seconds"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"{clock}, medians of {args.repeats} alternating runs per side\n")
    print("| stream | train clrelu | train bare | ratio | eval clrelu | eval bare | ratio | train+eval ratio "
          "| whole run clrelu | whole run bare | ratio | same accuracy matrix |")
    print("| --- " * 12 + "|")
    notes, passes, differ = [], [], []
    rows = [(name, [*SAME_WORK, *STREAMS[name], *extra.get(name, ())]) for name in streams]
    if "split_fmnist" in streams:  # the defaults as a user runs them: the probe and the diagnostics on
        rows.insert(streams.index("split_fmnist") + 1,
                    ("split_fmnist, every default on", [*COMMON, *STREAMS["split_fmnist"]]))
    for label, overrides in rows:
        sides, same = compare_stream(label, overrides, args.repeats)
        if not same:
            differ.append(label)
        passes.append(per_pass(label, sides))
        if label == "split_cifar10":
            tasks = len(sides["clrelu"][0][MATRIX])
            notes.append(f"split_cifar10 with the cnn trunk ({tasks} tasks): {one_task(sides['clrelu'], tasks)}")
    scratch.cleanup()
    for note in notes:
        print(note)
    print("\nevaluation (the probe's seconds are part of clrelu's in the row with every default on):")
    for line in passes:
        print(line)
    help_seconds, first_step = startup_seconds(args.threads)
    print(f"\nclrelu run --help: {help_seconds:.2f} s; start-up to the first training step: {first_step:.2f} s")
    if args.sweep_jobs > 1:
        print(sweep_figures(args.sweep_jobs, args.threads, args.repeats))
    if root and "split_fmnist" in args.streams:
        print(f"full Fashion-MNIST from the gz files: {data_seconds(root):.2f} s")
        on, off = diagnostics_overhead(args.repeats)
        print(f"split_fmnist evaluation with diagnostics on {on:.3f} s, off {off:.3f} s: overhead {on / off - 1:+.1%}")
        on, off, whole, tasks = plasticity_overhead(args.repeats)
        print(f"split_fmnist evaluation with the plasticity probe on {on:.3f} s, off {off:.3f} s: the probe "
              f"{(on - off) / tasks * 1000:.0f} ms a task, {(on - off) / whole:+.1%} of training and evaluation")
    if root and args.rotated:
        found, same = rotated_figures(args.rotated_repeats)
        for line in rotated_lines(found, args.rotated_repeats):
            print(line)
        if not same:
            differ.append("rotated_mnist")
    if root and args.long:
        short, long, read = long_stream_figures(args.threads)
        print(f"peak resident memory of a permuted_mnist run of 10 tasks {short:.0f} MB, of 1,000 tasks {long:.0f} MB: "
              f"ratio {long / short:.3f}; pandas reads its 1,000 x 1,000 accuracy.csv in {read:.3f} s")
    print(f"after: {load()}")
    if differ:
        print(f"bench.py: error: clrelu and the bare loop ended with different accuracy matrices: {', '.join(differ)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
