"""Loading many runs into one pandas DataFrame: a row per run, its summary, every key of its config, and its true
status.

Runs are found by walking the given folders through the run folder's door (rundir/files.py): a symbolic
link named summary.csv or leading to a folder is never followed and is reported as left out, as is a
special file named summary.csv. A run whose summary says `running` while no live process holds its lock
was stopped without a word (kill -9, a crash, a lost machine) and is shown as `interrupted`.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf

from clrelu import config as _config  # noqa: F401  (registers the resolvers the presets' configs use)
from clrelu.config import RUN_CONTROL_KEYS
from clrelu.errors import ClreluError, ConfigError
from clrelu.rundir import files
from clrelu.rundir.csvfiles import NUMERIC_COLUMNS, SUMMARY, read_csv, read_summary, reason
from clrelu.rundir.lock import is_held

CONFIG = ".hydra/config.yaml"  # the config the run composed, as Hydra saved it (interpolations kept)
OVERRIDES = ".hydra/overrides.yaml"  # the command line it was started with
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


def _read_yaml(run: Path, name: str):
    """A YAML file Hydra saved in a run folder, read through the door (None: there is none)."""
    if files.kind(run, name) is None:
        return None
    try:
        return yaml.safe_load(files.read_text(run, name, files.TEXT_LIMIT, "a Hydra YAML file holds"))
    except ClreluError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{run / name}: cannot be read as YAML ({reason(exc)})") from None


def _read_config(run: Path) -> tuple[dict, set[str]]:
    """run_config's columns, and the keys among them computed from the seed."""
    path = run / CONFIG
    saved = _read_yaml(run, CONFIG)
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


def override_list(run: Path) -> list[str]:
    """The command-line overrides a run was started with, as Hydra saved them in `.hydra/overrides.yaml`."""
    items = _read_yaml(run, OVERRIDES)
    if items is not None and (not isinstance(items, list) or not all(isinstance(i, str) for i in items)):
        raise ConfigError(f"{run / OVERRIDES}: damaged (not a list of overrides such as model=mlp)")
    return items or []


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def hydra_quoted(text: str) -> str:
    """A value as Hydra's override grammar reads it back unchanged: quoted when it holds more than plain path
    characters (a sweep's run folder has = and , in its name)."""
    if re.fullmatch(r"[\w./-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shell_quoted(word: str) -> str:
    """A word as a POSIX shell reads it back unchanged, in double quotes when that is enough (easier to read)."""
    if re.fullmatch(r"[\w@%+=:,./-]+", word):
        return word
    if not re.search(r"[\"$`\\!]", word):
        return f'"{word}"'
    return shlex.quote(word)


def continue_command(run: Path) -> str:
    """The command that continues an interrupted run in its folder: its overrides, resume=true, its folder."""
    kept = [o for o in override_list(run) if not _key(o).startswith("hydra.") and _key(o) not in RUN_CONTROL_KEYS]
    words = ["clrelu", "run", *kept, "resume=true", f"hydra.run.dir={hydra_quoted(str(run))}"]
    return " ".join(shell_quoted(w) for w in words)


def _summaries(root: Path, left_out: list[str]) -> list[str]:
    """The summary.csv files under `root` (relative names); a link named summary.csv or to a folder, and a special
    file named summary.csv, are left out with a line each."""
    if files.kind(root, SUMMARY) not in (None, "folder"):
        return [SUMMARY]
    if files.kind(root) != "folder":
        return []
    tree = files.walk(root)
    for link in tree.links:
        if link.rpartition("/")[2] != SUMMARY and not (root / link).is_dir():  # (a stat, never an open)
            continue  # a link to a file in a run is that run's problem, refused when the run is read
        left_out.append(f"{root / link}: is a symbolic link, not followed (clrelu never follows one inside a run "
                        "or sweep folder)")
    for special in tree.specials:
        if special.rpartition("/")[2] == SUMMARY:
            left_out.append(f"{root / special}: is not a regular file; not read")
    return [f for f in tree.files if f.rpartition("/")[2] == SUMMARY]


def status(run: Path, recorded: str) -> str:
    """A run's true status: `running` only while a live process holds its lock, else `interrupted`."""
    return "interrupted" if recorded == "running" and not is_held(run) else recorded


def load(*paths: str | Path, left_out: list[str] | None = None) -> pd.DataFrame:
    """Every run under `paths` (folders holding a summary.csv, searched recursively) as one row each.

    Columns: the summary metrics, the run's identity (model, stream, scenario, seed, ...), every key of its
    composed config by its dotted name (`stream.n_tasks`, `model.hidden`, `strategy.ewc_lambda`; a list as
    its text, "[400, 400]"; null as "null"), and `run_dir`. A config key is NaN only for a run whose config has
    no such key (`model.k` of a model without k). `status` is the run's true status (`interrupted` for a run
    that says `running` with nobody holding its lock). A run whose summary.csv or .hydra/config.yaml is damaged,
    and anything not followed or not read, is left out with one line naming the file: appended to `left_out`
    when given, else a warning.

    `frame.attrs["seed_keys"]` lists the config keys computed from the seed in every run that has them
    (`stream.seed`, a preset's class order): they vary with the seed, and are not a configuration to group by.
    """
    lines: list[str] = []
    rows = []
    seed_keys: set[str] = set()
    chosen: set[str] = set()  # keys set to a value of their own in some run
    for root in map(Path, paths):
        for name in _summaries(root, lines):
            run = (root / name).parent
            try:
                read_summary(root, name)
                row = read_csv(root, name, numeric=NUMERIC_COLUMNS).iloc[0].to_dict()
                config, derived = _read_config(run)
            except ConfigError as exc:
                lines.append(str(exc))
                continue
            for key, value in config.items():
                row.setdefault(key, value)
            seed_keys |= derived
            chosen |= config.keys() - derived
            row["status"] = status(run, row["status"])
            row["run_dir"] = str(run)
            rows.append(row)
    if left_out is None:
        for line in lines:
            warnings.warn(f"left out: {line}", stacklevel=2)
    else:
        left_out.extend(lines)
    frame = pd.DataFrame(rows)
    frame.attrs["seed_keys"] = sorted(seed_keys - chosen)
    return frame


def load_table(run_dirs, name: str) -> pd.DataFrame:
    """One of the runs' growing CSV files (`evals.csv`, `online.csv`, `plasticity.csv`, ...) of every run in
    `run_dirs`, end to end, with a first column `run_dir` to join with `load`'s frame. A run without the file
    adds no rows; a damaged file is left out with a warning naming it."""
    parts = []
    for run_dir in run_dirs:
        if files.kind(Path(run_dir), name) is None:
            continue
        try:
            part = read_csv(Path(run_dir), name)
        except ConfigError as exc:
            warnings.warn(f"left out: {exc}", stacklevel=2)
            continue
        part.insert(0, "run_dir", str(run_dir))
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"run_dir": []})
