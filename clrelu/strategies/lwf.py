"""Learning without forgetting (Li & Hoiem 2016): distil the previous model's outputs on the new data."""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.streams.base import HeadLayout


def distillation(new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(old/T) || softmax(new/T)), averaged over the batch: zero when the outputs agree."""
    old = F.log_softmax(old_logits / temperature, dim=1)
    new = F.log_softmax(new_logits / temperature, dim=1)
    return temperature ** 2 * F.kl_div(new, old, log_target=True, reduction="batchmean")


class LwF(Strategy):
    """Penalty `alpha * distillation` between the model and a frozen copy taken when the task began.

    Distilled are the outputs for earlier tasks: the heads of tasks 0..t-1 (task scenario), the shared
    head (domain), or the units of the classes seen before task t (class).
    """

    def __init__(self, layout: HeadLayout, alpha: float = 1.0, temperature: float = 2.0):
        super().__init__(layout)
        self.alpha = checks.number("strategy.alpha", alpha, minimum=0)
        self.temperature = checks.number("strategy.temperature", temperature, above=0)
        self.old: ContinualModel | None = None
        self.task_id = 0

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.task_id = task_id
        self.old = None
        if task_id > 0:
            self.old = copy.deepcopy(model).eval()
            self.old.requires_grad_(False)

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if self.old is None:
            return None
        layout = self.layout
        if layout.scenario == "task":
            terms = []
            for old_task in range(self.task_id):
                with torch.no_grad():
                    target = self.old(x, old_task)
                terms.append(distillation(model(x, old_task), target, self.temperature))
            return self.alpha * sum(terms) / len(terms)
        with torch.no_grad():
            target = self.old(x, task)
        logits = model(x, task)
        if layout.scenario == "class":
            seen = layout.units_of(self.task_id - 1).stop  # the units of tasks 0..t-1
            target, logits = target[:, :seen], logits[:, :seen]
        return self.alpha * distillation(logits, target, self.temperature)
