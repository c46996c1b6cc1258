"""Whether a run may write into a folder, and the Hydra callback that checks it for a single run.

A run writes only into a folder that is new, empty, or holds a clrelu run of the same kind: a single run
into a run folder it resumes (`resume=true`, with the config the run started with, kept in its
checkpoint), a sweep into a sweep folder. The folder is locked for the whole run. A check that fails for
any reason refuses the run with one line: the guard fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from clrelu import checks
from clrelu.config import check_known_keys, check_seeds, job_config
from clrelu.errors import ClreluError, ConfigError, report
from clrelu.rundir import contents as runfolder
from clrelu.rundir.checkpoint import CHECKPOINT, resumable_checkpoint
from clrelu.rundir.lock import FolderLock, check_free


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


@dataclass
class Claim:
    """This process's hold on a run folder: its lock, and what the folder held before (None: no folder)."""

    lock: FolderLock
    before: frozenset[str] | None
    knows_before: bool = True  # False when the folder was locked after Hydra wrote into it (a sweep's job)

    def release(self) -> None:
        self.lock.release()


CLAIMS: dict[Path, Claim] = {}  # run folders this process holds, by resolved path


def claim_run_folder(folder: Path, config: DictConfig) -> Claim:
    """Lock `folder` for a single run with `config`, or raise a ClreluError saying why it may not write there.

    Foreign folders and sweeps are refused before anything is written; the rest is checked under the
    lock. A refusal removes what this process created (the lock file, a new folder).
    """
    resume = checks.boolean("resume", config.get("resume"))
    check_free(folder)
    contents = runfolder.inspect(folder)
    if contents.kind in (runfolder.FOREIGN, runfolder.SWEEP):
        check_single_run(folder, contents, config, resume)
    before = runfolder.snapshot(folder)
    lock = FolderLock(folder)
    lock.acquire()
    try:
        check_single_run(folder, runfolder.inspect(folder), config, resume)
    except BaseException:
        runfolder.remove_created(folder, before)
        lock.release()
        raise
    claim = Claim(lock, before)
    CLAIMS[folder.resolve()] = claim
    return claim


def claim_job_folder(folder: Path, single_run: bool) -> Claim:
    """The claim the guard made on a single run's `folder`, or, for a job of a sweep (checked by the
    sweeper), a lock taken now. A single run the guard did not check (its callback removed) is refused."""
    claim = CLAIMS.pop(folder.resolve(), None)
    if claim is None and single_run:
        raise ConfigError("hydra.callbacks.guard: clrelu does not run without its run-folder guard, which checks the "
                          "folder before anything is written")
    if claim is None:
        lock = FolderLock(folder)
        lock.acquire()
        claim = Claim(lock, before=None, knows_before=False)
    return claim


def check_before_writing(config: DictConfig) -> None:
    """What can be refused from the composed config alone, before a run or sweep writes anything: keys the
    YAML configs do not define, and seeds out of range."""
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(config.hydra.overrides.task)
    check_known_keys(config, overrides, GlobalHydra.instance().config_loader(), config.hydra.job.config_name)
    check_seeds(config)


class RunFolderGuard(Callback):
    """Check a single run's folder and config before Hydra writes anything there, and lock the folder.

    Hydra turns exceptions raised in callbacks into warnings and goes on, so every refusal, including an
    unexpected error inside the check, is reported here and ends the process with SystemExit, which Hydra
    lets through.
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        folder = None
        try:
            HydraConfig.instance().set_config(config)  # as Hydra does next, so that ${hydra:...} in the dir resolves
            folder = Path(config.hydra.run.dir)
            check_before_writing(config)
            claim_run_folder(folder, config)
            return
        except ClreluError as exc:
            message, code = str(exc), exc.exit_code
        except Exception as exc:  # noqa: BLE001 (fail closed: a check that cannot be made refuses the run)
            where = f"hydra.run.dir={folder}" if folder else "hydra.run.dir"
            message, code = f"{where}: cannot check the run folder ({type(exc).__name__}: {exc})", 2
        report(message.splitlines()[0] if message else message)
        raise SystemExit(code)
