"""`clrelu compare`: mean and standard deviation over seeds of every group of finished runs.

The table is meant for people and spreadsheets: every text cell and header is made printable (no control
character reaches a terminal) and escaped against formula injection (csvfiles.spreadsheet_text), in what
it prints and in compare.csv alike; numbers stay numbers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from clrelu.config import NOT_COMPARED_ON_RESUME
from clrelu.errors import ConfigError, printable
from clrelu.report import load as loading
from clrelu.rundir import csvfiles, files

METRICS = ("avg_accuracy", "avg_forgetting", "bwt", "fwt", "train_seconds")
# summary columns that are outcomes or bookkeeping, not configuration to group by
NOT_CONFIG = {*csvfiles.NUMERIC_COLUMNS, "n_tasks", "tasks_done", "status", "error", "run_dir", "seed",
              *NOT_COMPARED_ON_RESUME}  # and how the runs were launched (resume, threads): no change to results
FORMATS = ("table", "csv", "markdown")


def load_runs(paths: list[str], left_out: list[str]) -> pd.DataFrame:
    """Every run under `paths`; a path that does not exist or holds no run is a clear error. A damaged run
    is left out, with a line naming its file appended to `left_out`."""
    for path in paths:
        if not Path(path).exists():
            raise ConfigError(f"{path}: no such file or folder")
    frame = loading.load(*paths, left_out=left_out)
    if frame.empty:
        damaged = f"; left out, damaged: {left_out[0]}" if left_out else ""
        raise ConfigError(f"no runs under {', '.join(paths)} (a run folder holds a summary.csv){damaged}")
    return frame


def _safe(value):
    return csvfiles.spreadsheet_text(printable(value)) if isinstance(value, str) else value


def safe_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell and header made printable and escaped against formula injection."""
    safe = table.map(_safe) if len(table) else table.copy()
    safe.columns = [_safe(str(c)) for c in table.columns]
    return safe


def is_comparison(content: bytes) -> bool:
    """Whether a file's bytes are a table `clrelu compare` wrote (its header has n_runs,n_seeds)."""
    header = content.split(b"\n", 1)[0]
    return b",n_runs,n_seeds," in b"," + header + b","


def write(table: pd.DataFrame, path: Path) -> None:
    """Write the comparison as CSV (plain numbers, escaped text) through a temporary file and a rename."""
    data = safe_table(table).to_csv(index=False, lineterminator="\n").encode()
    files.write_atomically(path.parent, path.name, lambda handle: handle.write(data))


def _determines(a: pd.Series, b: pd.Series) -> bool:
    """Whether each value of column `a` always goes with one value of column `b` (then grouping by `a` and `b` is
    grouping by `a`)."""
    pairs = pd.DataFrame({"a": a.astype(str), "b": b.astype(str)}).drop_duplicates()
    return len(pairs) == a.nunique(dropna=False)


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """The config columns whose value is not the same in every run (the seed and the keys computed from it
    aside), leaving out a column that a column already kept determines (`stream.scenario` beside `scenario`,
    `model.k` beside `model`, a strategy's own keys and `strategy._target_` beside `strategy`)."""
    keys: list[str] = []
    skipped = NOT_CONFIG | set(frame.attrs.get("seed_keys", ()))
    for column in frame.columns:
        if column in skipped or frame[column].nunique(dropna=False) < 2:
            continue
        if not any(_determines(frame[k], frame[column]) for k in keys):
            keys.append(column)
    return keys


def _modal(values: list[str]) -> str | None:
    """The value most of `values` have, when one is more common than every other."""
    counts = Counter(values).most_common(2)
    return counts[0][0] if len(counts) == 1 or counts[0][1] > counts[1][1] else None


def group_runs(frame: pd.DataFrame, by: list[str] | None):
    """The finished runs grouped by `by` (default: every config key that varies), and the grouping keys.

    A group's label names its value of each key, leaving out keys its runs do not set (runs of two sweeps
    of different keys, loaded together); with the default keys, it also leaves out a key after the first where
    the group has the value most groups have (`strategy=naive, model.activation=crelu` beside `strategy=cbp`)."""
    keys = varying_keys(frame) if by is None else by
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        suggestions = ", ".join(varying_keys(frame)) or "model, stream"
        raise ConfigError(f"--by {missing[0]}: not a column of these runs; try one of {suggestions}")
    if not keys:
        return [("all runs", frame)], keys
    grouped = [(tuple(str(v) for v in (name if isinstance(name, tuple) else (name,))), group)
               for name, group in frame.groupby([frame[k].astype(str) for k in keys], sort=True, dropna=False)]
    modal = [None] * len(keys) if by is not None else [
        None if i == 0 else _modal([name[i] for name, _ in grouped]) for i in range(len(keys))]
    return [(", ".join(f"{k}={v}" for k, v, m in zip(keys, name, modal) if v != "nan" and v != m) or "all runs", group)
            for name, group in grouped], keys


def compare(frame: pd.DataFrame, by: list[str] | None = None, metrics=METRICS) -> pd.DataFrame:
    """One row per group of finished runs: its keys, the number of seeds, and mean and std of each metric."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and c not in ("seed", "n_tasks", "tasks_done", "error")]
    unknown = [m for m in metrics if m not in numeric]
    if unknown:
        what = "not a numeric column" if unknown[0] in frame.columns else "not a column"
        raise ConfigError(f"--metrics {unknown[0]}: {what} of these runs; choose from {', '.join(numeric)}")
    finished = frame[frame.status == "finished"]
    if finished.empty:
        raise ConfigError("none of these runs has finished, so there is nothing to compare")
    groups, keys = group_runs(finished, by)
    rows = []
    for _, group in groups:
        row = {k: group[k].iloc[0] for k in keys}
        row["n_runs"] = len(group)
        row["n_seeds"] = group.seed.nunique()
        for metric in metrics:
            row[f"{metric}_mean"] = group[metric].mean()
            row[f"{metric}_std"] = group[metric].std()
        rows.append(row)
    return pd.DataFrame(rows)


def unfinished(frame: pd.DataFrame) -> list[str]:
    """One line for every run that did not finish, saying how far it got and, for an interrupted run, the
    command that continues it."""
    lines = []
    for row in frame[frame.status != "finished"].itertuples():
        error = f": {row.error}" if isinstance(row.error, str) and row.error else ""
        line = f"{row.run_dir}: {row.status} after {row.tasks_done} of {row.n_tasks} tasks{error}"
        if row.status == "interrupted":
            try:
                line += f"; continue it with: {loading.continue_command(Path(row.run_dir))}"
            except ConfigError:  # its overrides.yaml went missing or bad since it was loaded
                line += "; continue it with resume=true and the overrides it was started with"
        lines.append(line)
    return lines


def render(table: pd.DataFrame, metrics, fmt: str) -> str:
    """The comparison as text: `csv` keeps every number; `table` and `markdown` show mean ± std. Text cells are
    made safe (safe_table)."""
    table = safe_table(table)
    if fmt == "csv":
        return table.to_csv(index=False, lineterminator="\n")
    shown = table[[c for c in table.columns if not c.endswith(("_mean", "_std"))]].copy()
    for metric in metrics:
        mean, std = table[f"{metric}_mean"], table[f"{metric}_std"]
        digits = 2 if metric.endswith("seconds") else 4
        shown[metric] = [f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}") for m, s in zip(mean, std)]
    if fmt == "markdown":
        head = "| " + " | ".join(shown.columns) + " |"
        rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
        body = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join([head, rule, *body]) + "\n"
    return shown.to_string(index=False) + "\n"
