"""Write a run's CSV files atomically after every task; load many runs into one pandas DataFrame."""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from clrelu import metrics
from clrelu.config import RUN_CONTROL_KEYS
from clrelu.errors import ConfigError
from clrelu.files import write_atomically

ACCURACY, FORGETTING, EVALS, SUMMARY = "accuracy.csv", "forgetting.csv", "evals.csv", "summary.csv"
MODEL_STATS, ACTIVATIONS, OVERLAP = "model_stats.csv", "activations.csv", "overlap.csv"
EVAL_COLUMNS = ("after_task", "eval_task", "accuracy", "loss", "n_samples", "n_params")
ACTIVATION_COLUMNS = ("after_task", "eval_task", "layer", "sparsity", "nonpositive_fraction", "dead_fraction",
                      "n_units")
OVERLAP_COLUMNS = ("after_task", "layer", "task_a", "task_b", "jaccard")
STATUSES = ("running", "finished", "failed")
IDENTITY_COLUMNS = ("model", "stream", "seed", "n_tasks", "tasks_done", "status")  # what marks a clrelu summary.csv
NUMERIC_COLUMNS = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "bwt", "fwt", "mean_sparsity",
                   "mean_overlap", "train_seconds", "eval_seconds", "n_params")


def _cell(value) -> str:
    """A value as pandas writes it: floats in full (repr), NaN and None as an empty field."""
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


@dataclass
class Evaluation:
    """The result of testing the model on one task's test set."""

    task: int
    accuracy: float
    loss: float
    n_samples: int


@dataclass
class RunRecord:
    """Everything a run has measured so far, and how to write it to its folder."""

    folder: Path
    n_tasks: int
    meta: dict  # model, stream, scenario, seed, ...: the run's identity in summary.csv
    diagnostics: bool = False  # whether activations.csv and overlap.csv are written
    config: dict = field(default_factory=dict)  # the resolved config the run started with, checked on resume
    R: np.ndarray = field(init=False)  # T x T, NaN where not measured or undefined
    b: np.ndarray = field(init=False)  # the accuracy on each task at initialisation
    rows: list[int] = field(default_factory=list)  # the after_task indices measured, in order
    evals: list[dict] = field(default_factory=list)
    model_stats: list[dict] = field(default_factory=list)  # what the model reports after each task
    activations: list[dict] = field(default_factory=list)
    overlap: list[dict] = field(default_factory=list)
    tasks_done: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    n_params: int = 0
    status: str = "running"
    error: str = ""

    def __post_init__(self):
        self.R = np.full((self.n_tasks, self.n_tasks), np.nan)
        self.b = np.full(self.n_tasks, np.nan)

    def add(self, after_task: int, evaluations: list[Evaluation], n_params: int) -> None:
        """Record an evaluation on every task: at initialisation (`after_task` -1) or after a task."""
        for e in evaluations:
            self.evals.append(dict(zip(EVAL_COLUMNS, (after_task, e.task, e.accuracy, e.loss, e.n_samples, n_params))))
            if after_task < 0:
                self.b[e.task] = e.accuracy
            else:
                self.R[after_task, e.task] = e.accuracy
        if after_task >= 0:
            self.rows.append(after_task)
        self.n_params = n_params

    STATE = ("rows", "evals", "model_stats", "activations", "overlap", "tasks_done", "train_seconds",
             "eval_seconds", "n_params", "config")

    def state(self) -> dict:
        """What a checkpoint keeps of the record: tensors and plain data only (see clrelu.checkpoint)."""
        return {"R": torch.from_numpy(self.R), "b": torch.from_numpy(self.b),
                **{name: getattr(self, name) for name in self.STATE}}

    def restore(self, state: dict) -> None:
        self.R, self.b = state["R"].numpy(), state["b"].numpy()
        for name in self.STATE:
            setattr(self, name, state[name])

    def add_model_stats(self, after_task: int, stats: dict) -> None:
        if stats:
            self.model_stats.append({"after_task": after_task, **stats})

    def add_diagnostics(self, after_task: int, activations: list[dict], overlap: list[dict]) -> None:
        self.activations += [{"after_task": after_task, **row} for row in activations]
        self.overlap += [{"after_task": after_task, **row} for row in overlap]

    def _latest_mean(self, rows: list[dict], column: str) -> float:
        """The mean of a diagnostics column over the rows of the latest evaluation after a task."""
        latest = [r[column] for r in rows if self.rows and r["after_task"] == self.rows[-1]]
        values = [v for v in latest if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    def summary(self) -> dict:
        row = metrics.summary(self.R, self.b)
        row.update(mean_sparsity=self._latest_mean(self.activations, "sparsity"),
                   mean_overlap=self._latest_mean(self.overlap, "jaccard"))
        row.update(train_seconds=round(self.train_seconds, 4), eval_seconds=round(self.eval_seconds, 4),
                   n_params=self.n_params, **self.meta, n_tasks=self.n_tasks, tasks_done=self.tasks_done,
                   status=self.status, error=self.error)
        return row

    def write(self) -> None:
        """Rewrite the run's CSV files from what was measured so far: the four of every run, the
        diagnostics' two when they are on, and model_stats.csv when the model reports anything."""
        header = ["after_task", *(str(j) for j in range(self.n_tasks))]
        F = metrics.forgetting_matrix(self.R)
        write_csv(self.folder / ACCURACY, header, [[i, *self.R[i]] for i in self.rows])
        write_csv(self.folder / FORGETTING, header, [[i, *F[i]] for i in self.rows])
        write_csv(self.folder / EVALS, list(EVAL_COLUMNS), [[e[k] for k in EVAL_COLUMNS] for e in self.evals])
        summary = self.summary()
        write_csv(self.folder / SUMMARY, list(summary), [list(summary.values())])
        if self.diagnostics:
            write_csv(self.folder / ACTIVATIONS, list(ACTIVATION_COLUMNS),
                      [[r[k] for k in ACTIVATION_COLUMNS] for r in self.activations])
            write_csv(self.folder / OVERLAP, list(OVERLAP_COLUMNS),
                      [[r[k] for k in OVERLAP_COLUMNS] for r in self.overlap])
        if self.model_stats:
            keys = list(self.model_stats[0])
            write_csv(self.folder / MODEL_STATS, keys, [[row[k] for k in keys] for row in self.model_stats])


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
