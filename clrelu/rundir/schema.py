"""What a checkpoint may hold: its fixed schema, checked before any of it is used.

torch.load(weights_only=True) already refuses anything but tensors and plain data; these checks refuse
plain data that is not what clrelu wrote: a key it never writes, a value of the wrong type, an integer
out of range, a tensor whose shape or dtype is not the model's. Each failure is one line beginning
"damaged checkpoint: <path>: ", and is raised before the checkpoint changes anything on disk.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from clrelu.errors import ConfigError


class DamagedCheckpoint(ConfigError):
    def __init__(self, path: Path, problem: str):
        super().__init__(f"damaged checkpoint: {path}: {problem}")


def shown(value) -> str:
    """A value read from a file, for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def integer(path: Path, what: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DamagedCheckpoint(path, f"{what} is {shown(value)}, not an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
        raise DamagedCheckpoint(path, f"{what} is {value}, outside {bound}")
    return value


def number(path: Path, what: str, value, minimum: float | None = None) -> float:
    """A float or int (NaN allowed unless `minimum` is given, which also requires it to be finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DamagedCheckpoint(path, f"{what} is {shown(value)}, not a number")
    if minimum is not None and not (math.isfinite(value) and value >= minimum):
        raise DamagedCheckpoint(path, f"{what} is {value}, not a finite number of at least {minimum}")
    return float(value)


def mapping(path: Path, what: str, value, keys: Iterable[str] | None = None, optional: Iterable[str] = ()) -> dict:
    """A dict with string keys; with `keys`, exactly those keys (and any of `optional`)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DamagedCheckpoint(path, f"{what} is a {type(value).__name__}, not a mapping of names")
    if keys is not None:
        required = set(keys)
        missing = sorted(required - set(value))
        unknown = sorted(set(value) - required - set(optional))
        if missing:
            raise DamagedCheckpoint(path, f"{what} has no '{missing[0]}'")
        if unknown:
            raise DamagedCheckpoint(path, f"{what} holds {shown(unknown[0])}, which clrelu never writes there")
    return value


def tensors_like(path: Path, what: str, saved, expected: Mapping[str, torch.Tensor]) -> None:
    """`saved` holds exactly the names of `expected`, each a tensor of the same shape and dtype."""
    mapping(path, what, saved, expected.keys())
    for name, reference in expected.items():
        value = saved[name]
        if not isinstance(value, torch.Tensor):
            raise DamagedCheckpoint(path, f"{what}[{name!r}] is a {type(value).__name__}, not a tensor")
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise DamagedCheckpoint(path, f"{what}[{name!r}] is {value.dtype} of shape {tuple(value.shape)}; the "
                                          f"model's is {reference.dtype} of shape {tuple(reference.shape)}")


def parameter_tensors(path: Path, what: str, state, parameters: Mapping[str, torch.Tensor]) -> None:
    """In a strategy's state (any nesting of dicts, lists and tuples), every mapping keyed by names of the model's
    parameters holds tensors of those parameters' shapes (EWC's Fisher and anchors, SI's importance, ...)."""
    if isinstance(state, dict):
        if state and all(isinstance(k, str) and k in parameters for k in state):
            for name, value in state.items():
                if not isinstance(value, torch.Tensor) or value.shape != parameters[name].shape:
                    found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    raise DamagedCheckpoint(path, f"{what}[{name!r}] is {found}; the parameter's shape is "
                                                  f"{tuple(parameters[name].shape)}")
            return
        for key, value in state.items():
            parameter_tensors(path, f"{what}[{key!r}]", value, parameters)
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            parameter_tensors(path, f"{what}[{i}]", value, parameters)


def random_states(path: Path, rng) -> None:
    """The saved states of the random generators, tried on generators of their own (so that a bad one fails here,
    before anything is restored)."""
    mapping(path, "rng", rng, ("batches", "torch", "numpy", "python"))
    for key in ("batches", "torch"):
        value = rng[key]
        try:
            if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
                raise ValueError("not a uint8 tensor")
            torch.Generator().set_state(value)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise DamagedCheckpoint(path, f"rng[{key!r}] is not a torch generator state ({exc})") from None
    try:
        name, keys, position, has_gauss, gauss = rng["numpy"]
        np.random.RandomState().set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    except (TypeError, ValueError, OverflowError) as exc:
        raise DamagedCheckpoint(path, f"rng['numpy'] is not a numpy generator state ({exc})") from None
    try:
        random.Random().setstate(rng["python"])
    except (TypeError, ValueError, OverflowError) as exc:
        raise DamagedCheckpoint(path, f"rng['python'] is not a python generator state ({exc})") from None


def optimizer_state(path: Path, saved, parameters: list[torch.Tensor]) -> None:
    """An optimizer's state_dict over `parameters` (in the order of its groups): per parameter index, tensors that
    are scalars (a step count) or have that parameter's shape (momentum, Adam's moments)."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"} or not isinstance(saved["state"], dict):
        raise DamagedCheckpoint(path, "optimizer['state'] is not an optimizer's state")
    for index, entry in saved["state"].items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(parameters):
            raise DamagedCheckpoint(path, f"optimizer['state'] names parameter {shown(index)}, not one of 0.."
                                          f"{len(parameters) - 1}")
        if not isinstance(entry, dict):
            raise DamagedCheckpoint(path, f"optimizer['state'][{index}] is not a mapping")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != parameters[index].shape:
                raise DamagedCheckpoint(path, f"optimizer['state'][{index}][{key!r}] has shape {tuple(value.shape)}; "
                                              f"its parameter's is {tuple(parameters[index].shape)}")


def restored(path: Path, what: str, load, value) -> None:
    """`load(value)`, any failure being a damaged checkpoint (the checks above caught what they know of)."""
    try:
        load(value)
    except Exception as exc:  # noqa: BLE001 (state dicts fail in many ways)
        text = str(exc).strip().splitlines()
        raise DamagedCheckpoint(path, f"{what} cannot be restored ({type(exc).__name__}: "
                                      f"{text[0] if text else ''})") from None
