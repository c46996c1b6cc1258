"""An example of a new strategy: L2 regularisation toward the weights the previous task ended with.

The baseline beside EWC in Kirkpatrick et al. (2017, figure 2A): every parameter is pulled back to where the last
task left it, all with the same strength, where EWC weighs each by its Fisher information.
"""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable
from clrelu.streams.base import HeadLayout, Split


class L2Previous(Strategy):
    """Penalty `l2_lambda * ||theta - theta*||^2` over every parameter that learns, theta* its value at the end of
    the previous task; no penalty while the first task trains."""

    def __init__(self, layout: HeadLayout, l2_lambda: float = 1.0):
        super().__init__(layout)
        self.l2_lambda = checks.number("strategy.l2_lambda", l2_lambda, minimum=0)
        self.anchor: dict[str, torch.Tensor] = {}

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters()}

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        terms = [(p - self.anchor[name]).pow(2).sum() for name, p in trainable(model).items() if name in self.anchor]
        return self.l2_lambda * sum(terms) if terms else None

    def state_dict(self) -> dict:
        return {"anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.anchor = state["anchor"]
