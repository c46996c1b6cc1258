"""Optional extras (plot, vision, tensorboard, mlflow, wandb): the pip command that adds one to clrelu as it
was installed here, and importing a module of one with a one-line refusal when it is missing."""

from __future__ import annotations

import importlib
import json
from importlib import metadata
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlparse

from clrelu.errors import ClreluError, ConfigError


def _checkout() -> Path | None:
    """The source folder clrelu was installed from in editable mode (`pip install -e`), or None (installed
    from a wheel or an index, or not installed at all)."""
    try:
        text = metadata.distribution("clrelu").read_text("direct_url.json")
        origin = json.loads(text) if text else {}
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    if not isinstance(origin, dict) or not (origin.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(origin.get("url", "")))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def install_command(extra: str) -> str:
    """`pip install -e ".[extra]"` for an editable install from a checkout (the checkout's path when the working
    directory is elsewhere), else `pip install "clrelu[extra]"`: pip then adds the extra's packages to the
    installed clrelu."""
    checkout = _checkout()
    if checkout is None:
        return f'pip install "clrelu[{extra}]"'
    try:
        here = checkout.resolve() == Path.cwd().resolve()
    except OSError:
        here = False
    return f'pip install -e ".[{extra}]"' if here else f'pip install -e "{checkout}[{extra}]"'


def import_extra(module: str, extra: str, purpose: str, error: type[ClreluError] = ConfigError) -> ModuleType:
    """Import `module` of the optional `extra`, or raise `error` in one line: `purpose` needs it, and how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{purpose} needs the '{extra}' extra, which is not installed here ({reason}): "
                    f"{install_command(extra)}") from None
