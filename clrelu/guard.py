"""Keeping runs from writing into the folder of an earlier run, and checking what may be resumed there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from clrelu.checkpoint import CHECKPOINT
from clrelu.errors import ConfigError, report
from clrelu.results import RUN_CONTROL_KEYS, SUMMARY


def run_state(folder: Path) -> str:
    """`finished`, `unfinished` (it can be resumed from its checkpoint) or `empty` (no run has written here)."""
    summary = folder / SUMMARY
    if summary.is_file() and pd.read_csv(summary).status.iloc[0] == "finished":
        return "finished"
    if (folder / CHECKPOINT).is_file() or summary.is_file():
        return "unfinished"
    return "empty"


def _flat(node, prefix: str = "") -> dict:
    """A nested config as {"a.b.c": value}."""
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def config_difference(folder: Path, config: DictConfig) -> str | None:
    """How `config` differs from the config the run in `folder` was started with (None if it does not)."""
    saved_path = folder / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        return None
    saved = _flat(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False))
    now = _flat({k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"})
    for key in sorted(set(saved) | set(now)):
        if key.split(".")[0] in RUN_CONTROL_KEYS or saved.get(key) == now.get(key):
            continue
        overrides_path = folder / ".hydra" / "overrides.yaml"
        overrides = [o for o in OmegaConf.load(overrides_path) if o.split("=")[0] not in RUN_CONTROL_KEYS]
        return (f"{key} was {saved.get(key)} in that run and is {now.get(key)} now; repeat the run's own "
                f"overrides ({' '.join(overrides) or 'none'}) to resume it")
    return None


def resume_problem(folder: Path, config: DictConfig) -> str | None:
    """Why the run in `folder` cannot be resumed with `config`, or None when it can."""
    state = run_state(folder)
    if state == "empty":
        return f"resume=true: {folder} holds no run to resume"
    if state == "finished":
        return f"resume=true: the run in {folder} has finished; there is nothing to resume"
    difference = config_difference(folder, config)
    return f"resume=true: {difference}" if difference else None


class RunFolderGuard(Callback):
    """Refuse a single run whose folder holds an earlier run, unless it resumes that run with its own config.

    It runs before Hydra writes anything into the folder. Hydra turns exceptions raised in callbacks
    into warnings, so the refusal is reported here and ends the process with SystemExit, which Hydra
    lets through.
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # as Hydra does next, so that ${hydra:...} in the dir resolves
        folder = Path(config.hydra.run.dir)
        if config.get("resume") is True:
            problem = resume_problem(folder, config)
        elif run_state(folder) != "empty":
            problem = (f"hydra.run.dir={folder}: already holds a run; add resume=true to continue it, "
                       "or choose another folder")
        else:
            problem = None
        if problem:
            error = ConfigError(problem)
            report(str(error))
            raise SystemExit(error.exit_code)
