"""torchvision, the optional extra behind the CIFAR streams and the pretrained backbones, imported on demand."""

from __future__ import annotations

import importlib

import torch

from clrelu.errors import ConfigError
from clrelu.extras import install_command


def install_hint() -> str:
    """How to add torchvision, as clrelu was installed here."""
    return (f"{install_command('vision')} beside the torch it was built for "
            "(e.g. pip install torch==2.14.1 torchvision==0.29.1)")


def import_torchvision(purpose: str):
    """The torchvision module, or a ConfigError saying that `purpose` needs the `vision` extra.

    torchvision's wheels import only beside the torch release they were built for; a mismatched or
    broken install is refused the same way, with the reason it gave.
    """
    try:
        return importlib.import_module("torchvision")
    except ImportError as exc:
        if exc.name == "torchvision":
            raise ConfigError(f"{purpose} needs torchvision, which is not installed: {install_hint()}") from None
        problem = exc
    except Exception as exc:  # noqa: BLE001 - a wheel built for another torch fails in many ways
        problem = exc
    first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
    raise ConfigError(f"{purpose} needs torchvision, which cannot be imported beside torch {torch.__version__} "
                      f"({first}): {install_hint()}") from None
