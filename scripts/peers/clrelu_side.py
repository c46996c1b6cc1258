"""clrelu's side of a comparison: run one row of methods.py for one seed, in this process, and print one JSON line.

    CLRELU_DATA=/work/shared/data python scripts/peers/clrelu_side.py --method agem --scenario class --seed 0 \
        --folder /tmp/peers/clrelu/agem-class-0
    python scripts/peers/clrelu_side.py --method agem --scenario class --seed 0 --folder /tmp/x --synthetic

The run folder is clrelu's usual one (accuracy.csv, summary.csv, ...). Printed: the final accuracy of every task in
percent, their mean, and the seconds of the timer: train_seconds + eval_seconds of summary.csv, that is the training
of every task (batches, the strategy's own work, its end-of-task work such as filling a memory or GDumb's training)
plus the evaluation after each task of the tasks seen so far. Not timed: reading the data, building the model, writing
the CSVs and the checkpoint. `--synthetic` puts clrelu's synthetic stream (no files) in place of Fashion-MNIST, for
the smoke test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from clrelu.config import compose
from clrelu.training.experiment import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import Row, result, row, side_arguments  # noqa: E402  (the table beside this script)

SYNTHETIC = {"class": ["stream=synthetic", "stream.scenario=class", "stream.active_classes=all"],
             "domain": ["stream=synthetic", "stream.scenario=domain"],
             "task": ["stream=synthetic", "stream.scenario=task"]}


def overrides(r: Row, seed: int, synthetic: bool = False) -> list[str]:
    """The row's clrelu overrides; with `synthetic`, the synthetic stream in place of the row's."""
    keys = r.clrelu_overrides(seed)
    if synthetic:
        keys = [k for k in keys if not k.startswith("stream")] + SYNTHETIC[r.scenario]
    return keys


def run(r: Row, seed: int, folder: Path, synthetic: bool = False, extra: list[str] = ()) -> dict:
    """Run the row's clrelu side into `folder`; its result as a dict (see the module's docstring)."""
    cfg, names = compose([*overrides(r, seed, synthetic), *extra])
    run_experiment(cfg, folder, names)
    summary = pd.read_csv(folder / "summary.csv").iloc[0]
    last = pd.read_csv(folder / "accuracy.csv", index_col=0).iloc[-1]
    accuracies = [100 * float(a) for a in last]
    return result("clrelu", r, seed, accuracies, float(summary.train_seconds + summary.eval_seconds),
                  train_seconds=float(summary.train_seconds), eval_seconds=float(summary.eval_seconds))


def main() -> None:
    parser = side_arguments(__doc__.splitlines()[0], peer=False)
    parser.add_argument("--folder", type=Path, required=True, help="the run folder (must not hold a run)")
    parser.add_argument("--synthetic", action="store_true", help="clrelu's synthetic stream instead of the data")
    parser.add_argument("extra", nargs="*", help="further clrelu overrides (targeted experiments)")
    args = parser.parse_args()
    line = run(row(args.method, args.scenario), args.seed, args.folder, args.synthetic, args.extra)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
