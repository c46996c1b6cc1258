"""Hydra's basic sweeper, made to write only into a sweep folder that is new, empty or clrelu's, to skip
finished runs and resume unfinished ones instead of overwriting them, and to check every job's folder and
config before any job starts.

Hydra imports every module under hydra_plugins when it starts, so clrelu is imported only when a sweep runs.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:  # (no `from __future__ import annotations` here: Hydra's plugin scan imports this module unregistered)
    overrides: list[str] | None  # what to launch the job with; None: skip it (it has finished)
    folder: Path
    before: frozenset[str] | None  # what the folder held before the sweep (None: no folder)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClreluSweeper(BasicSweeper):
    """Before anything runs, check the sweep folder and the folder and config of every job, then lock the
    sweep folder for the whole sweep.

    A job folder that holds a run makes the sweep stop, unless `skip_finished=true`: then finished runs
    are skipped and unfinished ones resume from their checkpoint (with `resume=true`), after checking
    that their config is the one they started with. A job whose config is refused leaves nothing behind.
    """

    def sweep(self, arguments: list[str]):
        from clrelu.rundir.contents import remove_created, snapshot
        from clrelu.rundir.files import write_atomically
        from clrelu.rundir.lock import FolderLock, mark_sweep_process

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        every_job = [job for batch in self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]),
                                                            None) for job in batch]
        self._check_launcher(self.config.hydra.launcher)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        self._check_sweep_dir(sweep_dir)  # before writing anything
        before = snapshot(sweep_dir)
        lock = FolderLock(sweep_dir)
        lock.acquire()
        try:
            try:
                self._check_sweep_dir(sweep_dir)
                plans = [self._plan_job(job, index, sweep_dir) for index, job in enumerate(every_job)]
            except BaseException:
                remove_created(sweep_dir, before)
                raise
            write_atomically(sweep_dir / "multirun.yaml", lambda partial: OmegaConf.save(self.config, partial))
            mark_sweep_process()
            return self._launch(plans)
        finally:
            lock.release()

    @staticmethod
    def _check_launcher(launcher) -> None:
        from clrelu.errors import ConfigError

        if "joblib" in str(launcher.get("_target_", "")):
            n_jobs = launcher.get("n_jobs")
            if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
                raise ConfigError(f"hydra.launcher.n_jobs={n_jobs}: must be the number of jobs to run at once "
                                  "(1, 2, ...) or a count back from the number of cores (-1: all, -2: all but one)")

    @staticmethod
    def _check_sweep_dir(sweep_dir: Path) -> None:
        from clrelu.errors import ConfigError
        from clrelu.rundir.contents import EMPTY, FOREIGN, NEW, SWEEP, describe_foreign, inspect

        contents = inspect(sweep_dir)
        if contents.kind == FOREIGN:
            raise ConfigError(f"hydra.sweep.dir={sweep_dir}: {describe_foreign(sweep_dir, contents)}; choose a new "
                              "or empty folder")
        if contents.kind not in (NEW, EMPTY, SWEEP):
            raise ConfigError(f"hydra.sweep.dir={sweep_dir}: holds a single run, not a sweep; give the sweep a "
                              "folder of its own")

    def _plan_job(self, overrides: list[str], index: int, sweep_dir: Path) -> JobPlan:
        """What to do with job number `index`: run it, resume it or skip it; or a ConfigError saying why not."""
        from clrelu import checks
        from clrelu.config import job_config
        from clrelu.errors import ConfigError
        from clrelu.rundir import contents as runfolder
        from clrelu.rundir.checkpoint import resumable_checkpoint
        from clrelu.rundir.guard import check_before_writing
        from clrelu.rundir.lock import check_free

        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.num = config.hydra.job.id = index  # as Hydra's launchers number the jobs
        HydraConfig.instance().set_config(config)
        check_before_writing(config)
        subdir = str(config.hydra.sweep.subdir)
        folder = sweep_dir / subdir
        launch = list(overrides)
        if "hydra.job." in str(OmegaConf.to_container(config.hydra.sweep)["subdir"]):
            # the launcher numbers only the jobs it runs; keep the folder of each job whatever is skipped
            launch.append(f"hydra.sweep.subdir={_quoted(subdir)}")
        check_free(folder)
        contents = runfolder.inspect(folder)
        where = f"hydra.sweep.dir={sweep_dir}: {subdir}"
        if contents.kind in (runfolder.NEW, runfolder.EMPTY, runfolder.STARTED):
            return JobPlan(launch, folder, runfolder.snapshot(folder))
        if contents.kind == runfolder.FOREIGN:
            raise ConfigError(f"{where} {runfolder.describe_foreign(folder, contents)}; choose another hydra.sweep.dir")
        if contents.kind not in (runfolder.FINISHED, runfolder.UNFINISHED):
            raise ConfigError(f"{where} holds a sweep, not a run; choose another hydra.sweep.dir")
        if not checks.boolean("skip_finished", config.get("skip_finished")):
            raise ConfigError(f"hydra.sweep.dir={sweep_dir}: {folder.name} already holds a run; add "
                              "skip_finished=true to skip the finished runs and resume the others, "
                              "or choose another folder")
        if contents.kind == runfolder.FINISHED:
            return JobPlan(None, folder, None)
        resumable_checkpoint(folder, job_config(config), where=f"skip_finished=true: cannot resume {folder}")
        return JobPlan([*launch, "resume=true"], folder, runfolder.snapshot(folder))

    def _launch(self, plans: list[JobPlan]):
        """Launch the jobs to run, in batches of max_batch_size; after a batch with failed jobs, remove what
        the refused ones created and raise the first failure, as Hydra's basic sweeper does."""
        from clrelu.errors import ConfigError

        to_run = [plan for plan in plans if plan.overrides is not None]
        if len(to_run) < len(plans):
            log.info("skipping %d finished run(s) of %d", len(plans) - len(to_run), len(plans))
        size = self.max_batch_size or max(1, len(to_run))
        returns = []
        for start in range(0, len(to_run), size):
            batch = to_run[start:start + size]
            results = self.launcher.launch([plan.overrides for plan in batch], initial_job_idx=start)
            returns.append(results)
            failed = [(plan, r) for plan, r in zip(batch, results) if r.status == JobStatus.FAILED]
            for plan, result in failed:
                if isinstance(result._return_value, ConfigError):
                    self._remove_leftovers(plan)
            if failed:
                _ = failed[0][1].return_value  # raises the job's exception
        return returns

    @staticmethod
    def _remove_leftovers(plan: JobPlan) -> None:
        """What a job whose config was refused created in its folder (Hydra's files, run.log, a new folder)."""
        from clrelu.errors import ClreluError
        from clrelu.rundir.contents import remove_created
        from clrelu.rundir.lock import FolderLock

        lock = FolderLock(plan.folder)
        try:
            lock.acquire()
        except ClreluError:
            return  # another process writes there now
        try:
            remove_created(plan.folder, plan.before)
        finally:
            lock.release()
