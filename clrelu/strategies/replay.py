"""Experience replay: a bounded memory of earlier samples, mixed into every training batch."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.streams.base import HeadLayout

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
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.task: torch.Tensor | None = None
        self.seen = 0  # training samples offered to the reservoir so far

    def __len__(self) -> int:
        return 0 if self.x is None else len(self.x)

    def batch(self, x: torch.Tensor, y: torch.Tensor, task):
        if not len(self):
            return x, y, task
        pick = torch.randint(len(self), (self.replay_batch_size,)).to(self.x.device)
        ids = task if torch.is_tensor(task) else torch.full((len(x),), task, dtype=torch.long, device=x.device)
        return torch.cat([x, self.x[pick]]), torch.cat([y, self.y[pick]]), torch.cat([ids, self.task[pick]])

    def after_task(self, model: ContinualModel, task_id: int, x: torch.Tensor, y: torch.Tensor) -> None:
        ids = torch.full((len(x),), task_id, dtype=torch.long, device=x.device)
        if self.policy == "reservoir":
            self._reservoir(x, y, ids)
        else:
            self._class_balanced(x, y, ids)

    def _reservoir(self, x, y, ids) -> None:
        """Algorithm R over the task's samples in a random order."""
        order = torch.randperm(len(x)).tolist()
        keep_x = [] if self.x is None else list(self.x)
        keep_y = [] if self.y is None else list(self.y)
        keep_t = [] if self.task is None else list(self.task)
        for i in order:
            self.seen += 1
            if len(keep_x) < self.memory_size:
                keep_x.append(x[i]), keep_y.append(y[i]), keep_t.append(ids[i])
            else:
                slot = int(torch.randint(self.seen, ()))
                if slot < self.memory_size:
                    keep_x[slot], keep_y[slot], keep_t[slot] = x[i], y[i], ids[i]
        self.x, self.y, self.task = torch.stack(keep_x), torch.stack(keep_y), torch.stack(keep_t)

    def _class_balanced(self, x, y, ids) -> None:
        """Pool the memory and the task's samples, then keep an equal share of each class, drawn at random."""
        pool_x = x if self.x is None else torch.cat([self.x, x])
        pool_y = y if self.y is None else torch.cat([self.y, y])
        pool_t = ids if self.task is None else torch.cat([self.task, ids])
        classes = torch.unique(torch.stack([pool_t, pool_y], 1), dim=0)
        share, extra = divmod(self.memory_size, len(classes))
        if self.class_budget is not None and share >= self.class_budget:
            share, extra = self.class_budget, 0
        keep = []
        for k, (t, label) in enumerate(classes.tolist()):
            members = ((pool_t == t) & (pool_y == label)).nonzero().squeeze(1)
            members = members[torch.randperm(len(members)).to(members.device)]
            keep.append(members[:share + (1 if k < extra else 0)])
        keep = torch.cat(keep)
        self.x, self.y, self.task = pool_x[keep], pool_y[keep], pool_t[keep]

    def state_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "task": self.task, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.x, self.y, self.task, self.seen = state["x"], state["y"], state["task"], state["seen"]
