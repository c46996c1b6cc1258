"""The CSV files of a run folder: their names and columns, writing them (whole or appended) and reading them back."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from clrelu.errors import ConfigError, RunError
from clrelu.rundir.files import write_atomically

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
NUMERIC_COLUMNS = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "forgetting_chaudhry", "bwt", "fwt",
                   "mean_sparsity", "mean_overlap", "online_first_tenth", "online_last_tenth", *FINAL_PLASTICITY,
                   "strategy_actions", "train_seconds", "eval_seconds", "eval_seconds_initial", "n_params")


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
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(header)
            out.writerows([_cell(v) for v in row] for row in rows)

    write_atomically(path, write)


def append_csv(path: Path, header: list[str], rows: list[list], length: int | None) -> int:
    """Append `rows` to a CSV file in one write, or create it with `header` first when `length` is None (the file
    is new to this run); return the file's length in bytes after the write."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
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


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV file of a run as pandas reads it; a missing or damaged file is a ConfigError naming it."""
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 (pandas raises ValueError, TypeError, ... for a damaged file)
        raise ConfigError(f"{path}: cannot be read as CSV ({reason(exc)})") from None


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
        raise ConfigError(f"{path}: cannot be read ({reason(exc)})") from None
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
