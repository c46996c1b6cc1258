"""`logger=mlflow`: an MLflow run per clrelu run, in a local file store (`mlruns/`) or at a tracking URI."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd

from clrelu.extras import import_extra
from clrelu.loggers.base import Logger
from clrelu.rundir import files

log = logging.getLogger(__name__)

STATUSES = {"finished": "FINISHED", "failed": "FAILED"}  # anything else: KILLED


def flat(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as {"model.hidden": "[400]"}: MLflow parameters are text."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = "null" if value is None else str(value)
    return out


def as_tracking_uri(where: str) -> str:
    """A tracking URI as MLflow takes it: a folder (relative to the working directory) becomes a file store URI."""
    if "://" in where or where.startswith(("databricks", "sqlite:")):
        return where
    return Path(where).expanduser().resolve().as_uri()


class MLflowLogger(Logger):
    """The composed config as parameters (dotted keys) and as config.yaml, the metrics `online/...`,
    `plasticity/<layer>/...` and `summary/...` with the task as the step, and accuracy.csv and forgetting.csv as
    artifacts, in experiment `experiment` of the tracking store `tracking_uri` (a folder: a local file store,
    for which MLflow 3 needs MLFLOW_ALLOW_FILE_STORE=true, set here; or any URI, e.g. sqlite:///mlflow.db or
    http://host:5000). The MLflow run is named after the run folder, with its path in the tag clrelu.run_dir."""

    def __init__(self, tracking_uri: str = "mlruns", experiment: str = "clrelu"):
        super().__init__()
        self.mlflow = import_extra("mlflow", "mlflow", "logger=mlflow")
        self.uri, self.experiment = as_tracking_uri(tracking_uri), experiment
        self.client = self.run_id = None

    def open(self, folder: Path, config: dict) -> None:
        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlruns/, as the config asks
        from mlflow.entities import Param

        self.client = self.mlflow.tracking.MlflowClient(self.uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment = found.experiment_id if found else self.client.create_experiment(self.experiment)
        run = self.client.create_run(experiment, run_name=folder.name, tags={"clrelu.run_dir": str(folder)})
        self.run_id = run.info.run_id
        params = [Param(key, value[:6000]) for key, value in flat(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        self.client.log_dict(self.run_id, config, "config.yaml")
        log.info("MLflow run %s (%s) in experiment %s at %s", self.run_id, folder.name, self.experiment, self.uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, value, now, step) for key, value in metrics.items()]
        for start in range(0, len(entries), 1000):  # MLflow takes at most 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=entries[start:start + 1000])

    def log_matrix(self, folder: Path, matrix: pd.DataFrame) -> None:
        for name in ("accuracy.csv", "forgetting.csv"):
            if files.kind(folder, name) == "file":  # a regular file, never a link (rundir/files.py)
                self.client.log_artifact(self.run_id, str(folder / name))

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, STATUSES.get(status, "KILLED"))
