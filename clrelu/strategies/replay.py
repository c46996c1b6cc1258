"""Experience replay: a bounded memory of earlier samples, mixed into every training batch."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
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

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        picks = self._reservoir(len(train)) if self.policy == "reservoir" else self._class_balanced(train, task_id)
        self._keep(picks, train, task_id)

    def _reservoir(self, n: int) -> torch.Tensor:
        """Algorithm R over the task's `n` samples in a random order: the new memory, as positions in the old
        memory followed by the task's samples."""
        old = len(self)
        slots = list(range(old))
        for i in torch.randperm(n).tolist():
            self.seen += 1
            if len(slots) < self.memory_size:
                slots.append(old + i)
            else:
                slot = int(torch.randint(self.seen, ()))
                if slot < self.memory_size:
                    slots[slot] = old + i
        return torch.tensor(slots, dtype=torch.long)

    def _class_balanced(self, train: Split, task_id: int) -> torch.Tensor:
        """Pool the memory and the task's samples, then keep an equal share of each class, drawn at random: the
        new memory, as positions in that pool (the old memory, then the task's samples)."""
        y = train.targets()
        ids = torch.full((len(y),), task_id, dtype=torch.long, device=y.device)
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
        return torch.cat(keep).cpu()

    def _keep(self, picks: torch.Tensor, train: Split, task_id: int) -> None:
        """Make the memory the samples at `picks` of the old memory followed by the task's samples, reading from
        the task only the samples kept."""
        old = len(self)
        new = picks >= old
        x, y = train.gather(picks[new] - old)
        task = torch.full((len(y),), task_id, dtype=torch.long, device=y.device)
        if old:
            x, y, task = torch.cat([self.x, x]), torch.cat([self.y, y]), torch.cat([self.task, task])
        at = picks.clone()
        at[new] = old + torch.arange(int(new.sum()))  # where each kept task sample now sits in x
        at = at.to(x.device)
        self.x, self.y, self.task = x[at], y[at], task[at]

    def state_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "task": self.task, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.x, self.y, self.task, self.seen = state["x"], state["y"], state["task"], state["seen"]
