"""A run's record: everything it has measured so far, written to its CSV files after every task."""

from __future__ import annotations

import copy
import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clrelu.errors import ConfigError
from clrelu.measure import metrics
from clrelu.rundir import files, schema
from clrelu.rundir.csvfiles import (
    ACCURACY,
    ACTIVATION_COLUMNS,
    ACTIVATIONS,
    APPENDED,
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
    memory_limit,
    read_summary,
    spreadsheet_text,
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


def checked_lengths(folder: Path, path: Path, lengths) -> dict[str, int]:
    """The byte lengths a checkpoint (at `path`) recorded for the run's appended files, checked: every name one of
    csvfiles.APPENDED (never a path), every length an integer from 0 to the size of that file in `folder`."""
    schema.mapping(path, "record['lengths']", lengths)
    for name, length in lengths.items():
        if name not in APPENDED:
            raise schema.DamagedCheckpoint(path, f"record['lengths'] names {schema.shown(name)}, which is not one of "
                                                 f"the files a run appends to ({', '.join(APPENDED)})")
        schema.integer(path, f"record['lengths'][{name!r}]", length)
    for name, length in lengths.items():
        size = files.size(folder, name) or 0
        if size < length:
            raise schema.DamagedCheckpoint(path, f"record['lengths'][{name!r}] is {length}, more than the {size} bytes "
                                                 f"{folder / name} holds (the checkpoint or the run folder was changed "
                                                 "since it was written)")
    return lengths


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
        """Rows for a file of the run folder that grows with the run (one of csvfiles.APPENDED), appended at the
        next write (the first write creates it with `header`)."""
        if name not in APPENDED:
            raise ValueError(f"{name} is not one of the files a run appends to ({', '.join(APPENDED)})")
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

    def restore(self, state: dict, checkpoint: Path) -> None:
        """Continue from `state` (the record part of `checkpoint`): check it against the record's schema and the
        files on disk, then cut the appended files back to the lengths it recorded and read the accuracy matrix
        back from evals.csv. Nothing on disk changes unless every check passed."""
        self._check_state(state, checkpoint)
        evals = self._read_evals(state["lengths"][EVALS])
        for name in self.STATE:
            if name in self.ADDED_LATER and name not in state:  # keep the value a new record starts with
                continue
            setattr(self, name, copy.copy(state[name]))
        for name, length in self.lengths.items():
            files.truncate(self.folder, name, length)
        self._reload_matrix(evals)

    def _check_state(self, state: dict, path: Path) -> None:
        """Refuse (DamagedCheckpoint) a record state that is not what `state()` writes for this run, or whose file
        lengths exceed the files on disk."""
        T = self.n_tasks
        schema.mapping(path, "record", state, [k for k in self.STATE if k not in self.ADDED_LATER],
                       optional=self.ADDED_LATER)  # (a checkpoint of an earlier clrelu has none of these)
        if "strategy_actions" in state:
            schema.number(path, "record['strategy_actions']", state["strategy_actions"])
        if "eval_seconds_initial" in state:
            schema.number(path, "record['eval_seconds_initial']", state["eval_seconds_initial"], minimum=0)
        rows = state["rows"]
        if not isinstance(rows, list) or len(rows) > T:
            raise schema.DamagedCheckpoint(path, f"record['rows'] is not a list of at most {T} tasks")
        for i, row in enumerate(rows):
            schema.integer(path, f"record['rows'][{i}]", row, 0, T - 1)
        if rows != sorted(set(rows)):
            raise schema.DamagedCheckpoint(path, "record['rows'] is not in increasing order")
        online = state["online"]
        if not isinstance(online, list) or len(online) > T:
            raise schema.DamagedCheckpoint(path, f"record['online'] is not a list of at most {T} numbers")
        for i, value in enumerate(online):
            schema.number(path, f"record['online'][{i}]", value)
        schema.integer(path, "record['tasks_done']", state["tasks_done"], 0, T)
        for key in ("train_seconds", "eval_seconds"):
            schema.number(path, f"record[{key!r}]", state[key], minimum=0)
        schema.integer(path, "record['n_params']", state["n_params"])
        for key in ("mean_sparsity", "mean_overlap"):
            schema.number(path, f"record[{key!r}]", state[key])
        schema.mapping(path, "record['final_plasticity']", state["final_plasticity"], FINAL_PLASTICITY)
        for key, value in state["final_plasticity"].items():
            schema.number(path, f"record['final_plasticity'][{key!r}]", value)
        schema.mapping(path, "record['config']", state["config"])
        lengths = checked_lengths(self.folder, path, state["lengths"])
        missing = [name for name in self._files if name not in lengths]
        if missing:
            raise schema.DamagedCheckpoint(path, f"record['lengths'] has no length for {missing[0]}, which this run "
                                                 "writes from its first evaluation on")

    def _read_evals(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The evaluations in the first `length` bytes of evals.csv, line by line, each checked to name tasks of this
        run and to hold an accuracy in [0, 1] (or none): (b, evaluated at initialisation, R, evaluated after tasks)."""
        path, T = self.folder / EVALS, self.n_tasks
        b, b_evaluated = np.full(T, np.nan), np.zeros(T, dtype=bool)
        R, evaluated = np.full((T, T), np.nan), np.zeros((T, T), dtype=bool)
        consumed = 0
        with files.reader(self.folder, EVALS, memory_limit(), "clrelu reads into memory on this machine") as handle:
            for line, raw in enumerate(handle, start=1):
                consumed += len(raw)
                if consumed > length:  # rows written after the checkpoint, which the resumed run cuts off
                    break
                row = raw.decode("utf-8", errors="replace").rstrip("\r\n").split(",")
                if line == 1:
                    if tuple(row[:3]) != EVAL_COLUMNS[:3]:
                        raise ConfigError(f"{path}: damaged (its header is not {','.join(EVAL_COLUMNS)}); the run "
                                          "cannot be resumed")
                    continue
                try:
                    after_task, task = int(row[0]), int(row[1])
                    accuracy = float(row[2]) if row[2] else math.nan
                    if not (-1 <= after_task < T and 0 <= task < T and (math.isnan(accuracy) or 0 <= accuracy <= 1)):
                        raise ValueError
                except (ValueError, IndexError):
                    raise ConfigError(f"{path}: damaged (line {line} is {schema.shown(','.join(row))}, not an "
                                      f"evaluation of one of tasks 0..{T - 1}); the run cannot be resumed") from None
                if after_task < 0:
                    b[task], b_evaluated[task] = accuracy, True
                else:
                    R[after_task, task], evaluated[after_task, task] = accuracy, True
        return b, b_evaluated, R, evaluated

    def _reload_matrix(self, evals: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.b, b_evaluated, self.R, evaluated = evals
        self.b_skipped = ~b_evaluated
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
                self.lengths[name] = append_csv(self.folder, name, header, rows, self.lengths.get(name))
                self._appended.setdefault(name, (header, []))[1].extend(rows)
            self._pending[name] = []

    def write_summary(self) -> None:
        """Rewrite summary.csv."""
        summary = self.summary()
        write_csv(self.folder, SUMMARY, list(summary), [list(summary.values())])
        if self.tracker is not None:
            self.tracker.written(self, self._appended)
        self._appended = {}


def mark_summary(folder: Path, status: str, error: str) -> bool:
    """Rewrite the summary.csv on disk with `status` and `error`, keeping every other value as it was written
    (consistent with the CSV files beside it); False when there is none yet."""
    if files.kind(folder, SUMMARY) is None:
        return False
    row = read_summary(folder)
    row.update(status=status, error=spreadsheet_text(error))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([list(row), list(row.values())])  # the cells as they were written (escaped already)
    data = text.getvalue().encode()
    files.write_atomically(folder, SUMMARY, lambda handle: handle.write(data))
    return True
