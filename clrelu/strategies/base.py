"""The hooks the trainer calls on a strategy; each does nothing here, which is plain fine-tuning."""

from __future__ import annotations

import torch

from clrelu.models.base import ContinualModel
from clrelu.streams.base import HeadLayout


class Strategy:
    """A way of training a model on task after task. The trainer does not know strategy names: it calls

    before_task (after model.begin_task) -> use_optimizer -> per step: batch, penalty, after_step -> after_task,

    and saves `state_dict()` in every checkpoint so that a resumed run continues exactly.
    """

    def __init__(self, layout: HeadLayout):
        self.layout = layout

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        """Called before the first step on task `task_id`."""

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Called whenever the trainer builds an optimizer, with it (strategies that re-initialise units reset
        its state for them)."""

    def batch(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor):
        """The batch to train on, given the one drawn from the task's data (replay adds samples here)."""
        return x, y, task

    def penalty(self, model: ContinualModel, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor | None:
        """A term added to the model's loss on this batch, or None."""
        return None

    def after_step(self, model: ContinualModel) -> None:
        """Called after every optimizer step (and after the model's own after_step)."""

    def after_task(self, model: ContinualModel, task_id: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called when training on task `task_id` ends, with its training data."""

    def model_problem(self, model: ContinualModel) -> str | None:
        """Why this strategy cannot train `model` (checked before anything trains), or None."""
        return None

    def stats(self) -> dict[str, float]:
        """Numbers worth recording after each task, beside the model's (model_stats.csv)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


def trainable(model: ContinualModel) -> dict[str, torch.nn.Parameter]:
    """The parameters that currently learn, by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def fixed_units_problem(model: ContinualModel, action: str) -> str | None:
    """The refusal of a strategy that changes weights outside the gradient (`action`) for a model whose
    units must keep their weights, or None."""
    units = model.fixed_units()
    return None if units is None else f"it would {action} {units}"


def weighted_distance(model: ContinualModel, importance: dict[str, torch.Tensor],
                      anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i importance_i * (theta_i - anchor_i)^2 over the named parameters in `importance`
    (the quadratic penalty of EWC and SI)."""
    params = dict(model.named_parameters())
    return sum((weight * (params[name] - anchor[name]).pow(2)).sum() for name, weight in importance.items())
