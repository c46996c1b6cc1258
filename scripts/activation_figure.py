"""The table and figure of docs/results/relu-forgetting.md ("Does ReLU help against forgetting?"), from the activation sweep.

    clrelu run -m experiment=activation_sweep hydra.sweep.dir=outputs/sweeps/activation_sweep
    python scripts/activation_figure.py outputs/sweeps/activation_sweep docs/results/activation_sweep.png

Per group (stream, scenario, model, activation), mean ± std over seeds of: average forgetting, mean sparsity
(share of exactly-zero hidden outputs after the last task), the dead fraction after the last task (units zero on
every test sample of every task, mean over layers), mean task overlap, average accuracy and train seconds.
"""

import math
import sys
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from clrelu.report.load import load

COLUMNS = ["avg_forgetting", "mean_sparsity", "dead_fraction", "mean_overlap", "avg_accuracy", "train_seconds"]
DIGITS = {"train_seconds": 1}
KEYS = ["stream", "scenario", "model", "model.activation"]
# the sweep's activations and models keep their colours and markers from figure to figure; any other gets the next
# unused one, so that a sweep over other activations or models draws too
COLOURS = {"relu": "tab:red", "leaky_relu": "tab:orange", "gelu": "tab:blue", "tanh": "tab:green",
           "swish": "tab:purple", "softplus": "tab:brown"}
MARKERS = {"mlp": "o", "sparse": "s"}
SPARE_COLOURS = ["tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black", "gold", "navy", "lime"]
SPARE_MARKERS = ["^", "D", "v", "P", "X", "*", "<", ">"]


def styles(names, known: dict, spare: list) -> dict:
    """A style for each name: its own from `known`, else the next of `spare` (cycled) in sorted order."""
    others = sorted(n for n in set(names) if n not in known)
    return {**known, **{name: spare[i % len(spare)] for i, name in enumerate(others)}}


def seeds_said(counts) -> str:
    """'3 seeds', or '1-3 seeds' when the groups have different numbers of seeds."""
    low, high = int(counts.min()), int(counts.max())
    return f"{high} seed{'s' if high > 1 else ''}" if low == high else f"{low}-{high} seeds"


def final_dead_fraction(run_dir: str) -> float:
    """The dead fraction after the last task: the row of the last evaluated task (which counts every task of the
    pass), averaged over the hidden layers."""
    rows = pd.read_csv(Path(run_dir) / "activations.csv")
    rows = rows[rows.after_task == rows.after_task.max()]
    return rows[rows.eval_task == rows.eval_task.max()].dead_fraction.mean()


def main(sweep: str, figure_path: str) -> None:
    runs = load(sweep)
    runs = runs[runs.status == "finished"].copy()
    runs["dead_fraction"] = [final_dead_fraction(d) for d in runs.run_dir]
    stats = runs.groupby(KEYS)[COLUMNS].agg(["mean", "std"])
    seeds = runs.groupby(KEYS).seed.nunique()
    print("| stream | scenario | model | activation | forgetting | sparsity | dead | overlap | accuracy "
          "| train s | seeds |")
    print("| --- " * 11 + "|")
    for key, row in stats.iterrows():
        cells = [f"{row[(c, 'mean')]:.{DIGITS.get(c, 3)}f} ± {row[(c, 'std')]:.{DIGITS.get(c, 3)}f}" for c in COLUMNS]
        print("| " + " | ".join(str(k) for k in key) + " | " + " | ".join(cells) + f" | {seeds[key]} |")

    table = stats.reset_index()
    colours = styles(table[("model.activation", "")], COLOURS, SPARE_COLOURS)
    markers = styles(table[("model", "")], MARKERS, SPARE_MARKERS)
    panels = list(table.groupby(["stream", "scenario"]))  # one panel per stream and scenario
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.25 * rows), squeeze=False)
    for ax, ((stream, scenario), group) in zip(axes.flat, panels):
        for _, row in group.iterrows():
            model, activation = row[("model", "")], row[("model.activation", "")]
            ax.errorbar(row[("mean_sparsity", "mean")], row[("avg_forgetting", "mean")],
                        xerr=row[("mean_sparsity", "std")], yerr=row[("avg_forgetting", "std")],
                        fmt=markers[model], color=colours[activation], capsize=2, markersize=6,
                        label=f"{model}, {activation}")
        ax.set_title(f"{stream}, {scenario} scenario", fontsize=10)
        ax.set_xlabel("mean sparsity of the hidden layers (share of outputs exactly 0)")
        ax.set_ylabel("average forgetting")
        ax.set_xlim(-0.03, 1)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    legend = {}  # every model and activation drawn, in any panel
    for ax in axes.flat[:len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    axes[0][-1].legend(legend.values(), legend.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Forgetting against hidden-layer sparsity, mean ± std over {seeds_said(seeds)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(figure_path, dpi=100)


if __name__ == "__main__":
    main(*sys.argv[1:3])
