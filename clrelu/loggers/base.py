"""What a run tells an experiment tracker (config group `logger`), and `logger=none`, which tells nothing.

The CSV files stay the truth: a tracker receives the rows as they are written to them (online.csv and
plasticity.csv with the task as the step, summary.csv's numbers after each task) and, at the end, the accuracy
matrix. The run calls only `written` and `finish`, knowing no tracker's name; a tracker that fails is switched
off with one warning, and the run goes on.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from clrelu.rundir.csvfiles import NUMERIC_COLUMNS, ONLINE, PLASTICITY

log = logging.getLogger(__name__)

SUMMARY_METRICS = (*NUMERIC_COLUMNS, "tasks_done")  # summary.csv's columns that are numbers


def task_metrics(appended: dict[str, tuple[list[str], list[list]]], summary: dict, step: int | None
                 ) -> dict[int, dict[str, float]]:
    """The metrics of rows just written, by step (task): `online/<column>` from online.csv, `plasticity/<layer>/
    <measure>` from plasticity.csv, and `summary/<column>` (its numbers that are defined) at `step`, the latest
    row of the accuracy matrix (None: none yet)."""
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for name, (header, rows) in appended.items():
        for row in rows:
            if name == ONLINE:
                by_step[int(row[0])].update({f"online/{h}": float(v) for h, v in zip(header[1:], row[1:])})
            elif name == PLASTICITY:
                by_step[int(row[0])].update({f"plasticity/{row[1]}/{h}": float(v)
                                             for h, v in zip(header[2:], row[2:])})
    if step is not None:
        by_step[step].update({f"summary/{k}": float(v) for k, v in summary.items()
                              if k in SUMMARY_METRICS and v is not None and not math.isnan(float(v))})
    return {s: {k: v for k, v in metrics.items() if not math.isnan(v)} for s, metrics in sorted(by_step.items())}


class Logger:
    """`logger=none`: a run reports to no tracker. Trackers override `open`, `log_metrics`, `log_matrix` and
    `close`; the run calls `written` after every write of its CSV files and `finish` when it ends."""

    def __init__(self):
        self.opened = False
        self.broken = False

    # --- what a tracker implements ---------------------------------------------------------------------

    def open(self, folder: Path, config: dict) -> None:
        """Start (or continue) the tracker's run for the run folder `folder`, logging its composed `config`."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log metrics of one step (a task)."""

    def log_matrix(self, folder: Path, matrix: pd.DataFrame) -> None:
        """Log the accuracy matrix (rows: after_task, columns: task), whose files are in `folder`."""

    def close(self, status: str) -> None:
        """End the tracker's run with the run's status (finished, failed, ...)."""

    # --- what the run calls --------------------------------------------------------------------------

    def written(self, record, appended: dict[str, tuple[list[str], list[list]]]) -> None:
        """The run record `record` has just appended `appended` (file name -> (header, rows)) to its files and
        rewritten summary.csv: log the metrics of those rows. The tracker opens at the first write, when the
        run folder already holds a summary.csv."""
        if type(self).log_metrics is Logger.log_metrics:  # logger=none
            return
        self._guarded(lambda: self._written(record, appended))

    def _written(self, record, appended) -> None:
        if not self.opened:
            self.open(Path(record.folder), record.config)
            self.opened = True
        for step, metrics in task_metrics(appended, record.summary(), record.rows[-1] if record.rows else None).items():
            if metrics:
                self.log_metrics(metrics, step)

    def finish(self, record) -> None:
        """The run has ended (its status is in `record`): log the accuracy matrix and close."""
        if not self.opened or self.broken:
            return

        def end() -> None:
            rows = list(record.rows)
            matrix = pd.DataFrame(record.R[rows] if rows else np.empty((0, record.n_tasks)), index=rows,
                                  columns=range(record.n_tasks)).rename_axis("after_task")
            self.log_matrix(Path(record.folder), matrix)
            self.close(record.status)

        self._guarded(end)

    def _guarded(self, action) -> None:
        if self.broken:
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 (a tracker's failure must not end a run: the CSVs are the truth)
            self.broken = True
            text = str(exc).strip().splitlines()
            log.warning("%s stopped logging (%s: %s); the run goes on, and its CSV files hold every result",
                        type(self).__name__, type(exc).__name__, text[0] if text else "")
