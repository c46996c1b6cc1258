"""Synaptic intelligence (Zenke et al. 2017): importance from each parameter's path integral of the loss."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import CurvatureCap, Strategy, trainable, weighted_distance
from clrelu.streams.base import HeadLayout, Split

PATH_GRADIENTS = ("task_loss", "total_loss")


class SI(Strategy):
    """Penalty `c * sum_i Omega_i (theta_i - theta*_i)^2`.

    While a task trains, omega_i accumulates -g_i * delta_i over the optimizer steps, delta the step's change of
    theta_i and g the gradient of the task loss alone (`path_gradient: task_loss`, Zenke et al.'s unreg_grads,
    as in Hsu et al.'s code), or of the loss with the penalty (`total_loss`, van de Ven et al.'s code). The
    penalty's gradient 2 c Omega (theta - theta*) is subtracted from the step's gradient, which leaves the task
    loss's exactly, without a second backward pass. When the task ends, Omega_i += omega_i / (Delta_i^2 +
    epsilon), Delta_i the change of theta_i over the whole task, and with `clip_importance` Omega_i is then
    clipped at 0 (Zenke et al.'s code: relu(Omega + ...)); theta* becomes the current parameters.
    `max_curvature` caps each parameter's penalty curvature 2 c Omega_i (see base.CurvatureCap).
    """

    def __init__(self, layout: HeadLayout, c: float = 300.0, epsilon: float = 0.1, clip_importance: bool = True,
                 path_gradient: str = "task_loss", max_curvature="auto"):
        super().__init__(layout)
        self.c = checks.number("strategy.c", c, minimum=0)
        self.epsilon = checks.number("strategy.epsilon", epsilon, above=0)
        self.clip_importance = checks.boolean("strategy.clip_importance", clip_importance)
        self.path_gradient = checks.choice("strategy.path_gradient", path_gradient, PATH_GRADIENTS)
        self.cap = CurvatureCap("si", max_curvature)
        self.omega: dict[str, torch.Tensor] = {}       # importance so far (Omega)
        self.anchor: dict[str, torch.Tensor] = {}      # theta*: parameters when the last task ended
        self.path: dict[str, torch.Tensor] = {}        # omega of the task in training
        self.start: dict[str, torch.Tensor] = {}       # parameters when the task began
        self.previous: dict[str, torch.Tensor] = {}    # parameters after the last step
        self._effective: dict[str, torch.Tensor] | None = None  # c * Omega, capped: what the penalty uses

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if self.cap.use_optimizer(optimizer):
            self._effective = None

    def _importance(self) -> dict[str, torch.Tensor]:
        if self._effective is None:
            importance = {name: self.c * omega for name, omega in self.omega.items()}
            factors = self.cap.factors({name: 2 * w for name, w in importance.items()})
            self._effective = {name: w * factors[name] if name in factors else w for name, w in importance.items()}
        return self._effective

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        params = trainable(model)
        self.start = {name: p.detach().clone() for name, p in params.items()}
        self.previous = {name: p.detach().clone() for name, p in params.items()}
        self.path = {name: torch.zeros_like(p) for name, p in params.items()}

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if not self.omega:
            return None
        return weighted_distance(model, self._importance(), self.anchor)

    @torch.no_grad()
    def after_step(self, model: ContinualModel) -> None:
        importance = self._importance() if self.omega and self.path_gradient == "task_loss" else {}
        for name, p in trainable(model).items():
            if p.grad is not None and name in self.path:
                g = p.grad
                if name in importance:  # the gradient the penalty added at the step's starting point
                    g = g - 2 * importance[name] * (self.previous[name] - self.anchor[name])
                self.path[name] -= g * (p - self.previous[name])
            self.previous[name] = p.detach().clone()

    @torch.no_grad()
    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        params = trainable(model)
        for name, path in self.path.items():
            delta = params[name] - self.start[name] if name in params else torch.zeros_like(path)
            omega = self.omega.get(name, torch.zeros_like(path)) + path / (delta.pow(2) + self.epsilon)
            self.omega[name] = omega.clamp(min=0) if self.clip_importance else omega
        self.anchor = {name: p.detach().clone() for name, p in dict(model.named_parameters()).items()
                       if name in self.omega}
        self._effective = None

    def state_dict(self) -> dict:
        return {"omega": self.omega, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.omega, self.anchor = state["omega"], state["anchor"]
        self._effective = None
