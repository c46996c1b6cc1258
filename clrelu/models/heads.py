"""Output heads for every scenario: one per task (task), one shared (domain), one masked to seen classes (class)."""

from __future__ import annotations

import torch
from torch import nn

from clrelu.models.layers import make_activation, output_width
from clrelu.streams.base import HeadLayout


def route_by_task(x: torch.Tensor, task: torch.Tensor, width: int, answer) -> torch.Tensor:
    """The outputs for a batch of mixed tasks: `answer(rows, t)` for the rows of each task t, put back in order."""
    out = x.new_empty(len(x), width)
    for t in task.unique().tolist():
        rows = task == t
        out[rows] = answer(x[rows], t)
    return out


class Heads(nn.Module):
    """The output layer of a model, laid out for its stream's scenario.

    Each head is a linear layer, or with `tower_hidden` a small tower (linear, activation, linear).
    In the class scenario the layout's `active_classes` says which units are active; the others get a
    logit of -inf, so they are never predicted and get no gradient:

    - seen: the units of tasks added with `add_task`, in training and in evaluation;
    - all: every unit of the stream, always (van de Ven et al. 2022's code: active classes "all");
    - seen_in_training: the added tasks' units, except in evaluation (forward passes under
      torch.inference_mode, as the trainer evaluates), which uses every unit (Hsu et al. 2018's code:
      the loss and the Fisher use the first valid_out_dim outputs, validation takes the argmax of all).
    """

    def __init__(self, in_features: int, layout: HeadLayout, tower_hidden: int | None = None,
                 activation: str = "relu"):
        super().__init__()
        self.layout = layout

        def head() -> nn.Module:
            if tower_hidden is None:
                return nn.Linear(in_features, layout.head_width)
            return nn.Sequential(nn.Linear(in_features, tower_hidden), make_activation(activation),
                                 nn.Linear(output_width(activation, tower_hidden), layout.head_width))

        self.layers = nn.ModuleList(head() for _ in range(layout.n_heads))
        self.register_buffer("active", torch.zeros(layout.head_width, dtype=torch.bool))
        self.register_buffer("added", torch.zeros(layout.n_tasks, dtype=torch.bool))

    def add_task(self, task_id: int) -> None:
        """Make task `task_id` known: in the class scenario, switch its units on."""
        self.added[task_id] = True
        if self.layout.scenario == "class":
            units = self.layout.units_of(task_id)
            self.active[units.start:units.stop] = True

    def knows(self, task_id: int) -> bool:
        """Whether the heads can answer for task `task_id` (the class scenario with `seen`: once it was added)."""
        return self.layout.scenario != "class" or self.layout.active_classes != "seen" or bool(self.added[task_id])

    def _masked(self) -> bool:
        """Whether the units of tasks not added yet get -inf in this forward pass."""
        active = self.layout.active_classes
        return active == "seen" or (active == "seen_in_training" and not torch.is_inference_mode_enabled())

    def forward(self, features: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """Logits for a batch whose samples all belong to task `task`, or to the tasks in tensor `task`."""
        if self.layout.scenario == "task":
            if isinstance(task, int):
                return self.layers[task](features)
            return route_by_task(features, task, self.layout.head_width, lambda rows, t: self.layers[t](rows))
        logits = self.layers[0](features)
        if self.layout.scenario == "class" and self._masked():
            logits = logits.masked_fill(~self.active, float("-inf"))
        return logits
