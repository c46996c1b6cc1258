"""clrelu from Python (a notebook, a script): `run` an experiment exactly as `clrelu run` does, and `load` runs
into pandas. Imported lazily by `clrelu/__init__.py`, so that `import clrelu` and `clrelu run --help` stay fast."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from clrelu.errors import ClreluError, ConfigError, reports
from clrelu.report import load as loading
from clrelu.rundir import csvfiles
from clrelu.rundir import files as rundir_files


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, the row of its summary.csv, and every file it wrote there, by name."""

    folder: Path
    summary: dict
    files: dict[str, Path]

    def __repr__(self) -> str:
        return (f"RunResult(folder={str(self.folder)!r}, status={self.summary.get('status')!r}, "
                f"avg_accuracy={self.summary.get('avg_accuracy')!r}, files={sorted(self.files)})")


def _argument(folder: str | os.PathLike) -> str:
    """`hydra.run.dir=<folder>` in Hydra's override grammar: quoted, so that any path is taken as it is."""
    text = os.fspath(folder).replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${")
    return f"hydra.run.dir='{text}'"


def run(overrides: Sequence[str] = (), folder: str | os.PathLike | None = None) -> RunResult:
    """Run one experiment in this process, exactly as `clrelu run <overrides>` runs it: the same config checks,
    the same run-folder guard and lock, the `.hydra/` files and run.log, the same log lines.

    `overrides`: Hydra overrides, e.g. `["model=pnn", "stream=split_mnist", "seed=3"]`. `folder`: the run
    folder (`hydra.run.dir`); None makes a new one under outputs/runs, as the command does. A folder that
    already holds a run is refused, as the command refuses it (add `resume=true` to continue an unfinished
    one). Returns the finished run's RunResult; raises a ClreluError (a ConfigError for bad input) with the
    one-line message the command prints, and KeyboardInterrupt when interrupted.

        >>> result = clrelu.run(["model=pnn", "stream=split_mnist"])
        >>> result.summary["avg_accuracy"]
    """
    from clrelu import cli  # imports Hydra: here, not when clrelu is imported

    if isinstance(overrides, (str, bytes)) or not all(isinstance(o, str) for o in overrides):
        raise TypeError("clrelu.run: overrides must be a list of strings, such as ['model=pnn', 'stream=split_mnist']")
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ConfigError(f"clrelu.run: {flags[0]}: takes overrides (key=value) for one run; flags such as -m and "
                          "--cfg belong to the command line (call clrelu.run once per configuration)")
    arguments = [*overrides, *([] if folder is None else [_argument(folder)])]
    root = logging.getLogger()
    saved = (sys.argv, os.environ.get("HYDRA_FULL_ERROR"), root.handlers[:], root.level, logging.raiseExceptions)
    try:
        with reports() as messages:
            try:
                status, records = cli.run_and_record(arguments)
            except SystemExit as stop:  # the run-folder guard refuses a run this way (Hydra swallows exceptions)
                status, records = stop.code if isinstance(stop.code, int) else 1, []
    finally:
        for handler in root.handlers:  # Hydra's console and run.log handlers: the run is over
            if handler not in saved[2]:
                handler.close()
        sys.argv, root.handlers[:], root.level, logging.raiseExceptions = saved[0], saved[2], saved[3], saved[4]
        if saved[1] is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved[1]
    if status == 130:
        raise KeyboardInterrupt
    if status or not records:
        message = messages[-1] if messages else f"clrelu run {' '.join(arguments)}: stopped with exit status {status}"
        raise (ConfigError if status == 2 else ClreluError)(message)
    record = records[-1]
    folder = Path(record.folder).resolve()
    written = {name: folder / name for name in sorted(rundir_files.names(folder))
               if not name.startswith(".") and rundir_files.kind(folder, name) == "file"}
    return RunResult(folder, record.summary(), written)


class Results:
    """Runs loaded into pandas.

    `runs`: a row per run, its summary (metrics, model, stream, seed, status, ...) and every key of its
    composed config (`stream.n_tasks`, `model.hidden`, ...), and `run_dir`. Read on first use, the growing
    files of every run end to end, each with a first column `run_dir` to join with `runs`: `evals`
    (after_task, eval_task, accuracy, loss, ...), `online`, `plasticity`, `model_stats`, `activations`.
    """

    def __init__(self, runs: pd.DataFrame):
        self.runs = runs

    def _table(self, name: str) -> pd.DataFrame:
        return loading.load_table(self.runs.run_dir if len(self.runs) else [], name)

    @cached_property
    def evals(self) -> pd.DataFrame:
        return self._table(csvfiles.EVALS)

    @cached_property
    def online(self) -> pd.DataFrame:
        return self._table(csvfiles.ONLINE)

    @cached_property
    def plasticity(self) -> pd.DataFrame:
        return self._table(csvfiles.PLASTICITY)

    @cached_property
    def model_stats(self) -> pd.DataFrame:
        return self._table(csvfiles.MODEL_STATS)

    @cached_property
    def activations(self) -> pd.DataFrame:
        return self._table(csvfiles.ACTIVATIONS)

    def __repr__(self) -> str:
        return f"Results({len(self.runs)} runs; runs, evals, online, plasticity, model_stats, activations)"


def load(paths: str | os.PathLike | RunResult | Iterable[str | os.PathLike | RunResult]) -> Results:
    """Every run under `paths` (run folders, sweep folders, or RunResults; searched recursively for summary.csv)
    as pandas DataFrames (see Results). A path that does not exist is a ConfigError; a damaged run is left out
    with a warning naming its file.

        >>> results = clrelu.load("outputs/sweeps/2026-11-22_10-00-00")
        >>> results.runs.groupby("strategy").avg_accuracy.mean()
    """
    if isinstance(paths, (str, os.PathLike, RunResult)):
        paths = [paths]
    folders = [p.folder if isinstance(p, RunResult) else Path(p) for p in paths]
    for folder in folders:
        if not folder.exists():
            raise ConfigError(f"{folder}: no such file or folder")
    return Results(loading.load(*folders))
