"""Print the README's split MNIST table: final average accuracy (%) per strategy and scenario, mean ± std
over seeds, beside what Hsu et al. (2018, Table 2) report on full MNIST.

    python scripts/strategy_table.py outputs/sweeps/hsu_strategies outputs/sweeps/hsu_joint
"""

import sys

import clrelu.results

SCENARIOS = ("task", "domain", "class")
# Hsu, Liu, Ramasamy & Kira (2018), Table 2: split MNIST, task / domain / class, full training set.
HSU = {
    "naive": ("SGD", (97.98, 63.20, 19.46)),
    "ewc": ("EWC", (97.70, 58.85, 19.80)),
    "online_ewc": ("Online EWC", (98.04, 57.33, 19.77)),
    "si": ("SI", (98.56, 64.76, 19.67)),
    "lwf": ("LwF", (99.60, 71.02, 24.17)),
    "replay": ("", ()),
    "joint": ("Offline", (99.52, 98.59, 97.53)),
}


def main(paths: list[str]) -> None:
    runs = clrelu.results.load(*paths)
    runs = runs[runs.status == "finished"]
    runs = runs.assign(method=runs.strategy.where(runs.regime != "joint", "joint"))
    stats = runs.groupby(["method", "scenario"]).avg_accuracy.agg(["mean", "std", "count"])
    print("| method | " + " | ".join(SCENARIOS) + " | seeds | Hsu et al. (full MNIST) |")
    print("| --- | " + " | ".join("---" for _ in SCENARIOS) + " | --- | --- |")
    for method, (name, published) in HSU.items():
        cells = [f"{100 * stats.loc[(method, s), 'mean']:.2f} ± {100 * stats.loc[(method, s), 'std']:.2f}"
                 for s in SCENARIOS]
        seeds = int(stats.loc[method, "count"].min())
        hsu = f"{name}: {' / '.join(f'{v:.2f}' for v in published)}" if published else "not in that table"
        print(f"| {method} | " + " | ".join(cells) + f" | {seeds} | {hsu} |")


if __name__ == "__main__":
    main(sys.argv[1:])
