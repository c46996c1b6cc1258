"""Shrink and perturb: Ash & Adams (2020) at task boundaries, and Dohare et al. (2024)'s per-step variant."""

from __future__ import annotations

import copy

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, fixed_units_problem, trainable
from clrelu.streams.base import HeadLayout


def fresh_parameters(model: ContinualModel) -> dict[str, torch.Tensor]:
    """The parameters of a new initialisation of `model`: every module that can redraws its own."""
    fresh = copy.deepcopy(model)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return {name: p.detach() for name, p in fresh.named_parameters()}


class ShrinkPerturb(Strategy):
    """Two ways of keeping weights small and fresh, on every parameter that learns:

    - at the start of every task, the first included (`shrink_first`),
      `theta <- shrink * theta + perturb * theta_new`, theta_new a new initialisation of the model, and the
      optimizer starts afresh (`fresh_optimizer`: its state is cleared, also when `trainer.reset_optimizer=false`
      keeps one optimizer for the stream): Ash & Adams 2020 and their code (JordanAsh/warm_start, run.py, which
      shrinks before every round, the first included, and builds a new optimizer each round);
    - after every optimizer step, Gaussian noise of std `noise_std` on every parameter the step updated,
      with `weight_decay` added to the optimizer's own (Dohare et al. 2024, lop/algos/bp.py).

    `shrink: 1, perturb: 0` turns the first off (and with it the optimizer reset), `weight_decay: 0, noise_std: 0`
    the second.
    """

    def __init__(self, layout: HeadLayout, shrink: float = 0.4, perturb: float = 0.1, shrink_first: bool = True,
                 fresh_optimizer: bool = True, weight_decay: float = 0.0, noise_std: float = 0.0):
        super().__init__(layout)
        self.shrink = checks.number("strategy.shrink", shrink, minimum=0)
        self.perturb = checks.number("strategy.perturb", perturb, minimum=0)
        self.shrink_first = checks.boolean("strategy.shrink_first", shrink_first)
        self.fresh_optimizer = checks.boolean("strategy.fresh_optimizer", fresh_optimizer)
        self.weight_decay = checks.number("strategy.weight_decay", weight_decay, minimum=0)
        self.noise_std = checks.number("strategy.noise_std", noise_std, minimum=0)
        self.optimizer: torch.optim.Optimizer | None = None
        self.boundary_actions = 0  # shrink-and-perturbs at the start of the current task (0 or 1)

    def model_problem(self, model: ContinualModel) -> str | None:
        return fixed_units_problem(model, "shrink and perturb")

    def schedule_problem(self, model: ContinualModel, phase_steps: list[int]) -> str | None:
        at_boundaries = not (self.shrink == 1 and self.perturb == 0)
        every_step = self.weight_decay or self.noise_std
        if at_boundaries and not self.shrink_first and len(phase_steps) == 1 and not every_step:
            return (f"strategy.shrink={self.shrink:g}, strategy.perturb={self.perturb:g}, strategy.shrink_first=false: "
                    "it shrinks and perturbs at the start of every task after the first, and this run has one task (of "
                    f"{phase_steps[0]} optimizer steps), so it never acts")
        return None

    def actions(self) -> int | None:
        return self.boundary_actions if not (self.shrink == 1 and self.perturb == 0) else None

    @torch.no_grad()
    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.boundary_actions = 0
        if (task_id == 0 and not self.shrink_first) or (self.shrink == 1 and self.perturb == 0):
            return
        self.boundary_actions = 1
        fresh = fresh_parameters(model) if self.perturb else {}
        for name, p in trainable(model).items():
            p.mul_(self.shrink)
            if self.perturb:
                p.add_(fresh[name], alpha=self.perturb)
        if self.fresh_optimizer and self.optimizer is not None:
            self.optimizer.state.clear()  # as a new optimizer with the same settings: no moments, step 0

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["weight_decay"] = group.get("weight_decay", 0.0) + self.weight_decay

    @torch.no_grad()
    def after_step(self, model: ContinualModel) -> None:
        if not self.noise_std:
            return
        for p in trainable(model).values():
            if p.grad is not None:
                p.add_(torch.randn_like(p), alpha=self.noise_std)
