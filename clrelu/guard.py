"""A Hydra callback that keeps a new run from writing into the folder of an earlier one."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from clrelu.errors import ConfigError, report


class RunFolderGuard(Callback):
    """Refuse a single run whose folder already holds a run's summary, before Hydra writes anything there.

    Hydra turns exceptions raised in callbacks into warnings, so the refusal is reported here and ends
    the process with SystemExit, which Hydra lets through.
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # as Hydra does next, so that ${hydra:...} in the dir resolves
        folder = Path(config.hydra.run.dir)
        if (folder / "summary.csv").is_file():
            error = ConfigError(f"hydra.run.dir={folder}: already holds a run; choose another folder")
            report(str(error))
            raise SystemExit(error.exit_code)
