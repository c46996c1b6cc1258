"""The README's "Does ReLU help against forgetting?" table and figure, from the activation sweep.

    clrelu run -m experiment=activation_sweep hydra.sweep.dir=outputs/sweeps/activation_sweep
    python scripts/activation_figure.py outputs/sweeps/activation_sweep docs/activation_sweep.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import clrelu.results  # noqa: E402

COLUMNS = ["avg_forgetting", "mean_sparsity", "mean_overlap", "avg_accuracy"]
KEYS = ["stream", "scenario", "model", "model.activation"]
COLOURS = {"relu": "tab:red", "leaky_relu": "tab:orange", "gelu": "tab:blue", "tanh": "tab:green"}
MARKERS = {"mlp": "o", "sparse": "s"}


def main(sweep: str, figure_path: str) -> None:
    runs = clrelu.results.load(sweep)
    runs = runs[runs.status == "finished"]
    stats = runs.groupby(KEYS)[COLUMNS].agg(["mean", "std"])
    seeds = runs.groupby(KEYS).seed.nunique()
    print("| stream | scenario | model | activation | forgetting | sparsity | overlap | accuracy | seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, row in stats.iterrows():
        cells = [f"{row[(c, 'mean')]:.3f} ± {row[(c, 'std')]:.3f}" for c in COLUMNS]
        print("| " + " | ".join(str(k) for k in key) + " | " + " | ".join(cells) + f" | {seeds[key]} |")

    panels = stats.reset_index().groupby(["stream", "scenario"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    for ax, ((stream, scenario), group) in zip(axes.flat, panels):
        for _, row in group.iterrows():
            model, activation = row[("model", "")], row[("model.activation", "")]
            ax.errorbar(row[("mean_sparsity", "mean")], row[("avg_forgetting", "mean")],
                        xerr=row[("mean_sparsity", "std")], yerr=row[("avg_forgetting", "std")],
                        fmt=MARKERS[model], color=COLOURS[activation], capsize=2, markersize=6,
                        label=f"{model}, {activation}")
        ax.set_title(f"{stream}, {scenario} scenario", fontsize=10)
        ax.set_xlabel("mean sparsity of the hidden layers")
        ax.set_ylabel("average forgetting")
        ax.set_xlim(0, 1)
    axes[0][1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Forgetting against hidden-layer sparsity, mean ± std over 3 seeds "
                 "(relu and leaky_relu nearly coincide and hide each other)", fontsize=10)
    fig.tight_layout()
    fig.savefig(figure_path, dpi=100)


if __name__ == "__main__":
    main(*sys.argv[1:3])
