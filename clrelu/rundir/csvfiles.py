"""The CSV files of a run folder: their names and columns, writing them (whole or appended) and reading them back,
each value read checked to be what its column holds.

Which CSVs are meant for spreadsheets: a run's files are numeric tables for pandas (`pd.read_csv`), and
their numbers are written as numbers (-0.5 stays -0.5). Their only text cells are summary.csv's names,
status and error, and those, like every text cell of `clrelu compare`'s table, are escaped as OWASP
recommends against formula injection: a text cell that begins with =, +, -, @, a tab or a carriage
return gets a leading single quote, so a spreadsheet shows it as text and never evaluates it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from clrelu.errors import ClreluError, ConfigError
from clrelu.machine import memory
from clrelu.rundir import files

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
IDENTITY_COLUMNS = ("model", "stream", "seed", "n_tasks", "tasks_done", "status")  # what marks a clrelu summary.csv
NUMERIC_COLUMNS = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "forgetting_chaudhry", "bwt", "fwt",
                   "mean_sparsity", "mean_overlap", "online_first_tenth", "online_last_tenth", *FINAL_PLASTICITY,
                   "strategy_actions", "train_seconds", "eval_seconds", "eval_seconds_initial", "n_params")
STATUSES = ("running", "finished", "failed", "interrupted")
APPENDED = (ACCURACY, FORGETTING, EVALS, ONLINE, ACTIVATIONS, OVERLAP, MODEL_STATS, PLASTICITY)  # grow with the run
SUMMARY_LIMIT = 1 << 20  # a summary.csv holds one row: far less than this
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A text cell that no spreadsheet evaluates: a leading single quote before =, +, -, @, tab or CR (OWASP)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value) -> str:
    """A value as pandas writes it: floats in full (repr), NaN and None as an empty field; text escaped
    (spreadsheet_text)."""
    if type(value) is float:  # the common cases first: this formats every number a run writes
        return repr(value) if value == value else ""
    if type(value) is int:
        return str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return spreadsheet_text(str(value))


def _csv_bytes(header: list[str] | None, rows: list[list]) -> bytes:
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    if header is not None:
        out.writerow(header)
    out.writerows([_cell(v) for v in row] for row in rows)
    return text.getvalue().encode()


def write_csv(folder: Path, name: str, header: list[str], rows: list[list]) -> None:
    """Write a CSV file through a temporary file and a rename, so the file on disk is always complete.

    (The csv module rather than pandas: this runs after every task and must cost next to nothing.)
    """
    data = _csv_bytes(header, rows)
    files.write_atomically(folder, name, lambda handle: handle.write(data))


def append_csv(folder: Path, name: str, header: list[str], rows: list[list], length: int | None) -> int:
    """Append `rows` to a CSV file in one write, or create it with `header` first when `length` is None (the file
    is new to this run); return the file's length in bytes after the write."""
    data = _csv_bytes(header if length is None else None, rows)
    files.append(folder, name, data, new=length is None)
    return (length or 0) + len(data)


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def memory_limit() -> int:
    """The largest file clrelu reads whole into memory on this machine: an eighth of its memory (pandas takes
    several times a CSV's size)."""
    return memory()[0] // 8


def read_csv(folder: Path, name: str, numeric: tuple[str, ...] = (), **options) -> pd.DataFrame:
    """A CSV file of a run as pandas reads it, its `numeric` columns (those it has) checked to hold numbers; a
    missing, damaged or oversized file is a ConfigError naming it."""
    path = folder / name
    try:
        with files.reader(folder, name, memory_limit(), "clrelu reads into memory on this machine") as handle:
            frame = pd.read_csv(handle, **options)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except ClreluError:
        raise
    except Exception as exc:  # noqa: BLE001 (pandas raises ValueError, TypeError, ... for a damaged file)
        raise ConfigError(f"{path}: cannot be read as CSV ({reason(exc)})") from None
    for column in numeric:
        if column in frame.columns:
            check_numbers(frame[column], path, column)
    return frame


def check_numbers(values: pd.Series, path: Path, column) -> None:
    """Refuse a column that holds anything but numbers (and empty cells), naming the first such cell."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return
    converted = pd.to_numeric(values, errors="coerce")
    bad = values[converted.isna() & values.notna()]
    first = bad.iloc[0] if len(bad) else values.iloc[0]
    raise ConfigError(f"{path}: damaged (column {column} holds '{first}', not a number)")


def read_matrix(folder: Path, name: str) -> pd.DataFrame:
    """accuracy.csv or forgetting.csv as a DataFrame indexed by after_task, with int task columns and numbers."""
    path = folder / name
    frame = read_csv(folder, name, index_col="after_task")
    try:
        frame.columns = [int(c) for c in frame.columns]
    except ValueError:
        raise ConfigError(f"{path}: not an accuracy matrix (its columns are not task numbers)") from None
    check_numbers(pd.Series(frame.index), path, "after_task")
    for column in frame.columns:
        check_numbers(frame[column], path, column)
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


def read_summary(folder: Path, name: str = SUMMARY) -> dict[str, str]:
    """The one row of a run's summary.csv, checked to be clrelu's; anything else is a ConfigError naming the file."""
    path = folder / name
    try:
        text = files.read_text(folder, name, SUMMARY_LIMIT, "a summary.csv holds")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except ClreluError:
        raise
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
