"""Hydra's basic sweeper, made to skip finished runs and resume unfinished ones instead of overwriting them.

Hydra imports every module under hydra_plugins when it starts, so clrelu is imported only when a sweep runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger(__name__)


class ClreluSweeper(BasicSweeper):
    """Before anything runs, look at the folder of every job of the sweep.

    A folder that holds a run makes the sweep stop, unless `skip_finished=true`: then finished runs
    are skipped and unfinished ones resume from their checkpoint (with `resume=true`), after checking
    that their config is still the one they started with.
    """

    def sweep(self, arguments: list[str]):
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        every_job = [job for batch in self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]),
                                                            self.max_batch_size) for job in batch]
        self._plan = {tuple(job): self._plan_job(job) for job in every_job}
        skipped = sum(plan is None for plan in self._plan.values())
        if skipped:
            log.info("skipping %d finished run(s) of %d", skipped, len(every_job))
        return super().sweep(arguments)

    def _plan_job(self, overrides: list[str]) -> list[str] | None:
        """The overrides to launch the job with, or None to skip it."""
        from clrelu.errors import ConfigError
        from clrelu.guard import config_difference, run_state

        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        HydraConfig.instance().set_config(config)
        folder = Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)
        state = run_state(folder)
        if state == "empty":
            return list(overrides)
        if config.get("skip_finished") is not True:
            raise ConfigError(f"hydra.sweep.dir={config.hydra.sweep.dir}: {folder.name} already holds a run; add "
                              "skip_finished=true to skip the finished runs and resume the others, "
                              "or choose another folder")
        if state == "finished":
            return None
        difference = config_difference(folder, config)
        if difference:
            raise ConfigError(f"skip_finished=true: cannot resume {folder}: {difference}")
        return [*overrides, "resume=true"]

    def get_job_batch(self):
        return [plan for plan in (self._plan[tuple(job)] for job in super().get_job_batch()) if plan is not None]
