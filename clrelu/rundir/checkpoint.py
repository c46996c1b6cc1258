"""What a run saves: model.pt (weights, and the trunk with its architecture) and checkpoint.pt (to resume).

Both hold only tensors and plain data (numbers, strings, None, lists, tuples and dicts of those) and are
read with `torch.load(..., weights_only=True)`, which refuses anything else: a file clrelu reads cannot
run code. What a checkpoint holds is then checked against its fixed schema (rundir/schema.py) before
any of it is used.
"""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from clrelu.config import config_difference
from clrelu.errors import ClreluError, ConfigError
from clrelu.machine import memory
from clrelu.models.base import ContinualModel
from clrelu.models.layers import TrunkSpec
from clrelu.rundir import files, schema
from clrelu.rundir.record import checked_lengths

FORMAT = "clrelu-model-v1"
CHECKPOINT_FORMAT = "clrelu-checkpoint-v1"
CHECKPOINT = "checkpoint.pt"  # the state after the last finished task; removed when the run finishes
CHECKPOINT_KEYS = ("format", "phases_done", "model", "strategy", "record", "rng")


def save_torch(payload, folder: Path, name: str) -> None:
    """torch.save through a temporary file and a rename."""
    files.write_atomically(folder, name, lambda handle: torch.save(payload, handle))


def read_torch(folder: Path, name: str, what: str):
    """A file saved by torch.save, read with weights_only=True; a file that cannot be read that way
    (damaged, foreign, larger than half this machine's memory, or holding objects whose loading could run
    code) is a ConfigError naming it."""
    path = folder / name
    try:
        with files.reader(folder, name, memory()[0] // 2, "half this machine's memory") as handle:
            with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
                warnings.simplefilter("ignore")
                return torch.load(handle, map_location="cpu", weights_only=True)
    except ClreluError:
        raise
    except pickle.UnpicklingError:
        raise ConfigError(f"{path}: cannot be read as a {what}: it holds objects other than tensors and plain "
                          "data, which were not loaded because loading them could run code") from None
    except Exception as exc:  # noqa: BLE001 (torch raises RuntimeError, EOFError, ValueError... for a damaged file)
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot be read as a {what} ({reason})") from None


def save_model(model: ContinualModel, path: Path) -> None:
    """Write the model's weights; models with a trunk also write it with its architecture."""
    trunk = None
    if hasattr(model, "trunk_spec"):
        trunk = {"spec": model.trunk_spec.as_dict(), "state_dict": model.trunk.state_dict()}
    save_torch({"format": FORMAT, "model": f"{type(model).__module__}.{type(model).__qualname__}",
                "state_dict": model.state_dict(), "trunk": trunk}, path.parent, path.name)


def load_trunk(path: str | Path) -> tuple[TrunkSpec, dict]:
    """The trunk saved in a run's model.pt (config key `model.backbone_path`), as its architecture and weights."""
    key = "model.backbone_path"
    path = Path(path).expanduser()
    if files.kind(path.parent, path.name) is None:
        raise ConfigError(f"{key}={path}: no such file (every clrelu run writes one as <run folder>/model.pt)")
    try:
        payload = read_torch(path.parent, path.name, "clrelu model.pt")
    except ConfigError as exc:
        raise ConfigError(f"{key}={exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{key}={path}: not a clrelu model.pt")
    if payload["trunk"] is None:
        raise ConfigError(f"{key}={path}: its model ({payload['model']}) has no single trunk to transfer")
    return TrunkSpec.from_dict(payload["trunk"]["spec"]), payload["trunk"]["state_dict"]


def global_rng() -> dict:
    """The state of the global random generators (torch, numpy, python), as tensors and plain data."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), position, has_gauss, gauss],
            "python": random.getstate()}


def restore_global_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])


def save_checkpoint(folder: Path, state: dict) -> None:
    """Write the training state after a finished task (`phases_done`, model, strategy, optimizer, record, rng)."""
    save_torch({"format": CHECKPOINT_FORMAT, **state}, folder, CHECKPOINT)


def load_checkpoint(folder: Path) -> dict:
    """The training state a run saved after its last finished task, checked to be a clrelu checkpoint and
    against the part of its schema that needs no model (the rest: Trainer._restore and RunRecord.restore)."""
    path = folder / CHECKPOINT
    state = read_torch(folder, CHECKPOINT, "clrelu checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a clrelu checkpoint (it has no '{CHECKPOINT_FORMAT}' mark)")
    schema.mapping(path, "the checkpoint", state, CHECKPOINT_KEYS, optional=("optimizer",))
    schema.integer(path, "phases_done", state["phases_done"])
    for key in ("model", "strategy"):
        schema.mapping(path, key, state[key])
    optimizer = state.get("optimizer")
    if optimizer is not None:
        schema.mapping(path, "optimizer", optimizer, ("state", "groups"))
        groups = optimizer["groups"]
        if not isinstance(groups, list) or not groups or not all(
                isinstance(g, list) and all(isinstance(n, str) for n in g) for g in groups):
            raise schema.DamagedCheckpoint(path, "optimizer['groups'] is not a list of lists of parameter names")
    schema.mapping(path, "record", state["record"])
    schema.mapping(path, "record['config']", state["record"].get("config"))
    checked_lengths(folder, path, state["record"].get("lengths"))
    schema.random_states(path, state["rng"])
    return state


def resumable_checkpoint(folder: Path, config: dict, where: str) -> dict:
    """The checkpoint of the unfinished run in `folder`, after checking that `config` (plain data) is the
    config the run started with; else a ConfigError that begins with `where`."""
    if files.kind(folder, CHECKPOINT) is None:
        raise ConfigError(f"{where}: {folder} holds no {CHECKPOINT} to resume from (a run writes it after its first "
                          "evaluation and removes it when it finishes)")
    try:
        checkpoint = load_checkpoint(folder)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    difference = config_difference(checkpoint["record"]["config"], config)
    if difference:
        raise ConfigError(f"{where}: {difference}; resume with the config the run started with")
    return checkpoint
