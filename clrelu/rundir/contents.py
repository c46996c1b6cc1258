"""What a folder holds: nothing yet, a clrelu run (and how far it got), a clrelu sweep, or someone else's
files; and removing, after a refused config, exactly the files this process created there.

A clrelu run is recognised by its summary.csv (clrelu's columns) or its checkpoint.pt, files `cp run/*`
keeps; a run that was stopped before its first summary, by clrelu's lock file beside Hydra's start-up
files. A clrelu sweep is recognised by a multirun.yaml naming clrelu's sweeper.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from clrelu.errors import ConfigError
from clrelu.rundir.checkpoint import CHECKPOINT
from clrelu.rundir.csvfiles import SUMMARY, read_summary
from clrelu.rundir.files import TEMPORARY
from clrelu.rundir.lock import LOCK_FILE

MULTIRUN = "multirun.yaml"
SWEEPER = "ClreluSweeper"
HYDRA_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
STARTUP_FILES = {*HYDRA_FILES, "run.log", LOCK_FILE}  # what a run has written before its first task ends

# kinds of folder
NEW, EMPTY, STARTED, UNFINISHED, FINISHED, SWEEP, FOREIGN = (
    "new", "empty", "started", "unfinished", "finished", "sweep", "foreign")


@dataclass(frozen=True)
class Contents:
    kind: str
    examples: tuple[str, ...] = ()  # for a foreign folder: some of the names that are not a run's


def _is_clrelu_sweep(path: Path) -> bool:
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
    target = saved.get("hydra", {}).get("sweeper", {}).get("_target_", "") if isinstance(saved, dict) else ""
    return isinstance(target, str) and target.endswith(SWEEPER)


def _startup_leftovers(folder: Path, names: set[str]) -> set[str]:
    """The names in `folder` that are not what a run writes when it starts (Hydra's files, run.log, the
    lock, temporary files)."""
    others = {n for n in names if n not in STARTUP_FILES and n != ".hydra" and not TEMPORARY.match(n)}
    if ".hydra" in names:
        hydra = folder / ".hydra"
        inside = {f".hydra/{n}" for n in os.listdir(hydra)} if hydra.is_dir() else {".hydra/"}
        others |= inside - HYDRA_FILES
    return others


def inspect(folder: Path) -> Contents:
    """What `folder` holds. Reading it only; a file that cannot be read is a ConfigError naming it."""
    if not folder.exists():
        return Contents(NEW)
    if not folder.is_dir():
        return Contents(FOREIGN, (folder.name,))
    names = set(os.listdir(folder))
    if all(TEMPORARY.match(n) for n in names - {LOCK_FILE}):
        return Contents(EMPTY)
    if MULTIRUN in names:
        if _is_clrelu_sweep(folder / MULTIRUN):
            return Contents(SWEEP)
        return Contents(FOREIGN, (MULTIRUN,))
    if SUMMARY in names:
        return Contents(FINISHED if read_summary(folder / SUMMARY)["status"] == "finished" else UNFINISHED)
    if CHECKPOINT in names:
        return Contents(UNFINISHED)
    others = _startup_leftovers(folder, names)
    if LOCK_FILE in names and not others:
        return Contents(STARTED)
    return Contents(FOREIGN, tuple(sorted(others or names))[:3])


def describe_foreign(folder: Path, contents: Contents) -> str:
    listed = ", ".join(contents.examples) + (", ..." if len(contents.examples) == 3 else "")
    return f"holds files that are not a clrelu run's ({listed}; a run has a {SUMMARY} or {CHECKPOINT})"


def snapshot(folder: Path) -> frozenset[str] | None:
    """The paths under `folder` (relative, folders with a trailing /), or None when it does not exist."""
    if not folder.is_dir():
        return None
    found = set()
    for root, dirs, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        found |= {f"{(relative / d).as_posix()}/" for d in dirs} | {(relative / f).as_posix() for f in files}
    return frozenset(found)


def _is_startup(path: str) -> bool:
    return path in STARTUP_FILES or bool(TEMPORARY.match(path.rpartition("/")[2]))


def remove_created(folder: Path, before: frozenset[str] | None) -> None:
    """After a refused config: when this process wrote only start-up files into `folder` (Hydra's, run.log,
    the lock, temporary files), remove those that were not there `before`, and the folders that were not
    there before and are now empty. When it wrote anything else (a run went ahead), remove nothing."""
    if not folder.is_dir():
        return
    earlier = before or frozenset()
    created = (snapshot(folder) or frozenset()) - earlier
    files = [p for p in created if not p.endswith("/")]
    if not all(_is_startup(p) for p in files):
        return
    for path in files:
        (folder / path).unlink()
    for path in sorted((p for p in created if p.endswith("/")), key=len, reverse=True):
        if not os.listdir(folder / path):
            (folder / path).rmdir()
    if before is None and not os.listdir(folder):
        folder.rmdir()
