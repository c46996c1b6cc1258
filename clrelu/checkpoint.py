"""What a run saves: model.pt (weights, and the trunk with its architecture) and checkpoint.pt (to resume)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.layers import TrunkSpec

FORMAT = "clrelu-model-v1"
CHECKPOINT = "checkpoint.pt"  # the state after the last finished task; removed when the run finishes


def save_torch(payload, path: Path) -> None:
    """torch.save through a temporary file and a rename."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, partial)
    os.replace(partial, path)


def save_model(model: ContinualModel, path: Path) -> None:
    """Write the model's weights; models with a trunk also write it with its architecture."""
    trunk = None
    if hasattr(model, "trunk_spec"):
        trunk = {"spec": model.trunk_spec.as_dict(), "state_dict": model.trunk.state_dict()}
    save_torch({"format": FORMAT, "model": f"{type(model).__module__}.{type(model).__qualname__}",
                "state_dict": model.state_dict(), "trunk": trunk}, path)


def load_trunk(path: str | Path) -> tuple[TrunkSpec, dict]:
    """The trunk saved in a run's model.pt (config key `model.backbone_path`), as its architecture and weights."""
    key = "model.backbone_path"
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file (every clrelu run writes one as <run folder>/model.pt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{key}={path}: cannot be read as a clrelu model.pt ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{key}={path}: not a clrelu model.pt")
    if payload["trunk"] is None:
        raise ConfigError(f"{key}={path}: its model ({payload['model']}) has no single trunk to transfer")
    spec = payload["trunk"]["spec"]
    trunk = TrunkSpec(spec["in_features"], tuple(spec["hidden"]), spec["activation"], spec["k"],
                      spec.get("norm", "none"))  # trunks saved before model.norm existed have none
    return trunk, payload["trunk"]["state_dict"]


def global_rng() -> dict:
    """The state of the global random generators (torch, numpy, python)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def restore_global_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def load_checkpoint(folder: Path) -> dict:
    """The training state a run saved after its last finished task (our own file, so fully unpickled)."""
    return torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=False)
