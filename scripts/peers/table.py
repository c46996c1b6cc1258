"""The side-by-side table from run.py's JSONL results: per method and scenario, clrelu's and the peer's final accuracy
(mean and standard deviation over seeds), their difference, and clrelu's speed ratio.

    python scripts/peers/table.py /work/peers/results/peers.jsonl [more.jsonl ...]
    python scripts/peers/table.py --settings      # the settings of every row, from methods.py
    python scripts/peers/table.py --per-seed /work/peers/results/peers.jsonl   # every seed's final accuracies

Final accuracy: the mean over every task of the accuracy after the last task, in percent. Difference: clrelu's mean
minus the peer's, in points; rows whose difference is above 2 points in size are marked. Speed ratio: clrelu's timed
seconds over the peer's, summed over the seeds both sides finished (below 1: clrelu is faster); each side's timer is
described in its script. Standard deviations are over seeds (n - 1 in the denominator).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import ROWS, override_value  # noqa: E402  (the table beside this script)

THRESHOLD = 2.0  # points of final accuracy beyond which a difference must be explained or fixed
HEADER = ("| method | scenario | peer | seeds | clrelu (%) | peer (%) | difference (points) | speed ratio |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def shown(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def sides(results: list[dict], r) -> tuple[dict, dict]:
    """Row `r`'s results by seed: clrelu's and the peer's."""
    def of(side):
        return {x["seed"]: x for x in results if (x["side"], x["method"], x["scenario"]) == (side, r.label, r.scenario)}
    return of("clrelu"), of(r.peer)


def table(results: list[dict]) -> str:
    """The markdown table, one line per row of methods.py with results on both sides, in the order of ROWS."""
    lines = [HEADER]
    for r in ROWS:
        mine, theirs = sides(results, r)
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            continue
        a = [mine[s]["final_accuracy"] for s in seeds]
        b = [theirs[s]["final_accuracy"] for s in seeds]
        difference = mean_std(a)[0] - mean_std(b)[0]
        cell = f"**{difference:+.2f}**" if abs(difference) > THRESHOLD else f"{difference:+.2f}"
        ratio = sum(mine[s]["seconds"] for s in seeds) / sum(theirs[s]["seconds"] for s in seeds)
        lines.append(f"| {r.label} | {r.scenario} | {r.peer} | {len(seeds)} | {shown(a)} | {shown(b)} | "
                     f"{cell} | {ratio:.2f} |")
    return "\n".join(lines)


def per_seed(results: list[dict]) -> str:
    """Every row's final accuracy seed by seed on each side (a seed one side has not finished shows as -)."""
    lines = ["| method | scenario | seed | clrelu (%) | peer (%) |", "| --- | --- | --- | --- | --- |"]
    for r in ROWS:
        mine, theirs = sides(results, r)
        for seed in sorted(set(mine) | set(theirs)):
            cells = [f"{side[seed]['final_accuracy']:.2f}" if seed in side else "-" for side in (mine, theirs)]
            lines.append(f"| {r.label} | {r.scenario} | {seed} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def settings() -> str:
    """The settings of every row: clrelu's strategy keys and the peer's own arguments, as methods.py gives them."""
    lines = ["| method | scenario | peer | lr, batch, epochs | clrelu | peer |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in ROWS:
        mine = " ".join([f"`strategy={r.method}`", *(f"`{k}={override_value(v)}`" for k, v in r.strategy.items())])
        if r.model != "mlp":
            mine = f"`model={r.model}` " + mine
        args = ", ".join(f"{k}={v}" for k, v in r.peer_args.items())
        theirs = f"{r.peer_method}: {args}" if args else r.peer_method
        lines.append(f"| {r.label} | {r.scenario} | {r.peer} | {r.lr}, {r.batch_size}, {r.epochs} | {mine} | "
                     f"{theirs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="*", help="run.py's JSONL files (their lines together)")
    parser.add_argument("--settings", action="store_true", help="print the settings of every row instead")
    parser.add_argument("--per-seed", action="store_true", help="print every row's accuracies seed by seed instead")
    args = parser.parse_args()
    if args.settings:
        print(settings())
    elif args.per_seed and args.results:
        print(per_seed([line for path in args.results for line in read(path)]))
    elif not args.results:
        parser.error("give the results files, or --settings")
    else:
        print(table([line for path in args.results for line in read(path)]))


if __name__ == "__main__":
    main()
