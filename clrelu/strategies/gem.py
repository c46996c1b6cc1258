"""Gradient episodic memory (Lopez-Paz & Ranzato 2017): the step closest to the batch's gradient that increases no
earlier task's memory loss, by a quadratic program (quadprog, the `gem` extra)."""

from __future__ import annotations

import numpy as np
import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer, task_rows
from clrelu.strategies.gradients import current_gradient, learning_parameters, loss_gradient, write_gradient
from clrelu.streams.base import HeadLayout, Split

try:
    import quadprog
except ImportError:  # the `gem` extra is not installed: GEM refuses to start
    quadprog = None


def gem_projection(g: torch.Tensor, memories: torch.Tensor, margin: float, eps: float = 1e-3) -> torch.Tensor:
    """The reference code's project2cone2: solve the dual QP min_v 1/2 v'(G G' + eps I) v + (G g)' v subject to
    v >= margin (G: one row per earlier task's gradient), and return g + G' v, in float64 as their code does."""
    G = memories.double().cpu().numpy()
    gradient = g.double().cpu().numpy()
    t = G.shape[0]
    P = G @ G.T
    P = 0.5 * (P + P.T) + np.eye(t) * eps
    q = -(G @ gradient)
    v = quadprog.solve_qp(P, q, np.eye(t), np.zeros(t) + margin)[0]
    return torch.from_numpy(v @ G + gradient).to(g.dtype).to(g.device)


class GEM(Strategy):
    """After each task, keep `memory_size` of its training samples, drawn at random; at every step after the first
    task, compute the gradient of the loss on each earlier task's memory, and when the batch's gradient g has a
    negative dot product with any of them, step along the solution of GEM's quadratic program instead (its dual,
    with the paper's margin `memory_strength` on the multipliers)."""

    regimes = ("sequential",)

    def __init__(self, layout: HeadLayout, memory_size: int = 256, memory_strength: float = 0.5):
        super().__init__(layout)
        if quadprog is None:
            raise ConfigError("strategy=gem needs the quadprog package: pip install 'clrelu[gem]'")
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.memory_strength = checks.number("strategy.memory_strength", memory_strength, minimum=0)
        self.memory = Buffer()
        self.tasks: list[int] = []  # the tasks in the memory, in the order learned
        self.projected = 0

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.projected = 0

    def after_backward(self, model: ContinualModel) -> None:
        if not self.tasks:
            return
        params = learning_parameters(model)
        g = current_gradient(params)
        memories = []
        for t in self.tasks:
            x, y, task = self.memory.gather(self.memory.positions_of_task(t))
            memories.append(loss_gradient(model.loss_and_logits(x, y, task)[0], params))
        memories = torch.stack(memories)
        if (memories @ g < 0).any():
            self.projected += 1
            write_gradient(gem_projection(g, memories, self.memory_strength), params)

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        picks = torch.randperm(len(train))[:self.memory_size]
        self.memory.keep(torch.arange(len(self.memory) + len(picks)), task_rows(train, task_id, picks))
        self.tasks.append(task_id)

    def stats(self) -> dict[str, float]:
        return {"gem_projected_steps": float(self.projected)}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "tasks": list(self.tasks), "projected": self.projected}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.tasks, self.projected = list(state["tasks"]), state["projected"]
