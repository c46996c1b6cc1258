"""Dark experience replay (Buzzega et al. 2020): replay earlier samples with the logits the network gave them."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer
from clrelu.streams.base import HeadLayout


def task_ids(task, n: int, device) -> torch.Tensor:
    """The batch's task as one id per sample."""
    return task if torch.is_tensor(task) else torch.full((n,), task, dtype=torch.long, device=device)


class DER(Strategy):
    """Mammoth's models/der.py: loss = CE(batch) + alpha * MSE(f(x'), z') on `replay_batch_size` memory samples x'
    drawn without replacement with the logits z' stored with them; after every step the batch's inputs (before
    augmentation), targets and logits are offered to a reservoir memory of `memory_size` samples.

    The memory samples ride in the batch after the drawn ones (so the stream's augmentation reaches them, as their
    get_data(transform=...) does) and go through the model in their own forward pass, as in their code.
    """

    regimes = ("sequential",)
    models = ("mlp", "sparse", "transfer")  # models whose training loss is the cross-entropy of their logits

    def __init__(self, layout: HeadLayout, memory_size: int = 500, alpha: float = 1.0,
                 replay_batch_size: int | None = None):
        super().__init__(layout)
        if layout.scenario == "class" and layout.active_classes != "all":
            raise ConfigError(f"stream.active_classes={layout.active_classes}: DER matches the logits of every output "
                              "unit, and Mammoth's network trains them all; use stream.active_classes=all")
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.alpha = checks.number("strategy.alpha", alpha, minimum=0)
        self.replay_batch_size = checks.optional_limit("strategy.replay_batch_size", replay_batch_size)
        self.memory = Buffer()
        self.draws: list[torch.Tensor] = []  # the memory positions of the samples added to this batch, per draw
        self.pending: dict[str, torch.Tensor] = {}  # the batch to offer to the memory after the step
        self.own_task: int | torch.Tensor = 0  # the task of the samples drawn from the stream, as the trainer gave it

    def n_draws(self) -> int:
        return 1

    def batch(self, x: torch.Tensor, y: torch.Tensor, task):
        ids = task_ids(task, len(x), x.device)
        self.pending = {"x": x, "y": y, "task": ids}
        self.own_task = task
        self.draws = []
        if not len(self.memory):
            return x, y, task
        size = self.replay_batch_size or len(x)  # Mammoth's minibatch_size defaults to the batch size
        self.draws = [self.memory.draw_distinct(size) for _ in range(self.n_draws())]
        parts = [self.memory.gather(idx) for idx in self.draws]
        return (torch.cat([x, *(p[0].to(x.device) for p in parts)]), torch.cat([y, *(p[1].to(y.device) for p in parts)]),
                torch.cat([ids, *(p[2].to(x.device) for p in parts)]))

    def replay_loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor, draw: int):
        """The term of draw `draw` (its samples `x`, `y`, `task` as augmented): alpha * MSE to the stored logits."""
        stored = self.memory["logits"][self.draws[draw].to(self.memory["logits"].device)].to(x.device)
        return self.alpha * F.mse_loss(model(x, task), stored)

    def loss_and_logits(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task):
        n = len(self.pending["y"])
        loss, logits = model.loss_and_logits(x[:n], y[:n], self.own_task)
        self.pending["logits"] = logits.detach()
        start = n
        for k, idx in enumerate(self.draws):
            stop = start + len(idx)
            loss = loss + self.replay_loss(model, x[start:stop], y[start:stop], task[start:stop], k)
            start = stop
        return loss, logits

    def after_step(self, model: ContinualModel) -> None:
        if self.pending:
            self.memory.reservoir(len(self.pending["y"]), self.pending, self.memory_size)
            self.pending = {}

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)
