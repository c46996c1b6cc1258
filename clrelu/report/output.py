"""Where `compare` and `plot` write: never into what they read, never into a run or sweep folder, and never over a
file clrelu did not write.

The output goes to the working directory by default or to `--out`. It is refused when it would land
inside one of the folders read, or inside any run or sweep folder (one holding a summary.csv, a
checkpoint.pt, a multirun.yaml or clrelu's lock file): a run folder holds its run's files only. An
existing file is replaced only when it is a regular file that clrelu wrote (a comparison table, recognised
by its header, or a figure carrying clrelu's mark, which png, pdf, svg, eps and ps files can hold); anything
else is refused, so a user's own file of the same name is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clrelu.errors import ConfigError
from clrelu.rundir import files
from clrelu.rundir.checkpoint import CHECKPOINT
from clrelu.rundir.contents import MULTIRUN
from clrelu.rundir.csvfiles import SUMMARY
from clrelu.rundir.lock import LOCK_FILE

RUN_MARKS = (SUMMARY, CHECKPOINT, MULTIRUN, LOCK_FILE)  # a folder holding one of these is a run's or a sweep's
OWNED_LIMIT = 256 << 20  # an existing output larger than this is no table or figure clrelu wrote


def _run_folder_above(target: Path) -> Path | None:
    """The nearest folder at or above `target`'s folder that is a run or sweep folder, if any."""
    for folder in [target.parent, *target.parent.parents]:
        if any(files.kind(folder, mark) is not None for mark in RUN_MARKS):
            return folder
    return None


def checked_output(out: str | None, default: str, inputs: list[Path], ours: Callable[[bytes], bool],
                   what: str) -> Path:
    """The file to write: `out`, or `default` in the working directory; a ConfigError saying why not when it
    would land inside an input, a run or a sweep folder, or replace a file clrelu did not write (`ours` tells,
    from its bytes, whether it did)."""
    target = Path(out) if out else Path(default)
    named = f"--out {out}" if out else f"{target} (the default output of this command)"
    if files.kind(target.parent) != "folder":
        raise ConfigError(f"{named}: no such folder {target.parent}")
    where = target.parent.resolve() / target.name
    for folder in inputs:
        if where.is_relative_to(folder.resolve()):
            raise ConfigError(f"{named}: lies inside {folder}, which this command reads; clrelu never writes into "
                              "its inputs: choose --out elsewhere")
    above = _run_folder_above(where)
    if above is not None:
        raise ConfigError(f"{named}: lies inside {above}, a run or sweep folder, which holds its run's files only: "
                          "choose --out elsewhere")
    found = files.kind(target.parent, target.name)
    if found == "file":
        try:
            content = files.read_bytes(target.parent, target.name, OWNED_LIMIT, what)
        except ConfigError:
            content = b""
        if ours(content):
            return target
    if found is not None:
        raise ConfigError(f"{named}: exists, and is not {what} clrelu wrote; clrelu never overwrites a file it did "
                          "not write: choose another name or remove it")
    return target
