"""`clrelu plot`: a run's accuracy matrix, per-task curves and plasticity measures, or a sweep's curves, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clrelu.errors import ClreluError, ConfigError
from clrelu.extras import import_extra
from clrelu.report.compare import group_runs, load_runs
from clrelu.report.load import status
from clrelu.report.output import checked_output
from clrelu.rundir import csvfiles as results
from clrelu.rundir import files

MANY_TASKS = 20  # beyond this many tasks a figure shows no per-cell numbers, per-task curves, markers or task ticks
POINTS = 100  # a sweep's curve over more tasks than this is drawn as the means of POINTS equal bins of tasks
PLASTICITY_MEASURES = ("dead_fraction", "dormant_fraction", "effective_rank", "srank", "weight_magnitude")
MARK = "clrelu plot"  # written into every figure whose format holds metadata, so that clrelu knows it wrote it
MARKS = {"png": ({"Software": MARK}, b"tEXtSoftware\x00" + MARK.encode()),
         "pdf": ({"Creator": MARK}, b"/Creator (" + MARK.encode() + b")"),
         "svg": ({"Creator": MARK}, b"<dc:title>" + MARK.encode() + b"</dc:title>"),
         "eps": ({"Creator": MARK}, b"%%Creator: " + MARK.encode() + b"\n"),
         "ps": ({"Creator": MARK}, b"%%Creator: " + MARK.encode() + b"\n")}


def _pyplot():
    matplotlib = import_extra("matplotlib", "plot", "clrelu plot", ClreluError)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seen_accuracy(R: pd.DataFrame) -> pd.Series:
    """After each task i, the mean accuracy on the tasks learned so far (0..i; all of them for a joint run), where
    every one of them was evaluated after it; NaN where some were not (eval.every, eval.tasks=current), so that a
    mean over fewer tasks is never drawn as this one."""
    means = {}
    for i in R.index:
        seen = R.loc[i, [j for j in R.columns if j <= i]]
        means[i] = seen.mean() if len(seen) and seen.notna().all() else np.nan
    return pd.Series(means, dtype=float)


def learned_accuracy(R: pd.DataFrame) -> pd.Series:
    """After each task i, the accuracy on task i itself, R[i, i], where it was evaluated (the one task that
    eval.tasks=current evaluates)."""
    return pd.Series({i: R.loc[i, i] for i in R.index if i in R.columns}, dtype=float).dropna()


def only_learned(R: pd.DataFrame) -> bool:
    """Whether some rows of R measured the task just learned but not every task seen so far (eval.tasks=current):
    their R[i, i] are then drawn on their own, labelled as what they are."""
    return not learned_accuracy(R).index.difference(seen_accuracy(R).dropna().index).empty


def diagnostics_over_tasks(run: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Per layer, the mean sparsity and the mean task overlap after each task (None without diagnostics)."""
    if files.kind(run, results.ACTIVATIONS) is None:
        return None
    activations = results.read_csv(run, results.ACTIVATIONS, numeric=results.ACTIVATION_COLUMNS[3:])
    overlap = results.read_csv(run, results.OVERLAP, numeric=("jaccard",))
    try:
        sparsity = activations.groupby(["after_task", "layer"]).sparsity.mean().unstack("layer")
        jaccard = overlap.groupby(["after_task", "layer"]).jaccard.mean().unstack("layer") if len(overlap) else None
    except (KeyError, AttributeError, TypeError) as exc:
        raise ConfigError(f"{run}: damaged diagnostics ({results.ACTIVATIONS} or {results.OVERLAP}: "
                          f"{type(exc).__name__} {exc})") from None
    return sparsity, jaccard


def plasticity_over_tasks(run: Path) -> dict[str, pd.DataFrame] | None:
    """Per plasticity measure, a frame of its value after each task (rows) in each hidden layer (columns);
    None when the run has no plasticity.csv."""
    if files.kind(run, results.PLASTICITY) is None:
        return None
    frame = results.read_csv(run, results.PLASTICITY, numeric=PLASTICITY_MEASURES)
    try:
        return {measure: frame.pivot(index="task", columns="layer", values=measure) for measure in PLASTICITY_MEASURES}
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{run / results.PLASTICITY}: damaged ({type(exc).__name__} {exc})") from None


def online_accuracy(run: Path) -> pd.Series:
    """The online accuracy of each task, from online.csv."""
    frame = results.read_csv(run, results.ONLINE, numeric=("task", "online_accuracy"))
    if not {"task", "online_accuracy"} <= set(frame.columns):
        raise ConfigError(f"{run / results.ONLINE}: damaged (it lacks the columns task, online_accuracy)")
    return frame.set_index("task").online_accuracy


def _draw_matrix(fig, heat, R: pd.DataFrame) -> None:
    T = R.shape[1]
    values = R.to_numpy(dtype=float)
    image = heat.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto",
                        interpolation="nearest")
    if T <= MANY_TASKS:
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


DEAD, DORMANT = {"linestyle": "-", "marker": "s"}, {"linestyle": ":", "marker": "o", "markerfacecolor": "none"}


def _over_tasks(ax, frame: pd.DataFrame | None, ylabel: str, title: str, ticks: list[int], bounded: bool = True,
                style: dict | None = None, suffix: str = "", xlabel: str = "after training task") -> None:
    """Curves over tasks, one per column of `frame` (a layer, labelled with `suffix`, in the colour of its
    column), drawn with `style` (line style and marker), on a 0-1 scale unless not `bounded`, over the tasks
    `ticks`. A curve joins the tasks it has a value for (the evaluation schedule can skip some), with a marker
    on each when there are few."""
    style = {"linestyle": "-", "marker": "o", **(style or {})}
    if frame is not None:
        for k, layer in enumerate(frame.columns):
            curve = frame[layer].dropna()
            ax.plot(curve.index, curve.values, color=f"C{k}", markersize=3, label=f"{layer}{suffix}",
                    **{**style, "marker": style["marker"] if len(curve) <= MANY_TASKS else None})
        ax.legend(fontsize=7)
    if len(ticks) <= MANY_TASKS + 1:
        ax.set_xticks(ticks, ["init" if i < 0 else str(i) for i in ticks])
    ax.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if bounded:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)


def _plasticity_panels(axes, run: Path, measures: dict[str, pd.DataFrame], joint: bool) -> None:
    """Online accuracy (when online.csv exists), dead and dormant fractions, effective rank and srank, and weight
    magnitude of every hidden layer over the tasks, on four axes. Each panel spans the tasks it has values for: a
    joint run probes every task once, after learning them all, and has one online accuracy."""
    online_ax, units_ax, rank_ax, weight_ax = axes
    if files.kind(run, results.ONLINE) is not None:
        online = online_accuracy(run)
        label = "after training all tasks at once" if joint else "after training task"
        _over_tasks(online_ax, online.to_frame("online accuracy"), "accuracy on each batch before its update",
                    "online accuracy", sorted(online.index), xlabel=label)
    else:
        online_ax.set_axis_off()
    ticks = sorted(measures["dead_fraction"].index)
    where = {"xlabel": "task probed, after training all tasks at once" if joint else "after training task"}
    _over_tasks(units_ax, measures["dead_fraction"], "fraction of units", "dead and dormant units", ticks,
                style=DEAD, suffix=" dead", **where)
    _over_tasks(units_ax, measures["dormant_fraction"], "fraction of units", "dead and dormant units", ticks,
                style=DORMANT, suffix=" dormant", **where)
    _over_tasks(rank_ax, measures["effective_rank"], "rank", "rank of the hidden representation", ticks,
                bounded=False, style=DEAD, suffix=" effective rank", **where)
    _over_tasks(rank_ax, measures["srank"], "rank", "rank of the hidden representation", ticks, bounded=False,
                style=DORMANT, suffix=" srank", **where)
    _over_tasks(weight_ax, measures["weight_magnitude"], "mean |w| of the incoming weights", "weight magnitude",
                ticks, bounded=False, **where)


def run_figure(run: Path):
    """Heatmap of the accuracy matrix and the accuracy on every task over training; with diagnostics, also the
    hidden layers' sparsity and task overlap after every task; with plasticity.csv, the online accuracy and the
    plasticity measures of every hidden layer over the tasks."""
    plt = _pyplot()
    recorded = results.read_summary(run)
    summary = results.read_csv(run, results.SUMMARY, numeric=results.NUMERIC_COLUMNS).iloc[0]
    R = results.read_matrix(run, results.ACCURACY)
    evals = results.read_csv(run, results.EVALS, numeric=("after_task", "eval_task", "accuracy"))
    if not {"eval_task", "after_task", "accuracy"} <= set(evals.columns):
        raise ConfigError(f"{run / results.EVALS}: damaged (it lacks the columns after_task, eval_task, accuracy)")
    diagnostics = diagnostics_over_tasks(run)
    measures = plasticity_over_tasks(run)
    rows = 1 + (diagnostics is not None) + 2 * (measures is not None)
    T = R.shape[1]
    fig, axes = plt.subplots(rows, 2, figsize=(min(5 + 0.9 * T, 16), 4.2 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.2]}, layout="constrained")
    (heat, curves) = axes[0]
    _draw_matrix(fig, heat, R)
    if T <= MANY_TASKS:
        for task, task_rows in evals.groupby("eval_task"):
            curves.plot(task_rows.after_task, task_rows.accuracy, marker="o", markersize=3, label=f"task {task}")
    seen = seen_accuracy(R).dropna()  # the rows that evaluated every task seen so far
    curves.plot(seen.index, seen.values, "k--", linewidth=2, marker="o" if len(seen) <= MANY_TASKS else None,
                markersize=3, label="mean over the tasks seen so far")
    if only_learned(R):  # eval.tasks=current: the task just learned, on its own
        learned = learned_accuracy(R)
        curves.plot(learned.index, learned.values, color="0.4", linestyle=":", linewidth=1.5,
                    marker="x" if len(learned) <= MANY_TASKS else None, markersize=4,
                    label="the task just learned (R[i, i])")
    ticks = [-1, *R.index]
    _over_tasks(curves, None, "test accuracy", "accuracy per task", ticks)
    curves.legend(fontsize=7, loc="lower left")
    row = 1
    if diagnostics is not None:
        sparsity, jaccard = diagnostics
        _over_tasks(axes[row][0], sparsity, "mean sparsity over the tasks", "hidden-layer sparsity", ticks)
        _over_tasks(axes[row][1], jaccard, "mean Jaccard of task-active units", "task overlap", ticks)
        row += 1
    if measures is not None:
        _plasticity_panels([*axes[row], *axes[row + 1]], run, measures, summary.get("regime") == "joint")
    state = status(run, recorded["status"])
    progress = "" if state == "finished" else f" [{state} after {summary.tasks_done} of {summary.n_tasks} tasks]"
    fig.suptitle(f"{summary.model} on {summary.stream} ({summary.scenario}, seed {summary.seed}): "
                 f"ACC {summary.avg_accuracy:.3f}, forgetting {summary.avg_forgetting:.3f}{progress}", fontsize=10)
    return fig


def _run_curves(run: Path) -> dict[str, pd.Series]:
    """A run's curves over its tasks: accuracy on the tasks seen so far (where all were evaluated) and on the
    task just learned; with diagnostics the mean sparsity and
    task overlap of its hidden layers; its online accuracy; and the mean over its hidden layers of the dead and
    dormant fractions and of the effective rank."""
    R = results.read_matrix(run, results.ACCURACY)
    curves = {"accuracy": seen_accuracy(R), "learned": learned_accuracy(R)}
    diagnostics = diagnostics_over_tasks(run)
    if diagnostics is not None:
        sparsity, jaccard = diagnostics
        curves["sparsity"] = sparsity.mean(axis=1).drop(-1, errors="ignore")
        if jaccard is not None:
            curves["overlap"] = jaccard.mean(axis=1).drop(-1, errors="ignore")
    if files.kind(run, results.ONLINE) is not None:
        curves["online"] = online_accuracy(run)
    measures = plasticity_over_tasks(run)
    if measures is not None:
        for panel, measure in (("dead", "dead_fraction"), ("dormant", "dormant_fraction"),
                               ("erank", "effective_rank")):
            curves[panel] = measures[measure].mean(axis=1)
    return curves


def _curves_or_none(run: Path, left_out: list[str]) -> dict[str, pd.Series] | None:
    """A run's curves; a run whose files are damaged is left out, with a line naming them in `left_out`."""
    try:
        return _run_curves(run)
    except ClreluError as exc:
        left_out.append(str(exc))
    except Exception as exc:  # noqa: BLE001 (a file with the right columns and senseless values)
        left_out.append(f"{run}: cannot be plotted ({type(exc).__name__}: {exc})")
    return None


SWEEP_PANELS = {"accuracy": "mean accuracy on the tasks seen so far",
                "learned": "accuracy on the task just learned (R[i, i])", "sparsity": "mean hidden-layer sparsity",
                "overlap": "mean Jaccard of task-active units", "online": "online accuracy",
                "dead": "dead units (mean over layers)", "dormant": "dormant units (mean over layers)",
                "erank": "effective rank (mean over layers)"}
UNBOUNDED = ("erank",)  # panels not on a 0-1 scale


def binned(curve: pd.Series, points: int = POINTS) -> pd.Series:
    """A curve over the tasks it has values for (NaN: not measured) as the means of `points` equal bins of
    consecutive ones, indexed by each bin's mean task (the curve itself when it has at most `points` values)."""
    curve = curve.dropna()
    if len(curve) <= points:
        return curve
    bins = np.arange(len(curve)) * points // len(curve)
    return curve.groupby(bins).mean().set_axis(pd.Series(curve.index).groupby(bins).mean())


def sweep_figure(folder: Path, by: list[str] | None = None, left_out: list[str] | None = None):
    """Each group's curves over the tasks (accuracy on the tasks seen so far; with diagnostics the mean sparsity
    and task overlap; with plasticity measures the online accuracy, dead and dormant fractions and effective
    rank), with a band of one std over seeds; a curve over more than POINTS tasks is binned. Damaged runs are
    left out, each with a line in `left_out`."""
    plt = _pyplot()
    left_out = [] if left_out is None else left_out
    frame = load_runs([str(folder)], left_out)
    finished = frame[frame.status == "finished"]
    if finished.empty:
        raise ClreluError(f"{folder}: none of its runs has finished, so there is nothing to plot")
    groups = []
    for label, group in group_runs(finished, by)[0]:
        runs = [c for c in (_curves_or_none(Path(d), left_out) for d in group.run_dir) if c is not None]
        if runs:
            groups.append((label, runs))
    if not groups:
        raise ClreluError(f"{folder}: none of its finished runs can be plotted")
    panels = [p for p in SWEEP_PANELS if all(p in c for _, runs in groups for c in runs)]
    if not any(not c["learned"].index.difference(c["accuracy"].dropna().index).empty for _, runs in groups
               for c in runs):
        panels.remove("learned")  # every row that measured the task just learned measured every seen task too
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns + 3, 4.5 * rows), squeeze=False,
                             layout="constrained")
    flat = [ax for row in axes for ax in row]
    # one colour per group: matplotlib's cycle repeats after 10, so more groups take tab20's 20 colours
    colours = [plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")(i % 20) for i in range(len(groups))]
    for ax, panel in zip(flat, panels):
        lowest, tasks = 1.0, set()
        for colour, (label, runs) in zip(colours, groups):
            curves = pd.DataFrame([binned(c[panel]) for c in runs])
            mean = curves.mean().dropna()  # tasks after which nothing was evaluated (eval.every) have no point
            std = curves.std().fillna(0)[mean.index]
            few = len(mean) <= MANY_TASKS
            ax.plot(mean.index, mean.values, marker="o" if few else None, markersize=3, color=colour,
                    label=f"{label} (n={len(curves)})")
            ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2, color=colour)
            lowest, tasks = min(lowest, float((mean - std).min())), tasks | set(mean.index)
        if len(tasks) <= MANY_TASKS:
            ax.set_xticks(sorted(tasks))
        ax.set_xlabel("after training task")
        ax.set_title(SWEEP_PANELS[panel], fontsize=10)
        if panel not in UNBOUNDED:
            ax.set_ylim(max(0.0, lowest - 0.05), 1.01)
    for ax in flat[len(panels):]:
        ax.set_axis_off()
    fig.legend(*flat[0].get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    fig.suptitle(f"{folder.name}: {len(finished)} finished runs", fontsize=10)
    return fig


def output_path(folder: Path, out: str | None) -> tuple[Path, str]:
    """The file to write (PNG when `out` has no extension; by default <folder name>.png in the working directory)
    and its format; an unsupported extension, a missing folder, or a place plot may not write is a ConfigError
    (report/output.py)."""
    target = Path(out) if out else Path(f"{folder.resolve().name}.png")
    if not target.suffix:
        target = target.with_name(f"{target.name}.png")
    fmt = target.suffix[1:].lower()
    _pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    supported = sorted(FigureCanvasAgg.get_supported_filetypes())
    if fmt not in supported:
        raise ConfigError(f"--out {out}: cannot write the format '{fmt}'; use one of {', '.join(supported)}")
    needle = MARKS.get(fmt, ({}, None))[1]
    target = checked_output(str(target) if out else None, str(target), [folder],
                            lambda content: needle is not None and needle in content, "a figure")
    return target, fmt


def plot(path: str, out: str | None = None, left_out: list[str] | None = None) -> Path:
    """Plot a run folder or a sweep folder into `out` (default: <folder name>.png in the working directory); return
    the path written. Runs of a sweep that cannot be read are left out, each with a line in `left_out`."""
    folder = Path(path)
    if files.kind(folder) != "folder":
        raise ConfigError(f"{path}: no such folder")
    target, fmt = output_path(folder, out)
    is_run = files.kind(folder, results.SUMMARY) is not None
    fig = run_figure(folder) if is_run else sweep_figure(folder, left_out=left_out)
    metadata = MARKS.get(fmt, ({}, None))[0] or None
    try:
        files.write_atomically(target.parent, target.name,
                               lambda handle: fig.savefig(handle, dpi=110, format=fmt, metadata=metadata))
    finally:
        _pyplot().close(fig)
    return target
