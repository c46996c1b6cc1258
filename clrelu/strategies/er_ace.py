"""Experience replay with asymmetric cross-entropy (Caccia et al. 2022): the incoming batch's loss ignores the units of
earlier classes, the replayed batch's does not."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer
from clrelu.strategies.der import task_ids
from clrelu.streams.base import HeadLayout

MASKED = -1e9  # the logit their code gives a masked unit


def ace_mask(logits: torch.Tensor, present: torch.Tensor, seen_max: int) -> torch.Tensor:
    """The incoming batch's logits with every unit masked except the classes present in the batch and the units
    from the largest class seen so far on (classes not seen yet): AML's and Mammoth's er_ace.py."""
    keep = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    keep[present] = True
    keep[seen_max:] = True
    return logits.masked_fill(~keep, MASKED)


class ERACE(Strategy):
    """ER-ACE as pclucas14/AML's methods/er_ace.py and Mammoth's models/er_ace.py: loss = CE(ace_mask(f(x)), y) +
    CE(f(x'), y') on `replay_batch_size` samples x' drawn without replacement from a reservoir memory of
    `memory_size` samples, to which every batch (before augmentation) is offered after its step.

    task_free: true (AML's code, which sets it for ER-ACE): the mask and the replay from the first batch on;
    false (Mammoth's default): both only from the second task on.
    """

    scenarios = ("class",)  # the asymmetry is between the units of one shared head over every class
    regimes = ("sequential",)
    models = ("mlp", "sparse", "transfer")

    def __init__(self, layout: HeadLayout, memory_size: int = 200, replay_batch_size: int | None = None,
                 task_free: bool = True):
        super().__init__(layout)
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.replay_batch_size = checks.optional_limit("strategy.replay_batch_size", replay_batch_size)
        self.task_free = checks.boolean("strategy.task_free", task_free)
        self.memory = Buffer()
        self.seen = torch.zeros(layout.head_width, dtype=torch.bool)  # the classes seen in any batch so far
        self.task_id = 0
        self.pending: dict[str, torch.Tensor] = {}  # the batch to offer to the memory after the step
        self.own_task: int | torch.Tensor = 0  # the task of the samples drawn from the stream, as the trainer gave it
        self.n_replayed = 0

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.task_id = task_id

    def active(self) -> bool:
        return self.task_free or self.task_id > 0

    def batch(self, x: torch.Tensor, y: torch.Tensor, task):
        ids = task_ids(task, len(x), x.device)
        self.pending = {"x": x, "y": y, "task": ids}
        self.own_task = task
        self.n_replayed = 0
        if not len(self.memory) or not self.active():
            return x, y, task
        mx, my, mt = self.memory.gather(self.memory.draw_distinct(self.replay_batch_size or len(x)))
        self.n_replayed = len(my)
        return torch.cat([x, mx.to(x.device)]), torch.cat([y, my.to(y.device)]), torch.cat([ids, mt.to(x.device)])

    def loss_and_logits(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task):
        n = len(self.pending["y"])
        logits = model(x[:n], self.own_task)
        present = y[:n].unique()
        self.seen[present.cpu()] = True
        trained = ace_mask(logits, present, int(self.seen.nonzero().max())) if self.active() else logits
        loss = F.cross_entropy(trained, y[:n])
        if self.n_replayed:
            loss = loss + F.cross_entropy(model(x[n:], task[n:]), y[n:])
        return loss, logits

    def after_step(self, model: ContinualModel) -> None:
        if self.pending:
            self.memory.reservoir(len(self.pending["y"]), self.pending, self.memory_size)
            self.pending = {}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.seen = state["seen"].clone()
