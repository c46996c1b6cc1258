"""Print a table of every strategy's defaults at full length: the final average accuracy of each run
(strategy x stream x scenario), or how it failed.

    clrelu run -m strategy=naive,ewc,... stream=split_mnist,permuted_mnist,split_fmnist,permuted_fmnist \\
        stream.scenario=task,domain,class threads=1 hydra.sweep.dir=outputs/sweeps/defaults
    python scripts/defaults_table.py outputs/sweeps/defaults
"""

import sys

from clrelu.report.load import load

STREAMS = ("split_mnist", "permuted_mnist", "split_fmnist", "permuted_fmnist")
SCENARIOS = ("task", "domain", "class")


def cell(run) -> str:
    if run.status == "finished":
        return f"{run.avg_accuracy:.3f}"
    return f"**{run.status}** after {run.tasks_done} tasks: {run.error}"


def in_order(found, known) -> list:
    """The values found, those of `known` first and in its order, then any other in sorted order."""
    found = set(found)
    return [k for k in known if k in found] + sorted(found - set(known))


def main(path: str) -> None:
    runs = load(path).set_index(["strategy", "stream", "scenario"]).sort_index()
    streams = in_order(runs.index.get_level_values(1), STREAMS)
    scenarios = in_order(runs.index.get_level_values(2), SCENARIOS)
    print("| strategy | " + " | ".join(f"{stream}, {scenario}" for stream in streams for scenario in scenarios)
          + " |")
    print("| --- " * (1 + len(streams) * len(scenarios)) + "|")
    for strategy in runs.index.get_level_values(0).unique():
        cells = [cell(runs.loc[[(strategy, stream, scenario)]].iloc[0]) if (strategy, stream, scenario) in runs.index
                 else "not run" for stream in streams for scenario in scenarios]
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    finished = (runs.status == "finished").sum()
    print(f"\n{finished} of {len(runs)} runs finished; train seconds per run: median "
          f"{runs.train_seconds.median():.1f}, longest {runs.train_seconds.max():.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
