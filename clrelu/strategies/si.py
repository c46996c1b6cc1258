"""Synaptic intelligence (Zenke et al. 2017): importance from each parameter's path integral of the loss."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable, weighted_distance
from clrelu.streams.base import HeadLayout


class SI(Strategy):
    """Penalty `c * sum_i Omega_i (theta_i - theta*_i)^2`.

    While a task trains, omega_i accumulates -g_i * delta_i over the optimizer steps (g the gradient
    of the training loss, delta the step's change of theta_i). When the task ends,
    Omega_i += omega_i / (Delta_i^2 + epsilon), with Delta_i the change of theta_i over the whole
    task, and theta* becomes the current parameters.
    """

    def __init__(self, layout: HeadLayout, c: float = 300.0, epsilon: float = 0.1):
        super().__init__(layout)
        self.c = checks.number("strategy.c", c, minimum=0)
        self.epsilon = checks.number("strategy.epsilon", epsilon, above=0)
        self.omega: dict[str, torch.Tensor] = {}       # importance so far (Omega)
        self.anchor: dict[str, torch.Tensor] = {}      # theta*: parameters when the last task ended
        self.path: dict[str, torch.Tensor] = {}        # omega of the task in training
        self.start: dict[str, torch.Tensor] = {}       # parameters when the task began
        self.previous: dict[str, torch.Tensor] = {}    # parameters after the last step

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        params = trainable(model)
        self.start = {name: p.detach().clone() for name, p in params.items()}
        self.previous = {name: p.detach().clone() for name, p in params.items()}
        self.path = {name: torch.zeros_like(p) for name, p in params.items()}

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if not self.omega:
            return None
        return self.c * weighted_distance(model, self.omega, self.anchor)

    @torch.no_grad()
    def after_step(self, model: ContinualModel) -> None:
        for name, p in trainable(model).items():
            if p.grad is not None and name in self.path:
                self.path[name] -= p.grad * (p - self.previous[name])
            self.previous[name] = p.detach().clone()

    @torch.no_grad()
    def after_task(self, model: ContinualModel, task_id: int, x: torch.Tensor, y: torch.Tensor) -> None:
        params = trainable(model)
        for name, path in self.path.items():
            delta = params[name] - self.start[name] if name in params else torch.zeros_like(path)
            importance = path / (delta.pow(2) + self.epsilon)
            self.omega[name] = self.omega.get(name, torch.zeros_like(path)) + importance
        self.anchor = {name: p.detach().clone() for name, p in dict(model.named_parameters()).items()
                       if name in self.omega}

    def state_dict(self) -> dict:
        return {"omega": self.omega, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.omega, self.anchor = state["omega"], state["anchor"]
