"""What a folder holds: nothing yet, a clrelu run (and how far it got), a clrelu sweep, or someone else's
files; and removing, after a refused config, exactly the files this process created there.

A clrelu run is recognised by its summary.csv (clrelu's columns) or its checkpoint.pt, files `cp run/*`
keeps. A run stopped before its first checkpoint holds no result worth keeping: clrelu's lock file, the
start-up files (Hydra's config files, run.log), the CSV files of its first evaluation and at most a
summary.csv with no task done; such a folder counts as started, and a new run may use it. A clrelu sweep
is recognised by its multirun.yaml beside clrelu's lock file. A folder that holds a symbolic link or a
special file (a FIFO, a device) is never a run or a sweep: clrelu does not write there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from clrelu.errors import ClreluError, ConfigError
from clrelu.rundir import files
from clrelu.rundir.checkpoint import CHECKPOINT
from clrelu.rundir.csvfiles import (
    ACCURACY,
    ACTIVATIONS,
    EVALS,
    FORGETTING,
    MODEL_STATS,
    ONLINE,
    OVERLAP,
    PLASTICITY,
    SUMMARY,
    read_summary,
)
from clrelu.rundir.files import TEMPORARY
from clrelu.rundir.lock import LOCK_FILE

MULTIRUN = "multirun.yaml"
SWEEPER = "ClreluSweeper"
HYDRA_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
STARTUP_FILES = {*HYDRA_FILES, "run.log", LOCK_FILE}  # what a run writes before it measures anything
RUN_CSV_FILES = {ACCURACY, FORGETTING, EVALS, MODEL_STATS, ACTIVATIONS, OVERLAP, ONLINE, PLASTICITY}
FIRST_WRITES = {*STARTUP_FILES, *RUN_CSV_FILES, SUMMARY}  # what it can hold before its first checkpoint

# kinds of folder
NEW, EMPTY, STARTED, UNFINISHED, FINISHED, SWEEP, FOREIGN = (
    "new", "empty", "started", "unfinished", "finished", "sweep", "foreign")


@dataclass(frozen=True)
class Contents:
    kind: str
    examples: tuple[str, ...] = ()  # for a foreign folder: some of the names that are not a run's
    unsafe: str = ""  # for a foreign folder: why clrelu will not write there at all (a link, a special file)


def unsafe_entry(folder: Path, below: tuple[str, ...] = (".hydra",)) -> str | None:
    """The first name in `folder` (or in its subfolders named in `below`) that is a symbolic link or a special
    file, said with what it is; None when there is none. (Folders Hydra and clrelu write into hold regular files
    and folders only.)"""
    for inner in ("", *below):
        if inner and files.kind(folder, inner) != "folder":
            continue
        for entry in sorted(files.names(folder, inner)):
            name = f"{inner}/{entry}" if inner else entry
            found = files.kind(folder, name)
            if found == "link":
                return f"{name} (a symbolic link)"
            if found == "special":
                return f"{name} (a special file)"
    return None


def _is_clrelu_sweep(folder: Path) -> bool:
    """A multirun.yaml beside clrelu's lock file, or one that names the sweeper clrelu used before 0.2."""
    path = folder / MULTIRUN
    try:
        saved = yaml.safe_load(files.read_text(folder, MULTIRUN, files.TEXT_LIMIT, "a Hydra YAML file holds"))
    except ClreluError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
    target = saved.get("hydra", {}).get("sweeper", {}).get("_target_", "") if isinstance(saved, dict) else ""
    return files.kind(folder, LOCK_FILE) == "file" or (isinstance(target, str) and target.endswith(SWEEPER))


def _first_writes_leftovers(folder: Path, names: set[str]) -> set[str]:
    """The names in `folder` that are not what a run writes before its first checkpoint (Hydra's files, run.log,
    the lock, the CSV files, temporary files)."""
    others = {n for n in names if n not in FIRST_WRITES and n != ".hydra" and not TEMPORARY.match(n)}
    if ".hydra" in names:
        is_folder = files.kind(folder, ".hydra") == "folder"
        found = files.names(folder, ".hydra") if is_folder else []
        inside = {f".hydra/{n}" for n in found if not TEMPORARY.match(n)} if is_folder else {".hydra/"}
        others |= inside - HYDRA_FILES
    return others


def inspect(folder: Path) -> Contents:
    """What `folder` holds. Reading it only; a file that cannot be read is a ConfigError naming it."""
    if not folder.exists() and not folder.is_symlink():
        return Contents(NEW)
    if folder.is_symlink():
        return Contents(FOREIGN, unsafe="is a symbolic link; give clrelu the folder it points to")
    if not folder.is_dir():
        return Contents(FOREIGN, (folder.name,))
    unsafe = unsafe_entry(folder)
    if unsafe:
        return Contents(FOREIGN, unsafe=f"holds {unsafe}, which clrelu never writes through")
    names = set(files.names(folder))
    if all(TEMPORARY.match(n) for n in names - {LOCK_FILE}):
        return Contents(EMPTY)
    if MULTIRUN in names:
        if _is_clrelu_sweep(folder):
            return Contents(SWEEP)
        return Contents(FOREIGN, (MULTIRUN,))
    summary = read_summary(folder) if SUMMARY in names else None
    if summary is not None and summary["status"] == "finished":
        return Contents(FINISHED)  # (a checkpoint.pt beside it is what a kill while finishing left: never resumed)
    if CHECKPOINT in names or (summary is not None and summary["tasks_done"] != "0"):
        return Contents(UNFINISHED)
    others = _first_writes_leftovers(folder, names)
    if LOCK_FILE in names and not others:
        return Contents(STARTED)
    return Contents(FOREIGN, tuple(sorted(others or names))[:3])


def describe_foreign(folder: Path, contents: Contents) -> str:
    if contents.unsafe:
        return contents.unsafe
    listed = ", ".join(contents.examples) + (", ..." if len(contents.examples) == 3 else "")
    return f"holds files that are not a clrelu run's ({listed}; a run has a {SUMMARY} or {CHECKPOINT})"


def snapshot(folder: Path) -> frozenset[str] | None:
    """The paths under `folder` (relative, folders with a trailing /), or None when it does not exist."""
    if files.kind(folder) != "folder" or folder.is_symlink():
        return None
    tree = files.walk(folder)
    return frozenset([*(f"{d}/" for d in tree.folders), *tree.files, *tree.links, *tree.specials])


def _is_startup(path: str) -> bool:
    return path in STARTUP_FILES or bool(TEMPORARY.match(path.rpartition("/")[2]))


def remove_created(folder: Path, before: frozenset[str] | None) -> None:
    """After a refused config: when this process wrote only start-up files into `folder` (Hydra's, run.log,
    the lock, temporary files), remove those that were not there `before`, and the folders that were not
    there before and are now empty. When it wrote anything else (a run went ahead), remove nothing."""
    if files.kind(folder) != "folder" or folder.is_symlink():
        return
    earlier = before or frozenset()
    created = (snapshot(folder) or frozenset()) - earlier
    created_files = [p for p in created if not p.endswith("/")]
    if not all(_is_startup(p) for p in created_files):
        return
    for path in created_files:
        files.remove(folder, path)
    for path in sorted((p for p in created if p.endswith("/")), key=len, reverse=True):
        if not files.names(folder, path[:-1]):
            files.remove_folder(folder, path[:-1])
    if before is None and not files.names(folder):
        files.remove_folder(folder)


def missing_parents(folder: Path) -> list[Path]:
    """The folders above `folder` that do not exist yet (nearest first): what creating it would create."""
    return [parent for parent in Path(os.path.abspath(folder)).parents if not parent.exists()]


def remove_empty(folders: list[Path]) -> None:
    """After a refusal: remove the folders this process created above a run or sweep folder, while they are empty."""
    for folder in folders:
        if not folder.is_dir() or os.listdir(folder):
            return
        folder.rmdir()
