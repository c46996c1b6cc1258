"""Averaged gradient episodic memory (Chaudhry et al. 2019): project the gradient away from increasing the average
loss of a memory sample."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer, task_rows
from clrelu.strategies.gradients import current_gradient, learning_parameters, loss_gradient, write_gradient
from clrelu.streams.base import HeadLayout, Split


def agem_projection(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """g when g . g_ref >= 0, else g - (g . g_ref / g_ref . g_ref) g_ref (A-GEM's equation 11)."""
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref)) * g_ref


class AGEM(Strategy):
    """After each task, keep `memory_size` of its training samples, an equal share of each of its classes; at every
    step after the first task, compute the reference gradient g_ref of the mean loss on `sample_size` memory samples
    drawn without replacement, and when the batch's gradient g has g . g_ref < 0, step along its projection
    g - (g . g_ref / g_ref . g_ref) g_ref instead.
    """

    regimes = ("sequential",)

    def __init__(self, layout: HeadLayout, memory_size: int = 250, sample_size: int = 256):
        super().__init__(layout)
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.sample_size = checks.integer("strategy.sample_size", sample_size, minimum=1)
        self.memory = Buffer()
        self.projected = 0  # steps whose gradient was projected, this task

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.projected = 0

    def after_backward(self, model: ContinualModel) -> None:
        if not len(self.memory):
            return
        params = learning_parameters(model)
        x, y, task = self.memory.gather(self.memory.draw_distinct(self.sample_size))
        g_ref = loss_gradient(model.loss_and_logits(x, y, task)[0], params)
        g = current_gradient(params)
        projected = agem_projection(g, g_ref)
        if projected is not g:
            self.projected += 1
            write_gradient(projected, params)

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        picks = per_class_share(train.targets().cpu(), self.memory_size)
        self.memory.keep(torch.arange(len(self.memory) + len(picks)), task_rows(train, task_id, picks))

    def stats(self) -> dict[str, float]:
        return {"agem_projected_steps": float(self.projected)}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "projected": self.projected}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.projected = state["projected"]


def per_class_share(y: torch.Tensor, size: int) -> torch.Tensor:
    """`size` positions of `y`, an equal share of each of its classes drawn at random (the first classes one more
    when it does not divide; a class with fewer samples gives them all)."""
    classes = torch.unique(y)
    share, extra = divmod(size, len(classes))
    picks = []
    for k, c in enumerate(classes.tolist()):
        members = (y == c).nonzero().squeeze(1)
        picks.append(members[torch.randperm(len(members))][:share + (1 if k < extra else 0)])
    return torch.cat(picks)
