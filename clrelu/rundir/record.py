"""A run's record: everything it has measured so far, written to its CSV files after every task."""

from __future__ import annotations

import copy
import csv
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clrelu.errors import RunError
from clrelu.measure import metrics
from clrelu.rundir.csvfiles import (
    ACCURACY,
    ACTIVATION_COLUMNS,
    ACTIVATIONS,
    EVAL_COLUMNS,
    EVALS,
    FINAL_PLASTICITY,
    FORGETTING,
    MODEL_STATS,
    ONLINE,
    ONLINE_COLUMNS,
    OVERLAP,
    OVERLAP_COLUMNS,
    PLASTICITY,
    PLASTICITY_COLUMNS,
    SUMMARY,
    append_csv,
    write_csv,
)


def _nanmean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN when there are none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


@dataclass
class Evaluation:
    """The result of testing the model on one task's test set."""

    task: int
    accuracy: float
    loss: float
    n_samples: int


class RunRecord:
    """Everything a run has measured so far, and how to write it to its folder.

    Its memory is the T x T accuracy matrix and O(T) numbers, whatever the number of evaluations.
    The files that grow with the run (the matrices, evals.csv, online.csv, the diagnostics and
    model_stats.csv, and any file given rows through `add_rows`) get the rows of each task appended
    in one write; summary.csv is rewritten.
    `state()` keeps the byte length of each appended file, so that a resumed run truncates them back
    to its checkpoint and appends the same bytes again; the accuracy matrix is then read back from
    evals.csv, its long form.
    """

    STATE = ("rows", "lengths", "online", "tasks_done", "train_seconds", "eval_seconds", "eval_seconds_initial",
             "n_params", "mean_sparsity", "mean_overlap", "final_plasticity", "strategy_actions", "config")
    ADDED_LATER = ("strategy_actions", "eval_seconds_initial")  # a checkpoint of an earlier clrelu lacks them

    def __init__(self, folder: Path, n_tasks: int, meta: dict, diagnostics: bool = False, config: dict | None = None):
        self.folder = folder
        self.n_tasks = n_tasks
        self.meta = meta  # model, stream, scenario, seed, ...: the run's identity in summary.csv
        self.config = config or {}  # the resolved config the run started with, checked on resume
        self.R = np.full((n_tasks, n_tasks), np.nan)  # NaN where undefined or not evaluated
        self.skipped = np.zeros((n_tasks, n_tasks), dtype=bool)  # not evaluated, by the evaluation schedule
        self.b = np.full(n_tasks, np.nan)  # the accuracy on each task at initialisation
        self.b_skipped = np.zeros(n_tasks, dtype=bool)
        self.rows: list[int] = []  # the after_task indices recorded, in order
        self.online: list[float] = []  # the online accuracy of each phase, in order
        self.tasks_done = 0
        self.train_seconds = self.eval_seconds = 0.0  # training; evaluation after tasks and the plasticity probe
        self.eval_seconds_initial = 0.0  # the evaluation at initialisation (for FWT's b)
        self.n_params = 0
        self.mean_sparsity = self.mean_overlap = float("nan")  # diagnostics of the latest evaluation after a task
        self.final_plasticity = dict.fromkeys(FINAL_PLASTICITY, float("nan"))  # of the latest task probed
        self.strategy_actions = float("nan")  # summed over the tasks; NaN for a strategy without such actions
        self.status, self.error = "running", ""
        self.tracker = None  # told what every write appended (clrelu/loggers/base.py's Logger), or None
        self._appended: dict[str, tuple[list[str], list[list]]] = {}  # rows appended since summary.csv was written
        self.lengths: dict[str, int] = {}  # bytes written so far to each appended file
        self._files = {ACCURACY: ["after_task", *(str(j) for j in range(n_tasks))],  # name -> header, created at
                       FORGETTING: ["after_task", *(str(j) for j in range(n_tasks))],  # the first write
                       EVALS: list(EVAL_COLUMNS), ONLINE: list(ONLINE_COLUMNS)}
        if diagnostics:
            self._files.update({ACTIVATIONS: list(ACTIVATION_COLUMNS), OVERLAP: list(OVERLAP_COLUMNS)})
        self._pending: dict[str, list[list]] = {name: [] for name in self._files}  # rows to append at the next write
        self._best = np.full(n_tasks, -np.inf)  # per task, the best evaluated accuracy so far (for forgetting)
        self._best_through = -1  # the last row folded into _best

    # --- recording ---------------------------------------------------------------------------------

    def add(self, after_task: int, evaluations: list[Evaluation], n_params: int) -> None:
        """Record the evaluations made at initialisation (`after_task` -1) or after a task; the tasks not in
        `evaluations` count as not evaluated there (the schedule skipped them)."""
        for e in evaluations:
            self._pending[EVALS].append([after_task, e.task, e.accuracy, e.loss, e.n_samples, n_params])
        if after_task < 0:
            self.b_skipped[:] = True
            for e in evaluations:
                self.b[e.task], self.b_skipped[e.task] = e.accuracy, False
        else:
            self.skipped[after_task] = True
            for e in evaluations:
                self.R[after_task, e.task], self.skipped[after_task, e.task] = e.accuracy, False
            self.rows.append(after_task)
            self._pending[ACCURACY].append([after_task, *self.R[after_task].tolist()])
            self._pending[FORGETTING].append([after_task, *self._forgetting_row(after_task).tolist()])
        self.n_params = n_params

    def _forgetting_row(self, i: int) -> np.ndarray:
        """Row i of metrics.forgetting_matrix(R, skipped), from the running best of the rows before it (O(T))."""
        for row in range(self._best_through + 1, i):  # rows never recorded (joint) are undefined, not skipped
            self._best[:row + 1] = np.nan
        T = self.n_tasks
        row = np.full(T, np.nan)
        earlier = self._best[:i]
        ok = ~self.skipped[i, :i] & (earlier != -np.inf)
        row[:i][ok] = earlier[ok] - self.R[i, :i][ok]
        candidates = np.where(self.skipped[i], -np.inf, self.R[i])
        candidates[i + 1:] = -np.inf
        self._best = np.maximum(self._best, candidates)
        self._best_through = i
        return row

    def add_rows(self, name: str, header: list[str], rows: list[list]) -> None:
        """Rows for a file of the run folder that grows with the run, appended at the next write (the first write
        creates it with `header`)."""
        self._files.setdefault(name, list(header))
        self._pending.setdefault(name, []).extend(rows)

    def add_online(self, task: int, accuracy: float, final_loss: float) -> None:
        """Record the online accuracy and final training loss of the phase that introduced `task`."""
        self.online.append(accuracy)
        self.add_rows(ONLINE, list(ONLINE_COLUMNS), [[task, accuracy, final_loss]])

    def add_plasticity(self, rows: list[dict]) -> None:
        """Record the plasticity probe's rows for one task (one per hidden layer)."""
        self.add_rows(PLASTICITY, list(PLASTICITY_COLUMNS), [[r[k] for k in PLASTICITY_COLUMNS] for r in rows])
        if rows:
            self.final_plasticity = {f"final_{m}": _nanmean([r[m] for r in rows])
                                     for m in ("dead_fraction", "dormant_fraction", "effective_rank")}

    def add_strategy_actions(self, count: int | None) -> None:
        """Add the strategy's actions of the task that just ended (None: it has no such actions)."""
        if count is not None:
            self.strategy_actions = (0 if math.isnan(self.strategy_actions) else self.strategy_actions) + count

    def add_model_stats(self, after_task: int, stats: dict) -> None:
        if stats:
            self.add_rows(MODEL_STATS, ["after_task", *stats], [[after_task, *stats.values()]])

    def add_diagnostics(self, after_task: int, activations: list[dict], overlap: list[dict]) -> None:
        self.add_rows(ACTIVATIONS, list(ACTIVATION_COLUMNS),
                      [[after_task, *(r[k] for k in ACTIVATION_COLUMNS[1:])] for r in activations])
        self.add_rows(OVERLAP, list(OVERLAP_COLUMNS),
                      [[after_task, *(r[k] for k in OVERLAP_COLUMNS[1:])] for r in overlap])
        if after_task >= 0:
            self.mean_sparsity = _nanmean([r["sparsity"] for r in activations])
            self.mean_overlap = _nanmean([r["jaccard"] for r in overlap])

    # --- what a checkpoint keeps ---------------------------------------------------------------------

    def state(self) -> dict:
        """What a checkpoint keeps of the record: plain numbers, lists and the appended files' lengths."""
        return {name: copy.copy(getattr(self, name)) for name in self.STATE}

    def restore(self, state: dict) -> None:
        """Continue from `state`: cut the appended files back to the lengths it recorded and read the accuracy
        matrix back from evals.csv."""
        for name in self.STATE:
            if name in self.ADDED_LATER and name not in state:  # keep the value a new record starts with
                continue
            setattr(self, name, copy.copy(state[name]))
        for name, length in self.lengths.items():
            path = self.folder / name
            size = path.stat().st_size if path.is_file() else -1
            if size < length:
                raise RunError(f"{path}: holds {max(size, 0)} bytes, fewer than the {length} its checkpoint recorded; "
                               "the run folder was changed since, so it cannot be resumed")
            os.truncate(path, length)
        self._reload_matrix()

    def _reload_matrix(self) -> None:
        evaluated = np.zeros((self.n_tasks, self.n_tasks), dtype=bool)
        self.b_skipped[:] = True
        with open(self.folder / EVALS, newline="") as handle:
            for row in itertools.islice(csv.reader(handle), 1, None):
                after_task, task, accuracy = int(row[0]), int(row[1]), float(row[2]) if row[2] else math.nan
                if after_task < 0:
                    self.b[task], self.b_skipped[task] = accuracy, False
                else:
                    self.R[after_task, task], evaluated[after_task, task] = accuracy, True
        recorded = np.zeros(self.n_tasks, dtype=bool)
        recorded[self.rows] = True
        self.skipped = recorded[:, None] & ~evaluated
        for i in self.rows:
            self._forgetting_row(i)

    # --- writing -------------------------------------------------------------------------------------

    def has_results(self) -> bool:
        """Whether anything was measured or restored (a failed run then keeps its files, marked failed)."""
        return bool(self.lengths) or any(self._pending.values())

    def summary(self) -> dict:
        """The row of summary.csv. The metrics need the row after the last task: before it they are NaN."""
        finished = bool(self.rows) and self.rows[-1] == self.n_tasks - 1
        if finished:
            row = metrics.summary(self.R, self.b, self.skipped, self.b_skipped)
        else:
            row = dict.fromkeys(metrics.NAMES, float("nan"))
        first, last = metrics.online_tenths(self.online) if finished else (float("nan"), float("nan"))
        row.update(mean_sparsity=self.mean_sparsity, mean_overlap=self.mean_overlap, online_first_tenth=first,
                   online_last_tenth=last, **self.final_plasticity, strategy_actions=self.strategy_actions)
        row.update(train_seconds=round(self.train_seconds, 4), eval_seconds=round(self.eval_seconds, 4),
                   eval_seconds_initial=round(self.eval_seconds_initial, 4), n_params=self.n_params, **self.meta,
                   n_tasks=self.n_tasks, tasks_done=self.tasks_done, status=self.status, error=self.error)
        return row

    def write(self) -> None:
        """Append what was recorded since the last write to each growing file, then rewrite summary.csv."""
        self.append()
        self.write_summary()

    def append(self) -> None:
        """Append what was recorded since the last write to each growing file (creating it with its header the
        first time)."""
        for name, header in self._files.items():
            rows = self._pending.get(name, [])
            if rows or name not in self.lengths:
                self.lengths[name] = append_csv(self.folder / name, header, rows, self.lengths.get(name))
                self._appended.setdefault(name, (header, []))[1].extend(rows)
            self._pending[name] = []

    def write_summary(self) -> None:
        """Rewrite summary.csv."""
        summary = self.summary()
        write_csv(self.folder / SUMMARY, list(summary), [list(summary.values())])
        if self.tracker is not None:
            self.tracker.written(self, self._appended)
        self._appended = {}
