"""Avalanche 0.6's side of a comparison: run one row of methods.py for one seed and print one JSON line.

Run it with the Python of Avalanche's own virtual environment (never clrelu's):

    /work/peers/avalanche-venv/bin/python scripts/peers/avalanche_side.py --method agem --scenario class --seed 0 \
        --data /work/peers/data

`--data` is a torchvision data root holding FashionMNIST/raw (the four IDX files). The streams:

- class: avalanche.benchmarks.classic.SplitFMNIST(5 experiences, fixed_class_order 0..9, ToTensor only);
- task: the same with return_task_id=True and class ids from zero in each experience;
- domain: Avalanche has no permuted Fashion-MNIST, so it is built as avalanche.benchmarks.classic.PermutedMNIST
  builds permuted MNIST (a frozen PixelsPermutation per experience from np.random.RandomState(seed), on [0, 1]
  tensors, nc_benchmark with class ids from zero, task label 0), on Fashion-MNIST.

The network is avalanche.models.SimpleMLP(10 classes, hidden_size 100, hidden_layers 2, drop_rate 0): Linear, ReLU,
Dropout(0), Linear, ReLU, Dropout(0), Linear, with PyTorch's default initialisation, as clrelu's mlp (wrapped by
PackNetModel for PackNet, whose one 10-unit head serves every task). Timer: the sum
of the wall time of every strategy.train(experience) call and every strategy.eval(test experiences seen so far)
call after it (the evaluation plugin computes the accuracy per experience only, no logger). Not timed: reading the
data, building the benchmark, the model and the strategy.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import Row, peer_row, result, side_arguments  # noqa: E402  (the table beside this script)

EVAL_BATCH = 10000  # as clrelu's trainer.eval_batch_size
N_PERMUTED = 5  # tasks of the domain scenario, as methods.STREAM["domain"]


def benchmark(scenario: str, seed: int, root: str):
    from avalanche.benchmarks.classic import SplitFMNIST
    from torchvision.transforms import ToTensor

    if scenario in ("class", "task"):
        return SplitFMNIST(n_experiences=5, return_task_id=scenario == "task", seed=seed,
                           fixed_class_order=list(range(10)), class_ids_from_zero_in_each_exp=scenario == "task",
                           train_transform=ToTensor(), eval_transform=ToTensor(), dataset_root=root)
    return permuted_fmnist(N_PERMUTED, seed, root)


def permuted_fmnist(n_experiences: int, seed: int, root: str):
    """avalanche.benchmarks.classic.PermutedMNIST's construction, on Fashion-MNIST."""
    from avalanche.benchmarks import nc_benchmark
    from avalanche.benchmarks.classic.cmnist import PixelsPermutation
    from avalanche.benchmarks.utils import _make_taskaware_classification_dataset, make_avalanche_dataset
    from avalanche.benchmarks.utils.transform_groups import DefaultTransformGroups
    from torchvision.datasets import FashionMNIST

    class TensorFashionMNIST(FashionMNIST):
        """Samples as [0, 1] float tensors, as Avalanche's TensorMNIST gives MNIST's, read from FashionMNIST/raw."""

        raw_folder = property(lambda self: os.path.join(self.root, "FashionMNIST", "raw"))

        def __getitem__(self, index: int):
            return self.data[index].float().unsqueeze(0) / 255.0, int(self.targets[index])

    train, test = TensorFashionMNIST(root, train=True), TensorFashionMNIST(root, train=False)
    rng = np.random.RandomState(seed)
    trains, tests = [], []
    for _ in range(n_experiences):
        permutation = PixelsPermutation(torch.from_numpy(rng.permutation(784)).type(torch.int64))
        for source, into in ((train, trains), (test, tests)):
            into.append(make_avalanche_dataset(_make_taskaware_classification_dataset(source),
                                               frozen_transform_groups=DefaultTransformGroups((permutation, None))))
    return nc_benchmark(trains, tests, n_experiences=n_experiences, task_labels=False, shuffle=False,
                        class_ids_from_zero_in_each_exp=True, one_dataset_per_exp=True)


def simple_mlp() -> nn.Module:
    from avalanche.models import SimpleMLP

    return SimpleMLP(num_classes=10, input_size=784, hidden_size=100, hidden_layers=2, drop_rate=0)


def simple_mlp_for(r: Row) -> nn.Module:
    """SimpleMLP, wrapped by Avalanche's PackNetModel for PackNet."""
    if r.peer_method == "PackNet":
        from avalanche.models.packnet import PackNetModel

        return PackNetModel(simple_mlp())
    return simple_mlp()


def gdumb_schedule(a: dict):
    """drimpossible/GDumb's learning rates (main.py, as clrelu's gdumb) as an Avalanche plugin, for every task's
    training on the memory: a warm-up pass at lr / 10, a pass at lr, then SGDR (T_0 1, T_mult 2) stepped before every
    later pass, so that the last of 128 passes ends a cycle at eta_min. Avalanche's LRSchedulerPlugin steps after
    every pass instead, with no warm-up: its 128th pass restarts at lr, and its seeds spread from 51.6 to 73.3."""
    from avalanche.training.plugins import SupervisedPlugin

    class GDumbSchedule(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                strategy.optimizer, T_0=1, T_mult=2, eta_min=a["eta_min"])
            self.epoch = 0

        def before_training_epoch(self, strategy, **kwargs):
            if self.epoch <= 1:
                for group in strategy.optimizer.param_groups:
                    group["lr"] = a["lr"] * (0.1 if self.epoch == 0 else 1.0)
            else:
                self.schedule.step()
            self.epoch += 1

    return GDumbSchedule()


def strategy(r: Row, model: nn.Module, evaluator):
    """The Avalanche strategy of row `r`, with the row's optimizer, batch size and epochs."""
    from avalanche.training import AGEM, GEM, MAS, GDumb, ICaRL, Naive, PackNet

    a = dict(r.peer_args)
    common = {"train_epochs": r.epochs, "eval_mb_size": EVAL_BATCH, "device": "cpu", "evaluator": evaluator}
    loss = nn.CrossEntropyLoss()
    if r.peer_method == "Naive":
        return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=r.lr), criterion=loss,
                     train_mb_size=r.batch_size, **common)
    if r.peer_method == "AGEM":
        return AGEM(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=r.lr), criterion=loss,
                    patterns_per_exp=a["patterns_per_exp"], sample_size=a["sample_size"],
                    train_mb_size=r.batch_size, **common)
    if r.peer_method == "GEM":
        return GEM(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=r.lr), criterion=loss,
                   patterns_per_exp=a["patterns_per_exp"], memory_strength=a["memory_strength"],
                   train_mb_size=r.batch_size, **common)
    if r.peer_method == "MAS":
        return MAS(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=r.lr), criterion=loss,
                   lambda_reg=a["lambda_reg"], alpha=a["alpha"], train_mb_size=r.batch_size, **common)
    if r.peer_method == "PackNet":
        return PackNet(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=r.lr), criterion=loss,
                       post_prune_epochs=a["post_prune_epochs"], prune_proportion=a["prune_proportion"],
                       train_mb_size=r.batch_size, **{**common, "train_epochs": a["train_epochs"]})
    if r.peer_method == "ICaRL":
        classifier = model.classifier
        model.classifier = nn.Identity()
        return ICaRL(feature_extractor=model, classifier=classifier,
                     optimizer=torch.optim.SGD([*model.parameters(), *classifier.parameters()], lr=r.lr),
                     memory_size=a["memory_size"], buffer_transform=None, fixed_memory=a["fixed_memory"],
                     train_mb_size=r.batch_size, **common)
    if r.peer_method == "GDumb":
        optimizer = torch.optim.SGD(model.parameters(), lr=a["lr"], momentum=a["momentum"],
                                    weight_decay=a["weight_decay"])
        return GDumb(model=model, optimizer=optimizer, criterion=loss, mem_size=a["mem_size"],
                     train_mb_size=a["train_mb_size"], plugins=[gdumb_schedule(a)],
                     **{**common, "train_epochs": a["train_epochs"]})
    raise SystemExit(f"avalanche_side: no Avalanche strategy {r.peer_method!r} here")


def accuracies(metrics: dict, n: int) -> list[float]:
    """The accuracy (percent) on each of the first `n` test experiences, from strategy.eval's metrics."""
    found = {}
    for name, value in metrics.items():
        if name.startswith("Top1_Acc_Exp/eval_phase/test_stream/"):
            found[int(name.rsplit("Exp", 1)[1])] = 100 * float(value)
    return [found[i] for i in range(n)]


def run(r: Row, seed: int, root: str) -> dict:
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.determinism.rng_manager import RNGManager
    from avalanche.training.plugins import EvaluationPlugin

    RNGManager.set_random_seeds(seed)
    bench = benchmark(r.scenario, seed, root)
    model = simple_mlp_for(r)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    learner = strategy(r, model, evaluator)
    seconds = 0.0
    metrics: dict = {}
    tests = bench.test_stream
    for i, experience in enumerate(bench.train_stream):
        started = time.perf_counter()
        learner.train(experience)
        metrics = learner.eval(tests[:i + 1])
        seconds += time.perf_counter() - started
    accs = accuracies(metrics, len(tests))
    return result(r.peer, r, seed, accs, seconds)


def main() -> None:
    parser = side_arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    r = peer_row(args, "avalanche")
    print(json.dumps(run(r, args.seed, args.data)), flush=True)


if __name__ == "__main__":
    main()
