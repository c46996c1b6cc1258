"""The side-by-side comparisons: one row a method and scenario, read by both sides (clrelu and the peer).

This module is plain data and imports nothing but the standard library, so that the peer's virtual environment,
which has no clrelu, reads the same rows. Adding a method is one `Row` in ROWS.

Every comparison shares the stream, the network (784-100-100-10 ReLU MLP, PyTorch's default initialisation, inputs
in [0, 1] without normalisation), plain SGD (no momentum, no weight decay) rebuilt for every task, one epoch per task
unless a row says otherwise, and the row's learning rate, batch size and memory:

- class: split Fashion-MNIST, 5 tasks of 2 classes in the order 0..9, one 10-unit head trained on every unit
  (clrelu's stream.active_classes=all, as the peers' networks);
- domain: permuted Fashion-MNIST, 5 tasks (every task permuted), one 10-unit head;
- task: split Fashion-MNIST as in class, with the task id given (for methods that need it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

SCENARIOS = ("class", "domain", "task")
PEERS = ("avalanche", "mammoth", "hat")

# clrelu's keys for each scenario's stream and network; the evaluation covers the tasks seen so far, as both peers
# evaluate, and clrelu's activation diagnostics and plasticity probe (which no peer has) are off.
STREAM = {
    "class": ["stream=split_fmnist", "stream.scenario=class", "stream.active_classes=all",
              "stream.class_order=[0,1,2,3,4,5,6,7,8,9]"],
    "domain": ["stream=permuted_fmnist", "stream.scenario=domain", "stream.n_tasks=5"],
    "task": ["stream=split_fmnist", "stream.scenario=task", "stream.class_order=[0,1,2,3,4,5,6,7,8,9]"],
}
COMMON = ["model.hidden=[100,100]", "optimizer=sgd", "optimizer.momentum=0", "optimizer.weight_decay=0",
          "diagnostics.enabled=false", "plasticity.enabled=false", "eval.tasks=seen", "threads=1"]


@dataclass(frozen=True)
class Row:
    """One comparison. `strategy` holds clrelu's strategy keys (strategy.<key>=<value>), `peer_args` the peer's own
    names for the same settings (its constructor's keywords or command-line flags), `model` clrelu's model config
    when the method needs its own network, and `clrelu_extra` any further clrelu override."""

    method: str
    scenario: str
    peer: str
    peer_method: str
    lr: float
    batch_size: int
    strategy: dict = field(default_factory=dict)
    peer_args: dict = field(default_factory=dict)
    epochs: int = 1
    model: str = "mlp"
    clrelu_extra: tuple = ()
    name: str = ""  # the row's name where it is not the method's (a second peer for one method)

    @property
    def label(self) -> str:
        return self.name or self.method

    @property
    def key(self) -> str:
        return f"{self.label}/{self.scenario}"

    def clrelu_overrides(self, seed: int) -> list[str]:
        """The `clrelu run` overrides of this row for `seed`."""
        keys = [f"model={self.model}", *STREAM[self.scenario], *COMMON, f"strategy={self.method}",
                f"optimizer.lr={self.lr}", f"trainer.batch_size={self.batch_size}", f"trainer.epochs={self.epochs}"]
        keys += [f"strategy.{k}={override_value(v)}" for k, v in self.strategy.items()]
        return [*keys, *self.clrelu_extra, f"seed={seed}"]


def override_value(v) -> str:
    """A value as a Hydra override writes it."""
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    return str(v)


GDUMB_PEER = {"mem_size": 500, "train_mb_size": 16, "train_epochs": 128, "lr": 0.05, "momentum": 0.9,
              "weight_decay": 1e-6, "eta_min": 0.0005}

ROWS = [
    # Control: plain fine-tuning, to tell a difference of the stream and data pipeline from one of a method.
    Row("naive", "domain", "avalanche", "Naive", lr=0.1, batch_size=128),
    Row("naive", "domain", "mammoth", "sgd", lr=0.2, batch_size=128, name="naive-mammoth"),
    # Control in the class scenario, beside the class rows at lr 0.1 and batch 128 (MAS).
    Row("naive", "class", "avalanche", "Naive", lr=0.1, batch_size=128),
    # A-GEM: 250 samples per task, reference gradients on 256 memory samples (facebookresearch/agem's MNIST values).
    Row("agem", "class", "avalanche", "AGEM", lr=0.1, batch_size=10,
        strategy={"memory_size": 250, "sample_size": 256},
        peer_args={"patterns_per_exp": 250, "sample_size": 256}),
    Row("agem", "domain", "avalanche", "AGEM", lr=0.1, batch_size=128,
        strategy={"memory_size": 250, "sample_size": 256},
        peer_args={"patterns_per_exp": 250, "sample_size": 256}),
    # GEM: 256 samples per task, margin 0.5 (facebookresearch/GradientEpisodicMemory run_experiments.sh).
    Row("gem", "class", "avalanche", "GEM", lr=0.1, batch_size=10,
        strategy={"memory_size": 256, "memory_strength": 0.5},
        peer_args={"patterns_per_exp": 256, "memory_strength": 0.5}),
    Row("gem", "domain", "avalanche", "GEM", lr=0.1, batch_size=128,
        strategy={"memory_size": 256, "memory_strength": 0.5},
        peer_args={"patterns_per_exp": 256, "memory_strength": 0.5}),
    # DER and DER++: Mammoth is the authors' code (Avalanche's DER fills a class-balanced memory when a task ends,
    # with logits computed after training, so it is another method). Learning rates and replay batches: Mammoth's
    # best_args for seq-mnist and perm-mnist with a 500-sample buffer.
    Row("der", "class", "mammoth", "der", lr=0.03, batch_size=10,
        strategy={"memory_size": 500, "alpha": 1.0, "replay_batch_size": 128},
        peer_args={"buffer_size": 500, "alpha": 1.0, "minibatch_size": 128}),
    Row("der", "domain", "mammoth", "der", lr=0.2, batch_size=128,
        strategy={"memory_size": 500, "alpha": 1.0, "replay_batch_size": 128},
        peer_args={"buffer_size": 500, "alpha": 1.0, "minibatch_size": 128}),
    Row("derpp", "class", "mammoth", "derpp", lr=0.03, batch_size=10,
        strategy={"memory_size": 500, "alpha": 1.0, "beta": 0.5, "replay_batch_size": 10},
        peer_args={"buffer_size": 500, "alpha": 1.0, "beta": 0.5, "minibatch_size": 10}),
    # DER++ domain: Mammoth's perm-mnist lr 0.2 diverges on permuted Fashion-MNIST on both sides (seed 0: clrelu's
    # loss inf in the fifth task, Mammoth's NaN assertion in the fourth), so both use 0.1, its value for 200 samples.
    Row("derpp", "domain", "mammoth", "derpp", lr=0.1, batch_size=128,
        strategy={"memory_size": 500, "alpha": 1.0, "beta": 0.5, "replay_batch_size": 128},
        peer_args={"buffer_size": 500, "alpha": 1.0, "beta": 0.5, "minibatch_size": 128}),
    # ER-ACE: Mammoth's er_ace is the authors' (pclucas14/AML) reservoir version; Avalanche's ER_ACE fills a
    # class-balanced memory at the start of each task and halves the loss. Class scenario only (clrelu and Mammoth).
    # clrelu keeps the linear head: Mammoth's cosine classifier is switched off to compare the same network.
    Row("er_ace", "class", "mammoth", "er_ace", lr=0.1, batch_size=10,
        strategy={"memory_size": 200, "replay_batch_size": 10, "task_free": True},
        peer_args={"buffer_size": 200, "minibatch_size": 10, "task_free": 1, "use_custom_classifier": 0}),
    # iCaRL: 2000 exemplars in all; the sigmoid loss over every unit; no weight decay on either side. Avalanche's
    # herding is their code's (w <- w + mu - f, at most 1000 iterations), clrelu's `welling`.
    Row("icarl", "class", "avalanche", "ICaRL", lr=0.1, batch_size=10,
        strategy={"memory_size": 2000, "herding": "welling", "weight_decay": 0},
        peer_args={"memory_size": 2000, "fixed_memory": True}),
    # iCaRL with clrelu's class means computed as Avalanche's (and srebuffi/iCaRL's Theano code): the exemplars and
    # their left-to-right mirror images (strategy.flip_means=true); the row above keeps clrelu's default (no flip).
    Row("icarl", "class", "avalanche", "ICaRL", lr=0.1, batch_size=10, name="icarl-flip",
        strategy={"memory_size": 2000, "herding": "welling", "weight_decay": 0, "flip_means": True},
        peer_args={"memory_size": 2000, "fixed_memory": True}),
    # GDumb: 500 samples, 128 passes of 16 with SGD (momentum 0.9, weight decay 1e-6), a warm-up pass, then SGDR from
    # 0.05 to 0.0005 (drimpossible/GDumb's main.py on both sides: avalanche_side.gdumb_schedule); the row's lr and batch
    # size are the stream's, which GDumb never trains on.
    Row("gdumb", "class", "avalanche", "GDumb", lr=0.05, batch_size=16,
        strategy={"memory_size": 500}, peer_args=GDUMB_PEER),
    Row("gdumb", "domain", "avalanche", "GDumb", lr=0.05, batch_size=16,
        strategy={"memory_size": 500}, peer_args=GDUMB_PEER),
    # MAS: Avalanche's MASPlugin takes |gradient| of the batch mean of ||f(x)||^2 over training batches and a running
    # average of the importances (alpha 0.5); clrelu's importance_batch_size and alpha set the same, and no cap.
    # lambda 0.1, not their 1: after task 1 the largest importance is 69 (head weights), so under SGD at lr 0.1 the
    # penalty's step factor 0.1 * 2 * lambda * 69 is 13.7 > 2 with lambda 1 and both sides diverge (seed 0: clrelu's
    # loss NaN in the second task, Avalanche's weights NaN, accuracies 50, 0, 0, 0, 0); 1.4 with lambda 0.1.
    Row("mas", "class", "avalanche", "MAS", lr=0.1, batch_size=128,
        strategy={"mas_lambda": 0.1, "importance_batch_size": 128, "alpha": 0.5, "max_curvature": None},
        peer_args={"lambda_reg": 0.1, "alpha": 0.5}),
    Row("mas", "domain", "avalanche", "MAS", lr=0.1, batch_size=128,
        strategy={"mas_lambda": 0.1, "importance_batch_size": 128, "alpha": 0.5, "max_curvature": None},
        peer_args={"lambda_reg": 0.1, "alpha": 0.5}),
    # PackNet (task scenario: it needs the task id): Avalanche prunes one proportion every task and fine-tunes for the
    # last post_prune_epochs of the task's train_epochs at the same learning rate; clrelu set alike: one epoch, then
    # one epoch's steps of fine-tuning (post_prune_share 1) at the same rate, every task pruned by half.
    Row("packnet", "task", "avalanche", "PackNet", lr=0.1, batch_size=128, model="packnet",
        strategy={"prune_fraction": [0.5], "prune_last_task": True, "post_prune_share": 1.0,
                  "post_prune_lr_factor": 1.0},
        peer_args={"prune_proportion": 0.5, "post_prune_epochs": 1, "train_epochs": 2}),
    # HAT (task scenario): joansj/hat's code; their SGD lr 0.05 and batch 64, lamb (c) 0.75, smax 400, dropout 0.2/0.5.
    Row("hat", "task", "hat", "hat", lr=0.05, batch_size=64, model="hat", strategy={"c": 0.75},
        peer_args={"nhid": 100, "pdrop1": 0.2, "pdrop2": 0.5, "lamb": 0.75, "smax": 400, "clipgrad": 10000}),
]

BY_KEY = {row.key: row for row in ROWS}


def row(method: str, scenario: str) -> Row:
    """The row of `method` in `scenario`; a KeyError naming the rows there are otherwise."""
    try:
        return BY_KEY[f"{method}/{scenario}"]
    except KeyError:
        raise KeyError(f"no comparison {method}/{scenario}; the rows are {', '.join(BY_KEY)}") from None


def side_arguments(description: str, peer: bool = True) -> argparse.ArgumentParser:
    """The command line every side takes (--method, --scenario, --seed; a peer's side also --data), for the side's
    own arguments to be added to."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--method", required=True)
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--seed", type=int, default=0)
    if peer:
        parser.add_argument("--data", required=True, help="torchvision data root with FashionMNIST/raw")
    return parser


def peer_row(args: argparse.Namespace, side: str, shown: str | None = None) -> Row:
    """The row of the arguments' method and scenario, refused unless it is compared with `side`."""
    r = row(args.method, args.scenario)
    if r.peer != side:
        raise SystemExit(f"{side}_side: {r.key} is compared with {r.peer}, not {shown or side}")
    return r


def result(side: str, r: Row, seed: int, accuracies: list[float], seconds: float, **timings: float) -> dict:
    """A side's result line: the accuracy (%) on every task after the last, their mean, and the seconds timed."""
    return {"side": side, "method": r.label, "scenario": r.scenario, "seed": seed, "accuracies": accuracies,
            "final_accuracy": sum(accuracies) / len(accuracies), "seconds": seconds, **timings}
