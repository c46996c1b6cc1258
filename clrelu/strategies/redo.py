"""ReDo (Sokar et al. 2023): recycle the tau-dormant units of every hidden layer now and then."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.measure.plasticity import dormant_scores, unit_activity
from clrelu.models.base import ContinualModel
from clrelu.models.units import UnitLayer, reinitialise
from clrelu.strategies.base import Strategy, conv_units_problem, fixed_units_problem, steps_in_words
from clrelu.streams.base import HeadLayout, Split


def layer_outputs(model: ContinualModel, layers: list[UnitLayer], x: torch.Tensor, task) -> dict[str, torch.Tensor]:
    """Each hidden layer's outputs on the inputs `x` of tasks `task` (no gradient)."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [layer.output.register_forward_hook(
        lambda module, inputs, output, name=layer.name: outputs.__setitem__(name, output)) for layer in layers]
    try:
        with torch.no_grad():
            model(x, task)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


class ReDo(Strategy):
    """Every `period` optimizer steps (counted over the whole stream), or at the end of every task with
    `period: task`, the units whose dormant score is at most `tau` are recycled: fresh incoming weights
    (as the layer initialises them), zero bias, zero outgoing weights, and their optimizer state zeroed.

    The score is measured on the last `score_samples` training inputs seen, with the current weights
    (ReDo's code scores a batch of 256 samples from the replay buffer).
    """

    def __init__(self, layout: HeadLayout, tau: float = 0.025, period: int | str = 1000, score_samples: int = 256):
        super().__init__(layout)
        self.tau = checks.number("strategy.tau", tau, minimum=0)
        if period != "task" and (isinstance(period, bool) or not isinstance(period, int) or period < 1):
            raise ConfigError(f"strategy.period={period}: must be a number of steps (at least 1) or task")
        self.period = period
        self.score_samples = checks.integer("strategy.score_samples", score_samples, minimum=1)
        self.layers: list[UnitLayer] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps = 0
        self.recent_x: torch.Tensor | None = None    # the last score_samples training inputs, a ring
        self.recent_task: torch.Tensor | None = None  # their task ids
        self.seen = 0  # training inputs offered to the ring so far
        self.recycled: list[int] = []  # units recycled per layer during the current task

    def model_problem(self, model: ContinualModel) -> str | None:
        if not model.unit_layers():
            return "the model has no hidden layer to recycle"
        return fixed_units_problem(model, "recycle") or conv_units_problem(model, "recycle")

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.layers = model.unit_layers()
        self.recycled = [0] * len(self.layers)

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def batch(self, x: torch.Tensor, y: torch.Tensor, task):
        ids = task if torch.is_tensor(task) else torch.full((len(x),), task, dtype=torch.long, device=x.device)
        if self.recent_x is None:
            self.recent_x = x.new_zeros(self.score_samples, *x.shape[1:])
            self.recent_task = ids.new_zeros(self.score_samples)
        keep = min(len(x), self.score_samples)
        slots = (self.seen + torch.arange(len(x) - keep, len(x))) % self.score_samples
        self.recent_x[slots] = x[-keep:].detach()
        self.recent_task[slots] = ids[-keep:]
        self.seen += len(x)
        return x, y, task

    def after_step(self, model: ContinualModel) -> None:
        self.steps += 1
        if self.period != "task" and self.steps % self.period == 0:
            self.recycle(model)

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        if self.period == "task":
            self.recycle(model)

    def dormant_units(self, model: ContinualModel) -> list[torch.Tensor]:
        """Per hidden layer, the indices of its tau-dormant units on the recent training inputs."""
        filled = min(self.seen, self.score_samples)
        outputs = layer_outputs(model, self.layers, self.recent_x[:filled], self.recent_task[:filled])
        return [(dormant_scores(unit_activity(outputs[layer.name], layer.n_units)) <= self.tau).nonzero().squeeze(1)
                for layer in self.layers]

    def recycle(self, model: ContinualModel) -> None:
        if not self.seen:
            return
        for i, (layer, units) in enumerate(zip(self.layers, self.dormant_units(model))):
            reinitialise(layer, units, self.optimizer)
            self.recycled[i] += len(units)

    def stats(self) -> dict[str, float]:
        return {f"recycled_l{i}": n for i, n in enumerate(self.recycled)}

    def actions(self) -> int:
        return sum(self.recycled)

    def schedule_problem(self, model: ContinualModel, phase_steps: list[int]) -> str | None:
        if self.period == "task" or sum(phase_steps) >= self.period:
            return None
        return (f"strategy.period={self.period}: it recycles dormant units every {self.period} optimizer steps, and this "
                f"run has {steps_in_words(phase_steps)}, so it never recycles a unit (strategy.period=task recycles "
                "at the end of every task)")

    def state_dict(self) -> dict:
        return {"steps": self.steps, "recent_x": self.recent_x, "recent_task": self.recent_task, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.seen = state["steps"], state["seen"]
        self.recent_x, self.recent_task = state["recent_x"], state["recent_task"]
