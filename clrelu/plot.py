"""`clrelu plot`: a run's accuracy matrix and per-task curves, or a sweep's average-accuracy curves, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clrelu import results
from clrelu.compare import group_runs, load_runs
from clrelu.errors import ClreluError, ConfigError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ClreluError("clrelu plot needs matplotlib: pip install 'clrelu[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seen_accuracy(R: pd.DataFrame) -> pd.Series:
    """After each task i, the mean accuracy on the tasks learned so far (0..i; all of them for a joint run)."""
    return pd.Series({i: R.loc[i, [j for j in R.columns if j <= i]].mean() for i in R.index})


def run_figure(run: Path):
    """Heatmap of the accuracy matrix, and the accuracy on every task from initialisation to the end."""
    plt = _pyplot()
    R = results.read_matrix(run / results.ACCURACY)
    evals = pd.read_csv(run / results.EVALS)
    summary = pd.read_csv(run / results.SUMMARY).iloc[0]
    T = R.shape[1]
    fig, (heat, curves) = plt.subplots(1, 2, figsize=(5 + 0.9 * T, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    values = R.to_numpy(dtype=float)
    image = heat.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            heat.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if value > 0.6 else "white")
    heat.set_xticks(range(T), [str(j) for j in R.columns])
    heat.set_yticks(range(len(R)), [str(i) for i in R.index])
    heat.set_xlabel("evaluated task")
    heat.set_ylabel("after training task")
    heat.set_title("accuracy matrix R")
    fig.colorbar(image, ax=heat, fraction=0.046)
    for task, rows in evals.groupby("eval_task"):
        curves.plot(rows.after_task, rows.accuracy, marker="o", markersize=3, label=f"task {task}")
    seen = seen_accuracy(R)
    curves.plot(seen.index, seen.values, "k--", linewidth=2, label="seen tasks")
    curves.set_xticks([-1, *R.index], ["init", *[str(i) for i in R.index]])
    curves.set_xlabel("after training task")
    curves.set_ylabel("test accuracy")
    curves.set_ylim(-0.02, 1.02)
    curves.legend(fontsize=7, loc="lower left")
    curves.set_title("accuracy per task")
    fig.suptitle(f"{summary.model} on {summary.stream} ({summary.scenario}, seed {summary.seed}): "
                 f"ACC {summary.avg_accuracy:.3f}, forgetting {summary.avg_forgetting:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figure(folder: Path, by: list[str] | None = None):
    """Each group's mean accuracy on the tasks seen so far, after every task, with a band of one std over seeds."""
    plt = _pyplot()
    frame = load_runs([str(folder)])
    finished = frame[frame.status == "finished"]
    if finished.empty:
        raise ClreluError(f"{folder}: none of its runs has finished, so there is nothing to plot")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    lowest, tasks = 1.0, set()
    for label, group in group_runs(finished, by)[0]:
        curves = pd.DataFrame([seen_accuracy(results.read_matrix(Path(d) / results.ACCURACY)) for d in group.run_dir])
        mean, std = curves.mean(), curves.std().fillna(0)
        ax.plot(mean.index, mean.values, marker="o", markersize=3, label=f"{label} (n={len(curves)})")
        ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
        lowest, tasks = min(lowest, float((mean - std).min())), tasks | set(mean.index)
    ax.set_xticks(sorted(tasks))
    ax.set_xlabel("after training task")
    ax.set_ylabel("mean accuracy on the tasks seen so far")
    ax.set_ylim(max(0.0, lowest - 0.05), 1.01)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{folder.name}: {len(finished)} finished runs")
    fig.tight_layout()
    return fig


def plot(path: str, out: str | None = None) -> Path:
    """Plot a run folder or a sweep folder into `out` (default: plot.png inside it)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{path}: no such folder")
    target = Path(out) if out else folder / "plot.png"
    fig = run_figure(folder) if (folder / results.SUMMARY).is_file() else sweep_figure(folder)
    fig.savefig(target, dpi=110)
    _pyplot().close(fig)
    return target
