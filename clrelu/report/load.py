"""Loading many runs into one pandas DataFrame: a row per run, its summary and its config."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import yaml

from clrelu.config import RUN_CONTROL_KEYS
from clrelu.errors import ConfigError
from clrelu.rundir.csvfiles import SUMMARY, read_csv, read_summary, reason


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
        raise ConfigError(f"{path}: cannot be read as YAML ({reason(exc)})") from None
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
