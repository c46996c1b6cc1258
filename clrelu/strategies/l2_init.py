"""L2 Init (Kumar, Marklund & Van Roy 2023): regularisation toward the parameters at initialisation."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable
from clrelu.streams.base import HeadLayout


class L2Init(Strategy):
    """Penalty `l2_lambda * ||theta - theta_0||^2` over every parameter that learns, theta_0 its value at
    initialisation (taken when the parameter is first seen, before the first task trains)."""

    def __init__(self, layout: HeadLayout, l2_lambda: float = 1e-3):
        super().__init__(layout)
        self.l2_lambda = checks.number("strategy.l2_lambda", l2_lambda, minimum=0)
        self.initial: dict[str, torch.Tensor] = {}

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        for name, p in model.named_parameters():
            if name not in self.initial:
                self.initial[name] = p.detach().clone()

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        terms = [(p - self.initial[name]).pow(2).sum() for name, p in trainable(model).items() if name in self.initial]
        return self.l2_lambda * sum(terms) if terms else None

    def state_dict(self) -> dict:
        return {"initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        self.initial = state["initial"]
