"""Experience replay: a bounded memory of earlier samples, mixed into every training batch."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer, class_balanced_picks, task_rows
from clrelu.streams.base import HeadLayout, Split

POLICIES = ("class_balanced", "reservoir")


class Replay(Strategy):
    """Keep at most `memory_size` training samples (with their task ids) and add `replay_batch_size` of
    them, drawn uniformly, to every batch once the memory holds anything.

    The memory is updated when a task ends. `class_balanced` keeps the same number of samples of every
    class seen so far (a class is a task's label), dropping old ones at random to make room;
    `reservoir` runs reservoir sampling over every training sample seen, so that each has the same
    chance, memory_size / seen, to be in the memory. `class_budget` (class_balanced only) caps the share of
    each class, as van de Ven et al.'s budget per class does: the memory then holds class_budget samples of
    each class seen so far, up to memory_size in all.
    """

    def __init__(self, layout: HeadLayout, memory_size: int = 1000, replay_batch_size: int = 128,
                 policy: str = "class_balanced", class_budget: int | None = None):
        super().__init__(layout)
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.replay_batch_size = checks.integer("strategy.replay_batch_size", replay_batch_size, minimum=1)
        self.policy = checks.choice("strategy.policy", policy, POLICIES)
        self.class_budget = checks.optional_limit("strategy.class_budget", class_budget)
        if self.class_budget is not None and self.policy != "class_balanced":
            raise ConfigError(f"strategy.class_budget={class_budget}: only policy=class_balanced keeps a share per "
                              "class; set it to null with policy=reservoir")
        self.memory = Buffer()

    def __len__(self) -> int:
        return len(self.memory)

    def batch(self, x: torch.Tensor, y: torch.Tensor, task):
        if not len(self.memory):
            return x, y, task
        mx, my, mt = self.memory.gather(self.memory.draw(self.replay_batch_size))
        ids = task if torch.is_tensor(task) else torch.full((len(x),), task, dtype=torch.long, device=x.device)
        return torch.cat([x, mx.to(x.device)]), torch.cat([y, my.to(y.device)]), torch.cat([ids, mt.to(x.device)])

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        def read(idx: torch.Tensor):
            return task_rows(train, task_id, idx)

        if self.policy == "reservoir":  # the task's samples offered in a random order
            self.memory.reservoir(len(train), read, self.memory_size, order=torch.randperm(len(train)))
            return
        y = train.targets()
        ids = torch.full((len(y),), task_id, dtype=torch.long, device=y.device)
        old_y, old_t = (self.memory["y"], self.memory["task"]) if len(self.memory) else (y[:0], ids[:0])
        picks = class_balanced_picks(torch.cat([old_y.to(y.device), y]), torch.cat([old_t.to(y.device), ids]),
                                     self.memory_size, self.class_budget)
        self.memory.keep(picks, read)

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)
