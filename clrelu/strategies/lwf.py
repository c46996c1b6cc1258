"""Learning without forgetting (Li & Hoiem 2016): distil the previous model's outputs on the new data."""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.streams.base import HeadLayout


def distillation(new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float,
                 t_squared: bool = False) -> torch.Tensor:
    """KL(softmax(old/T) || softmax(new/T)), averaged over the batch: zero when the outputs agree.

    It differs from the cross-entropy of the softened outputs (Li & Hoiem's L_old, van de Ven et al.'s
    loss_fn_kd) by the entropy of the old outputs, a constant, so both give the same gradients. With
    `t_squared`, times T^2 (Hinton et al. 2015's correction of the gradient's scale).
    """
    old = F.log_softmax(old_logits / temperature, dim=1)
    new = F.log_softmax(new_logits / temperature, dim=1)
    kl = F.kl_div(new, old, log_target=True, reduction="batchmean")
    return kl * temperature ** 2 if t_squared else kl


class LwF(Strategy):
    """Penalty `alpha * sum over the old tasks of distillation(new outputs, old outputs)`, the old outputs those
    of a frozen copy of the model taken when the task began (Li & Hoiem 2016: lambda_o = alpha).

    The old outputs are the heads of tasks 0..t-1 (task scenario: one term per old head, summed, as in the paper
    and Avalanche), the shared head (domain: one term), or the units of the classes seen before task t (class:
    one term over those units, as Avalanche does).
    """

    def __init__(self, layout: HeadLayout, alpha: float = 1.0, temperature: float = 2.0, t_squared: bool = False):
        super().__init__(layout)
        self.alpha = checks.number("strategy.alpha", alpha, minimum=0)
        self.temperature = checks.number("strategy.temperature", temperature, above=0)
        self.t_squared = checks.boolean("strategy.t_squared", t_squared)
        self.old: ContinualModel | None = None
        self.task_id = 0

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.task_id = task_id
        self.old = None
        if task_id > 0:
            self.old = copy.deepcopy(model).eval()
            self.old.requires_grad_(False)

    def _distill(self, new_logits: torch.Tensor, old_logits: torch.Tensor) -> torch.Tensor:
        return distillation(new_logits, old_logits, self.temperature, self.t_squared)

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if self.old is None:
            return None
        layout = self.layout
        if layout.scenario == "task":
            terms = []
            for old_task in range(self.task_id):
                with torch.no_grad():
                    target = self.old(x, old_task)
                terms.append(self._distill(model(x, old_task), target))
            return self.alpha * sum(terms)
        with torch.no_grad():
            target = self.old(x, task)
        logits = model(x, task)
        if layout.scenario == "class":
            seen = layout.units_of(self.task_id - 1).stop  # the units of tasks 0..t-1
            target, logits = target[:, :seen], logits[:, :seen]
        return self.alpha * self._distill(logits, target)
