"""`logger=wandb`: a Weights & Biases run per clrelu run, offline by default (`wandb sync` uploads it later)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from clrelu import checks
from clrelu.console import shown
from clrelu.extras import import_extra
from clrelu.loggers.base import Logger
from clrelu.rundir import files

log = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")


class WandbLogger(Logger):
    """The composed config as the run's config, the metrics `online/...`, `plasticity/<layer>/...` and
    `summary/...` with the task as the step, and the accuracy matrix as a table and as an artifact holding
    accuracy.csv and forgetting.csv. Offline (`mode: offline`), the run is written under `dir/wandb/`
    (default: the working directory) for `wandb sync`; online it needs `wandb login`."""

    def __init__(self, mode: str = "offline", project: str = "clrelu", entity: str | None = None,
                 dir: str | None = None):
        super().__init__()
        self.wandb = import_extra("wandb", "wandb", "logger=wandb")
        self.mode = checks.choice("logger.mode", mode, MODES)
        self.project, self.entity, self.dir = project, entity, dir
        self.run = None

    def open(self, folder: Path, config: dict) -> None:
        settings = self.wandb.Settings(console="off", silent=True, x_disable_stats=True)
        self.run = self.wandb.init(mode=self.mode, project=self.project, entity=self.entity, dir=self.dir,
                                   name=folder.name, config=config, notes=str(folder), settings=settings,
                                   reinit="create_new")
        if self.mode == "offline":
            log.info("W&B offline run in %s (wandb sync %s uploads it)", shown(Path(self.run.dir).parent),
                     shown(Path(self.run.dir).parent))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_matrix(self, folder: Path, matrix: pd.DataFrame) -> None:
        table = matrix.reset_index()
        table.columns = [str(c) for c in table.columns]
        self.run.log({"accuracy_matrix": self.wandb.Table(dataframe=table)}, step=int(matrix.index[-1]))
        name = re.sub(r"[^A-Za-z0-9._-]", "-", f"{folder.name}-matrices")  # the characters W&B takes in a name
        artifact = self.wandb.Artifact(name, type="matrices")
        for name in ("accuracy.csv", "forgetting.csv"):
            if files.kind(folder, name) == "file":  # a regular file, never a link (rundir/files.py)
                artifact.add_file(str(folder / name))
        self.run.log_artifact(artifact)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)
