"""PackNet (Mallya & Lazebnik 2018): after each task, prune its smallest weights, fine-tune the rest, and freeze them;
the pruned weights are the next task's."""

from __future__ import annotations

import math

import torch

from clrelu import checks
from clrelu.errors import ConfigError, RunError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable
from clrelu.streams.base import HeadLayout, Split


def fractions(value) -> list[float]:
    """`strategy.prune_fraction`: a number, or a list of them (one per task, the last repeating), each in [0, 1]."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError("strategy.prune_fraction=[]: give a fraction, or one per task")
    return [checks.number("strategy.prune_fraction", v, minimum=0, maximum=1) for v in values]


class PackNet(Strategy):
    """Trains `model=packnet` (models/packnet.py) the way their scripts run (arunmallya/packnet src/main.py,
    its run_sequence.sh script): task t trains on its free weights, then, unless it is the stream's last task
    (`prune_last_task`), `prune_fraction` of its weights in every layer are pruned (main.py --mode prune) and the
    rest fine-tuned for `post_prune_share` times the task's training steps (--post_prune_epochs 10 after
    --finetune_epochs 20) with a fresh optimizer of the run's kind and settings, its learning rate times
    `post_prune_lr_factor` (--lr 1e-4 after 1e-3), batches of `post_prune_batch_size` drawn from the task's
    training data; its weights are frozen from the next task on.
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    models = ("packnet",)

    def __init__(self, layout: HeadLayout, prune_fraction=(0.5, 0.75), prune_last_task: bool = False,
                 post_prune_share: float = 0.5, post_prune_lr_factor: float = 0.1, post_prune_batch_size: int = 128):
        super().__init__(layout)
        self.prune_fraction = fractions(prune_fraction)
        self.prune_last_task = checks.boolean("strategy.prune_last_task", prune_last_task)
        self.post_prune_share = checks.number("strategy.post_prune_share", post_prune_share, minimum=0)
        self.post_prune_lr_factor = checks.number("strategy.post_prune_lr_factor", post_prune_lr_factor, above=0)
        self.post_prune_batch_size = checks.integer("strategy.post_prune_batch_size", post_prune_batch_size,
                                                    minimum=1)
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps = 0  # training steps of the current task
        self.pruned: list[int] = []  # weights pruned per layer after the current task

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.steps = 0
        self.pruned = [0] * len(model.masked)

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def after_step(self, model: ContinualModel) -> None:
        self.steps += 1

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        if task_id == self.layout.n_tasks - 1 and not self.prune_last_task:
            return
        self.pruned = model.prune(self.prune_fraction[min(task_id, len(self.prune_fraction) - 1)])
        steps = round(self.post_prune_share * self.steps)
        if steps and self.optimizer is not None:
            self._fine_tune(model, task_id, train, steps)

    def _fine_tune(self, model: ContinualModel, task_id: int, train: Split, steps: int) -> None:
        """`steps` optimizer steps on the task's training data, in passes of random order."""
        settings = {key: value for key, value in self.optimizer.param_groups[0].items() if key != "params"}
        settings["lr"] = settings["lr"] * self.post_prune_lr_factor
        optimizer = type(self.optimizer)(list(trainable(model).values()), **settings)
        model.train()
        n, size, step = len(train), self.post_prune_batch_size, 0
        while step < steps:
            order = torch.randperm(n)
            for start in range(0, n, size):
                if step == steps:
                    break
                x, y = train.gather(order[start:start + size])
                loss, _ = model.loss_and_logits(x, y, task_id)
                if not math.isfinite(loss.item()):
                    raise RunError(f"task {task_id}, post-prune step {step}: the loss became {loss.item()} (a smaller "
                                   "strategy.post_prune_lr_factor usually avoids this)")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                model.after_step()
                step += 1

    def stats(self) -> dict[str, float]:
        return {f"pruned_l{i}": n for i, n in enumerate(self.pruned)}
