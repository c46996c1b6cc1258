"""Write a run's CSV files after every task (appending to those that grow); load many runs into one DataFrame."""

from __future__ import annotations

import copy
import csv
import io
import itertools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from clrelu import metrics
from clrelu.config import RUN_CONTROL_KEYS
from clrelu.errors import ConfigError, RunError
from clrelu.files import write_atomically

ACCURACY, FORGETTING, EVALS, SUMMARY = "accuracy.csv", "forgetting.csv", "evals.csv", "summary.csv"
MODEL_STATS, ACTIVATIONS, OVERLAP, ONLINE = "model_stats.csv", "activations.csv", "overlap.csv", "online.csv"
PLASTICITY = "plasticity.csv"
EVAL_COLUMNS = ("after_task", "eval_task", "accuracy", "loss", "n_samples", "n_params")
ONLINE_COLUMNS = ("task", "online_accuracy", "final_loss")
ACTIVATION_COLUMNS = ("after_task", "eval_task", "layer", "sparsity", "nonpositive_fraction", "dead_fraction",
                      "n_units")
OVERLAP_COLUMNS = ("after_task", "layer", "task_a", "task_b", "jaccard")
PLASTICITY_COLUMNS = ("task", "layer", "dead_fraction", "dormant_fraction", "effective_rank", "srank",
                      "weight_magnitude")
FINAL_PLASTICITY = ("final_dead_fraction", "final_dormant_fraction", "final_effective_rank")  # in summary.csv
STATUSES = ("running", "finished", "failed")
IDENTITY_COLUMNS = ("model", "stream", "seed", "n_tasks", "tasks_done", "status")  # what marks a clrelu summary.csv
NUMERIC_COLUMNS = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "bwt", "fwt", "mean_sparsity",
                   "mean_overlap", "online_first_tenth", "online_last_tenth", *FINAL_PLASTICITY, "train_seconds",
                   "eval_seconds", "n_params")


def _cell(value) -> str:
    """A value as pandas writes it: floats in full (repr), NaN and None as an empty field."""
    if type(value) is float:  # the common cases first: this formats every number a run writes
        return repr(value) if value == value else ""
    if type(value) is int:
        return str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """Write a CSV file through a temporary file and a rename, so the file on disk is always complete.

    (The csv module rather than pandas: this runs after every task and must cost next to nothing.)
    """
    def write(partial: Path) -> None:
        with open(partial, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(header)
            out.writerows([_cell(v) for v in row] for row in rows)

    write_atomically(path, write)


def append_csv(path: Path, header: list[str], rows: list[list], length: int | None) -> int:
    """Append `rows` to a CSV file in one write, or create it with `header` first when `length` is None (the file
    is new to this run); return the file's length in bytes after the write."""
    text = io.StringIO()
    out = csv.writer(text)
    if length is None:
        out.writerow(header)
    out.writerows([_cell(v) for v in row] for row in rows)
    data = text.getvalue().encode()
    try:
        with open(path, "wb" if length is None else "ab") as handle:
            handle.write(data)
    except OSError as exc:  # a full disk: the rows may be cut short, and a resumed run cuts them back
        raise RunError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    return (length or 0) + len(data)


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

    STATE = ("rows", "lengths", "online", "tasks_done", "train_seconds", "eval_seconds", "n_params", "mean_sparsity",
             "mean_overlap", "final_plasticity", "config")

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
        self.train_seconds = self.eval_seconds = 0.0
        self.n_params = 0
        self.mean_sparsity = self.mean_overlap = float("nan")  # diagnostics of the latest evaluation after a task
        self.final_plasticity = dict.fromkeys(FINAL_PLASTICITY, float("nan"))  # of the latest task probed
        self.status, self.error = "running", ""
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
                   online_last_tenth=last, **self.final_plasticity)
        row.update(train_seconds=round(self.train_seconds, 4), eval_seconds=round(self.eval_seconds, 4),
                   n_params=self.n_params, **self.meta, n_tasks=self.n_tasks, tasks_done=self.tasks_done,
                   status=self.status, error=self.error)
        return row

    def write(self) -> None:
        """Append what was recorded since the last write to each growing file (creating it with its header the
        first time), then rewrite summary.csv."""
        for name, header in self._files.items():
            rows = self._pending.get(name, [])
            if rows or name not in self.lengths:
                self.lengths[name] = append_csv(self.folder / name, header, rows, self.lengths.get(name))
            self._pending[name] = []
        summary = self.summary()
        write_csv(self.folder / SUMMARY, list(summary), [list(summary.values())])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV file of a run as pandas reads it; a missing or damaged file is a ConfigError naming it."""
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 (pandas raises ValueError, TypeError, ... for a damaged file)
        raise ConfigError(f"{path}: cannot be read as CSV ({_reason(exc)})") from None


def read_matrix(path: Path) -> pd.DataFrame:
    """accuracy.csv or forgetting.csv as a DataFrame indexed by after_task, with int task columns."""
    frame = read_csv(path, index_col="after_task")
    try:
        frame.columns = [int(c) for c in frame.columns]
    except ValueError:
        raise ConfigError(f"{path}: not an accuracy matrix (its columns are not task numbers)") from None
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


def read_summary(path: Path) -> dict[str, str]:
    """The one row of a run's summary.csv, checked to be clrelu's; anything else is a ConfigError naming the file."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot be read ({_reason(exc)})") from None
    if len(rows) != 2 or len(rows[0]) != len(rows[1]):
        raise ConfigError(f"{path}: not a clrelu summary (it must hold a header and one row, as every run writes)")
    row = dict(zip(*rows))
    missing = [c for c in IDENTITY_COLUMNS if c not in row]
    if missing:
        raise ConfigError(f"{path}: not a clrelu summary (no column {missing[0]})")
    if row["status"] not in STATUSES:
        raise ConfigError(f"{path}: damaged (status is '{row['status']}', not one of {', '.join(STATUSES)})")
    for column in ("seed", "n_tasks", "tasks_done", *(c for c in NUMERIC_COLUMNS if c in row)):
        if not _is_number(row[column]) or (column in ("n_tasks", "tasks_done") and not row[column].isdigit()):
            raise ConfigError(f"{path}: damaged ({column} is '{row[column]}', not a number)")
    return row


def _scalar(text: str):
    """An override's value as YAML reads it, kept as text when it is a list or mapping."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, (bool, int, float, str)) else text


def run_overrides(run: Path) -> dict:
    """The command-line overrides of a run, from Hydra's `.hydra/overrides.yaml`, as key -> value."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({_reason(exc)})") from None
    if items is not None and (not isinstance(items, list) or not all(isinstance(i, str) for i in items)):
        raise ConfigError(f"{path}: damaged (not a list of overrides such as model=mlp)")
    found = {}
    for item in items or []:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra.") and key not in RUN_CONTROL_KEYS:
            found[key] = _scalar(value)
    return found


def load(*paths: str | Path, left_out: list[str] | None = None) -> pd.DataFrame:
    """Every run under `paths` (folders holding a summary.csv, searched recursively) as one row each.

    Columns: the summary metrics, the run's identity (model, stream, scenario, seed, ...), its
    command-line overrides (e.g. `model.k`), and `run_dir`. A run whose summary.csv or overrides.yaml is
    damaged is left out, with one line naming the file: appended to `left_out` when given, else a warning.
    """
    rows = []
    for root in paths:
        root = Path(root)
        found = [root / SUMMARY] if (root / SUMMARY).is_file() else sorted(root.rglob(SUMMARY))
        for summary_path in found:
            try:
                read_summary(summary_path)
                row = read_csv(summary_path).iloc[0].to_dict()
                overrides = run_overrides(summary_path.parent)
            except ConfigError as exc:
                if left_out is None:
                    warnings.warn(f"left out: {exc}", stacklevel=2)
                else:
                    left_out.append(str(exc))
                continue
            for key, value in overrides.items():
                row.setdefault(key, value)
            row["run_dir"] = str(summary_path.parent)
            rows.append(row)
    return pd.DataFrame(rows)
