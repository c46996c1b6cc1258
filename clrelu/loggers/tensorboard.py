"""`logger=tensorboard`: TensorBoard event files in the run folder (`tensorboard --logdir outputs`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import yaml

from clrelu.console import shown
from clrelu.extras import import_extra
from clrelu.loggers.base import Logger

log = logging.getLogger(__name__)


def markdown_table(matrix: pd.DataFrame) -> str:
    """The accuracy matrix as a Markdown table (TensorBoard's text dashboard renders it)."""
    head = "| after task | " + " | ".join(str(c) for c in matrix.columns) + " |"
    rule = "|---" * (len(matrix.columns) + 1) + "|"
    body = ["| " + " | ".join([str(i), *("" if pd.isna(v) else f"{v:.4f}" for v in row)]) + " |"
            for i, row in zip(matrix.index, matrix.to_numpy())]
    return "\n".join([head, rule, *body])


class TensorBoardLogger(Logger):
    """Scalars `online/...`, `plasticity/<layer>/...` and `summary/...` with the task as the step, the composed
    config as text, and the accuracy matrix as a text table and (with matplotlib) a heatmap image, in event
    files under `<run folder>/<subdir>`."""

    def __init__(self, subdir: str = "tensorboard"):
        super().__init__()
        self.module = import_extra("torch.utils.tensorboard", "tensorboard", "logger=tensorboard")
        import_extra("tensorboard", "tensorboard", "logger=tensorboard")
        self.subdir = subdir
        self.writer = None

    def open(self, folder: Path, config: dict) -> None:
        self.writer = self.module.SummaryWriter(log_dir=str(folder / self.subdir))
        log.info("TensorBoard event files in %s (tensorboard --logdir %s)", shown(folder / self.subdir), shown(folder))
        self.writer.add_text("config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def log_matrix(self, folder: Path, matrix: pd.DataFrame) -> None:
        step = int(matrix.index[-1]) if len(matrix) else 0
        self.writer.add_text("accuracy_matrix", markdown_table(matrix), step)
        try:
            from matplotlib.figure import Figure
        except ImportError:  # the heatmap needs the plot extra; the table is there anyway
            return
        figure = Figure(figsize=(1.5 + 0.5 * matrix.shape[1], 1 + 0.4 * max(len(matrix), 1)))
        ax = figure.add_subplot()
        image = ax.imshow(matrix.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xlabel("evaluated task")
        ax.set_ylabel("row of R (after task)")
        ax.set_yticks(range(len(matrix)), [str(i) for i in matrix.index])
        figure.colorbar(image, ax=ax)
        self.writer.add_figure("accuracy_matrix", figure, step)

    def close(self, status: str) -> None:
        self.writer.add_text("status", status, 0)
        self.writer.close()
