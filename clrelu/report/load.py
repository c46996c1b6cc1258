"""Loading many runs into one pandas DataFrame: a row per run, its summary and every key of its config."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf

from clrelu import config as _config  # noqa: F401  (registers the resolvers the presets' configs use)
from clrelu.errors import ConfigError
from clrelu.rundir.csvfiles import SUMMARY, read_csv, read_summary, reason

CONFIG = Path(".hydra") / "config.yaml"  # the config the run composed, as Hydra saved it (interpolations kept)
# Interpolations whose value depends on where and when the run was made, not on its config: kept as written.
UNKNOWN_TO_A_READER = ("oc.env:", "hydra:", "now:")


def _keep_as_written(node):
    """`node` with every string that uses an interpolation a reader cannot make again escaped, so that it
    resolves to its own text (`${oc.env:CLRELU_DATA,...}`: the environment of the run is gone)."""
    if isinstance(node, dict):
        return {key: _keep_as_written(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_keep_as_written(value) for value in node]
    if isinstance(node, str) and any(f"${{{name}" in node for name in UNKNOWN_TO_A_READER):
        return node.replace("${", "\\${")
    return node


def _columns(node, prefix: str = "") -> dict:
    """A resolved config as {"a.b.c": value}, each value as the command line writes it when pandas would not keep
    it as a value of its own: a list as its text ("[400, 400]", so that it groups), null as "null" (which pandas
    would take for a missing value, and leave out of a groupby)."""
    if isinstance(node, dict):
        if not node and prefix:
            return {prefix[:-1]: "{}"}
        flat = {}
        for key, value in node.items():
            flat.update(_columns(value, f"{prefix}{key}."))
        return flat
    if isinstance(node, list):
        return {prefix[:-1]: json.dumps(node)}
    return {prefix[:-1]: "null" if node is None else node}


def _seed_keys(node, prefix: str = "") -> set[str]:
    """The dotted keys whose saved value is computed from the run's seed (`stream.seed: ${seed}`)."""
    if isinstance(node, dict):
        return set().union(*(_seed_keys(value, f"{prefix}{key}.") for key, value in node.items()))
    return {prefix[:-1]} if isinstance(node, str) and "${seed}" in node else set()


def _read_config(run: Path) -> tuple[dict, set[str]]:
    """run_config's columns, and the keys among them computed from the seed."""
    path = run / CONFIG
    if not path.is_file():
        return {}, set()
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({reason(exc)})") from None
    if saved is None:
        return {}, set()
    if not isinstance(saved, dict) or not all(isinstance(key, str) for key in saved):
        raise ConfigError(f"{path}: damaged (not a mapping of config keys)")
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(_keep_as_written(saved)), resolve=True)
    except Exception as exc:  # noqa: BLE001 (OmegaConf raises many kinds for a config it cannot resolve)
        raise ConfigError(f"{path}: damaged ({reason(exc)})") from None
    return _columns(resolved), _seed_keys(saved)


def run_config(run: Path) -> dict:
    """Every key of a run's composed config (`.hydra/config.yaml`) as a flat {"stream.n_tasks": 5} with its
    value, interpolations resolved within the config (`stream.seed: ${seed}`); {} for a run without one (made
    in-process, not by `clrelu run`). A damaged file is a ConfigError naming it."""
    return _read_config(run)[0]


def load(*paths: str | Path, left_out: list[str] | None = None) -> pd.DataFrame:
    """Every run under `paths` (folders holding a summary.csv, searched recursively) as one row each.

    Columns: the summary metrics, the run's identity (model, stream, scenario, seed, ...), every key of its
    composed config by its dotted name (`stream.n_tasks`, `model.hidden`, `strategy.ewc_lambda`; a list as
    its text, "[400, 400]"; null as "null"), and `run_dir`. A config key is NaN only for a run whose config has
    no such key (`model.k` of a model without k). A run whose summary.csv or .hydra/config.yaml is damaged is left out,
    with one line naming the file: appended to `left_out` when given, else a warning.

    `frame.attrs["seed_keys"]` lists the config keys computed from the seed in every run that has them
    (`stream.seed`, a preset's class order): they vary with the seed, and are not a configuration to group by.
    """
    rows = []
    seed_keys: set[str] = set()
    chosen: set[str] = set()  # keys set to a value of their own in some run
    for root in paths:
        root = Path(root)
        found = [root / SUMMARY] if (root / SUMMARY).is_file() else sorted(root.rglob(SUMMARY))
        for summary_path in found:
            try:
                read_summary(summary_path)
                row = read_csv(summary_path).iloc[0].to_dict()
                config, derived = _read_config(summary_path.parent)
            except ConfigError as exc:
                if left_out is None:
                    warnings.warn(f"left out: {exc}", stacklevel=2)
                else:
                    left_out.append(str(exc))
                continue
            for key, value in config.items():
                row.setdefault(key, value)
            seed_keys |= derived
            chosen |= config.keys() - derived
            row["run_dir"] = str(summary_path.parent)
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["seed_keys"] = sorted(seed_keys - chosen)
    return frame


def load_table(run_dirs, name: str) -> pd.DataFrame:
    """One of the runs' growing CSV files (`evals.csv`, `online.csv`, `plasticity.csv`, ...) of every run in
    `run_dirs`, end to end, with a first column `run_dir` to join with `load`'s frame. A run without the file
    adds no rows; a damaged file is left out with a warning naming it."""
    parts = []
    for run_dir in run_dirs:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            part = read_csv(path)
        except ConfigError as exc:
            warnings.warn(f"left out: {exc}", stacklevel=2)
            continue
        part.insert(0, "run_dir", str(run_dir))
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"run_dir": []})
