"""Whether a run, a sweep or a sweep's job may write into a folder, and the claims that lock it for them.

A single run writes only into a folder that is new, empty, or holds an unfinished run it resumes
(`resume=true`, with the config the run started with, kept in its checkpoint). A sweep writes only into
a folder that is new, empty or a clrelu sweep; each of its jobs into a folder of its own, which holds
nothing yet, or, with `skip_finished=true`, a finished run of the same job (skipped) or an unfinished one
(resumed). A folder is locked for as long as its writer runs. Every refusal is a ConfigError of one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig

from clrelu import checks
from clrelu.config import RUN_CONTROL_KEYS, job_config
from clrelu.errors import ClreluError, ConfigError
from clrelu.rundir import contents as runfolder
from clrelu.rundir import files
from clrelu.rundir.checkpoint import CHECKPOINT, resumable_checkpoint
from clrelu.rundir.lock import FolderLock, check_free

RUN, RESUME, SKIP = "run", "resume", "skip"  # what a job does with its folder


def check_single_run(folder: Path, contents: runfolder.Contents, config: DictConfig, resume: bool) -> None:
    """Raise a ConfigError when a single run with `config` may not write into `folder`."""
    where = f"hydra.run.dir={folder}"
    if contents.kind == runfolder.FOREIGN:
        raise ConfigError(f"{where}: {runfolder.describe_foreign(folder, contents)}; choose a new or empty folder")
    if contents.kind == runfolder.SWEEP:
        raise ConfigError(f"{where}: holds a sweep (clrelu run -m); give a single run a folder of its own")
    if not resume:
        if contents.kind == runfolder.FINISHED:
            raise ConfigError(f"{where}: already holds a run, which has finished; choose another folder")
        if contents.kind == runfolder.UNFINISHED:
            raise ConfigError(f"{where}: already holds a run; add resume=true to continue it, or choose another folder")
        return
    if contents.kind in (runfolder.NEW, runfolder.EMPTY, runfolder.STARTED):
        raise ConfigError(f"resume=true: {folder} holds no run to resume (it has no {CHECKPOINT})")
    if contents.kind == runfolder.FINISHED:
        raise ConfigError(f"resume=true: the run in {folder} has finished; there is nothing to resume")
    resumable_checkpoint(folder, job_config(config), where="resume=true")


def check_sweep_folder(folder: Path) -> None:
    """Raise a ConfigError when a sweep may not write into `folder` (only a new or empty one, or a clrelu sweep)."""
    contents = runfolder.inspect(folder)
    if contents.kind == runfolder.FOREIGN:
        raise ConfigError(f"hydra.sweep.dir={folder}: {runfolder.describe_foreign(folder, contents)}; choose a new "
                          "or empty folder")
    if contents.kind not in (runfolder.NEW, runfolder.EMPTY, runfolder.SWEEP):
        raise ConfigError(f"hydra.sweep.dir={folder}: holds a single run, not a sweep; give the sweep a folder of its "
                          "own")


def _launch_overrides(overrides: list[str]) -> set[str]:
    """A job's overrides, less those that say how it was launched (resume, skip_finished)."""
    return {o for o in overrides if o.lstrip("+~").split("=")[0] not in RUN_CONTROL_KEYS}


def _overrides_of(folder: Path) -> list[str] | None:
    """The overrides a run in `folder` was launched with (its .hydra/overrides.yaml), or None when it has none."""
    path = folder / ".hydra" / "overrides.yaml"
    if files.kind(folder, ".hydra/overrides.yaml") is None:
        return None
    try:
        saved = yaml.safe_load(files.read_text(folder, ".hydra/overrides.yaml", files.TEXT_LIMIT,
                                               "a Hydra YAML file holds"))
    except ClreluError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise ConfigError(f"{path}: not a list of overrides, as Hydra writes")
    return saved


def decide_job(folder: Path, config: DictConfig, overrides: list[str]) -> str:
    """What a sweep's job launched with `overrides` (its composed `config`) does with its `folder`: RUN, RESUME
    or SKIP; or a ConfigError saying why it may not write there."""
    contents = runfolder.inspect(folder)
    where = f"hydra.sweep.subdir: {folder}"
    if contents.kind in (runfolder.NEW, runfolder.EMPTY, runfolder.STARTED):
        return RUN
    if contents.kind == runfolder.FOREIGN:
        raise ConfigError(f"{where}: {runfolder.describe_foreign(folder, contents)}; choose another hydra.sweep.dir")
    if contents.kind == runfolder.SWEEP:
        raise ConfigError(f"{where}: holds a sweep, not a run; choose another hydra.sweep.dir")
    theirs = _overrides_of(folder)
    if theirs is not None and _launch_overrides(theirs) != _launch_overrides(overrides):
        mine, other = sorted(_launch_overrides(overrides)), sorted(_launch_overrides(theirs))
        raise ConfigError(f"{where}: holds the run of another job ({' '.join(other) or 'no overrides'}), not of "
                          f"this one ({' '.join(mine) or 'no overrides'}); two jobs may not share a folder: make "
                          "hydra.sweep.subdir tell them apart")
    if not checks.boolean("skip_finished", config.get("skip_finished")):
        raise ConfigError(f"{where}: already holds a run; add skip_finished=true to skip the finished runs and resume "
                          "the others, or choose another hydra.sweep.dir")
    if contents.kind == runfolder.FINISHED:
        return SKIP
    resumable_checkpoint(folder, job_config(config), where=f"skip_finished=true: cannot resume {folder}")
    return RESUME


@dataclass
class Claim:
    """A process's hold on a folder: its lock, what the folder held before (None: nothing, or no folder), and
    what the run or job does there."""

    folder: Path
    lock: FolderLock
    before: frozenset[str] | None
    action: str = RUN
    parents: tuple[Path, ...] = ()  # the folders above it that locking it created (removed with it when empty)

    def release(self) -> None:
        self.lock.release()


def _lock(folder: Path, mark: bool = True) -> tuple[FolderLock, frozenset[str] | None]:
    """Lock `folder` (creating it when needed); return the lock and what the folder held before (None when it did
    not exist or was empty: a folder Hydra made for a job a moment ago)."""
    check_free(folder)
    before = runfolder.snapshot(folder) or None
    lock = FolderLock(folder)
    lock.acquire(mark)
    return lock, before


def claim_run_folder(folder: Path, config: DictConfig) -> Claim:
    """Lock `folder` for a single run with `config`, or raise a ConfigError saying why it may not write there.

    Foreign folders and sweeps are refused before anything is written; the rest is checked again under the
    lock. A refusal removes what this process created (the lock file, a new folder).
    """
    resume = checks.boolean("resume", config.get("resume"))
    check_free(folder)
    check_single_run(folder, runfolder.inspect(folder), config, resume)
    existed, parents = runfolder.snapshot(folder), runfolder.missing_parents(folder)
    lock, _ = _lock(folder)
    try:
        check_single_run(folder, runfolder.inspect(folder), config, resume)
    except BaseException:
        runfolder.remove_created(folder, existed)
        runfolder.remove_empty(parents)
        lock.release()
        raise
    return Claim(folder, lock, existed, RESUME if resume else RUN, tuple(parents))


def claim_job_folder(folder: Path, config: DictConfig, overrides: list[str]) -> Claim:
    """Lock the folder of a sweep's job and decide what the job does there (see `decide_job`); a refusal
    removes what this process created and releases the lock."""
    lock, before = _lock(folder, mark=False)
    try:
        action = decide_job(folder, config, overrides)
        if action != SKIP:
            lock.mark()
    except BaseException:
        runfolder.remove_created(folder, before)
        lock.release()
        raise
    return Claim(folder, lock, before, action)
