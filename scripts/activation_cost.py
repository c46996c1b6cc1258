"""What each activation costs: train and evaluation seconds of the same MLP with each activation, alternating the
activations in one process so that a busy machine slows all of them alike, as ratios to relu.

    CLRELU_DATA=../shared/data python scripts/activation_cost.py            # split_fmnist's first task, 5 rounds
    python scripts/activation_cost.py --stream synthetic --rounds 2         # a quick check without data

After a warm-up round, each round trains every activation's model (same seed, so the same initial weights and
batches) for one epoch of one task with SGD, batch 128, then evaluates it on the task's test set in one batch; the
table has the median of the rounds and its ratio to relu's median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from clrelu.config import compose
from clrelu.models.layers import ACTIVATIONS
from clrelu.models.mlp import MLP
from clrelu.training.experiment import build, stream_factory


def everything(split) -> tuple[torch.Tensor, torch.Tensor]:
    """All samples of a split as tensors, so that the rounds time the network alone."""
    return split.gather(torch.arange(len(split)))


def one_round(activation: str, stream, hidden: list[int]) -> tuple[float, float]:
    """(train seconds, evaluation seconds) of one epoch on task 0 and one pass over its test set."""
    x_train, y_train = everything(stream.tasks[0].train)
    x_test, _ = everything(stream.tasks[0].test)
    torch.manual_seed(0)
    model = MLP(stream.in_features, stream.layout, hidden=hidden, activation=activation)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for start in range(0, len(order), 128):
        idx = order[start:start + 128]
        loss = F.cross_entropy(model(x_train[idx], 0), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train = time.perf_counter() - started
    started = time.perf_counter()
    with torch.inference_mode():
        model.eval()
        model(x_test, 0).argmax(1)
    return train, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="split_fmnist")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", default="400", help="hidden widths, comma separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg, _ = compose([f"stream={args.stream}"])
    stream = build(stream_factory(cfg.stream), "stream")
    hidden = [int(w) for w in args.hidden.split(",")]
    activations = sorted(ACTIVATIONS)
    seconds = {a: ([], []) for a in activations}
    for activation in activations:  # warm-up: the first steps pay for allocations and kernel selection
        one_round(activation, stream, hidden)
    for r in range(args.rounds):
        for activation in activations[r % len(activations):] + activations[:r % len(activations)]:
            train, evaluation = one_round(activation, stream, hidden)
            seconds[activation][0].append(train)
            seconds[activation][1].append(evaluation)
    medians = {a: (statistics.median(t), statistics.median(e)) for a, (t, e) in seconds.items()}
    task = stream.tasks[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MLP {stream.in_features}-"
          f"{'-'.join(map(str, hidden))}, {args.stream} task 0: one epoch of {len(task.train)} samples "
          f"(batch 128), evaluation of {len(task.test)}; medians of {args.rounds} alternating rounds\n")
    print("| activation | train s | train / relu | eval s | eval / relu |")
    print("| --- | --- | --- | --- | --- |")
    relu_train, relu_eval = medians["relu"]
    for activation, (train, evaluation) in sorted(medians.items(), key=lambda item: item[1][0]):
        print(f"| {activation} | {train:.3f} | {train / relu_train:.2f} | {evaluation:.4f} | "
              f"{evaluation / relu_eval:.2f} |")


if __name__ == "__main__":
    main()
