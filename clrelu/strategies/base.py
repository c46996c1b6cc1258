"""The hooks the trainer calls on a strategy; each does nothing here, which is plain fine-tuning."""

from __future__ import annotations

import logging

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.streams.base import SCENARIOS, HeadLayout, Split

log = logging.getLogger(__name__)


class Strategy:
    """A way of training a model on task after task. The trainer does not know strategy names: it calls

    before_task (after model.begin_task) -> phase_data -> adapt_optimizer, use_optimizer -> per step: before_step,
    batch, loss_and_logits, penalty, after_backward, after_step -> after_task, and eval_logits for every evaluated
    batch,

    (adapt_optimizer and use_optimizer only when the trainer builds an optimizer: every task, or once with
    `trainer.reset_optimizer=false`), and saves `state_dict()` in every checkpoint so that a resumed run
    continues exactly.

    `scenarios`, `regimes` and `models` (model config names; None: any) are what the strategy serves; a run asking
    for anything else is refused before anything is built.
    """

    scenarios: tuple[str, ...] = SCENARIOS
    regimes: tuple[str, ...] = ("sequential", "cumulative", "joint")
    models: tuple[str, ...] | None = None

    def __init__(self, layout: HeadLayout):
        self.layout = layout

    def phase_data(self, data):
        """The samples a phase trains on, given its own (anything with `len` and `gather(idx) -> (x, y, task)`): the
        same by default; None: the trainer takes no step on the stream (the strategy learns in after_task)."""
        return data

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        """Called before the first step on task `task_id`."""

    def adapt_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """The optimizer to train with, given the one the trainer built from the config, before any step or loaded
        state: that one by default (continual backprop trains torch's Adam as Dohare et al.'s AdamGnT)."""
        return optimizer

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Called whenever the trainer builds an optimizer, with it (strategies that re-initialise units reset
        its state for them)."""

    def before_step(self, model: ContinualModel, epoch_fraction: float) -> None:
        """Called before every training step, with the share of the current pass over the phase's samples that the
        earlier batches of this pass took (0 for the first batch of every epoch; HAT anneals its gates with it)."""

    def batch(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor):
        """The batch to train on, given the one drawn from the task's data (replay adds samples here).

        The drawn samples must come first, in their order: the trainer's online accuracy reads them there.
        """
        return x, y, task

    def loss_and_logits(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor,
                        task: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of a batch as `batch` returned it, and the logits whose first rows answer the samples
        drawn from the stream (the trainer's online accuracy reads them): the model's own by default."""
        return model.loss_and_logits(x, y, task)

    def eval_logits(self, model: ContinualModel, x: torch.Tensor, task_id: int) -> torch.Tensor | None:
        """Scores whose argmax is the prediction on an evaluation batch of task `task_id` (iCaRL's nearest mean of
        exemplars), or None: the model's own outputs. Called under inference mode, after `model.eval()`."""
        return None

    def penalty(self, model: ContinualModel, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor | None:
        """A term added to the model's loss on this batch, or None."""
        return None

    def after_backward(self, model: ContinualModel) -> None:
        """Called between the backward pass and the optimizer step: the gradients are in `p.grad`, to project or
        mask (gradient episodic memories, masks of parameters that belong to earlier tasks)."""

    def after_step(self, model: ContinualModel) -> None:
        """Called after every optimizer step (and after the model's own after_step)."""

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        """Called when training on task `task_id` ends, with its training data (read it in chunks, or gather
        the samples needed)."""

    def model_problem(self, model: ContinualModel) -> str | None:
        """Why this strategy cannot train `model` (checked before anything trains), or None."""
        return None

    def stats(self) -> dict[str, float]:
        """Numbers worth recording after each task, beside the model's (model_stats.csv)."""
        return {}

    def actions(self) -> int | None:
        """How many times the strategy changed the model outside the gradient during the task that just ended (units
        recycled or replaced, a shrink and perturb), summed into summary.csv's `strategy_actions`; None for a
        strategy without such actions."""
        return None

    def schedule_problem(self, model: ContinualModel, phase_steps: list[int]) -> str | None:
        """Why this strategy, with its settings, can never act in a run whose phases (tasks) have `phase_steps`
        optimizer steps each, naming the key to change and the run's number of steps; None when it can. The run
        prints it as a warning before training."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


def steps_in_words(phase_steps: list[int]) -> str:
    """The optimizer steps of a run, for a message: "40 steps (5 tasks x 8)"."""
    total = sum(phase_steps)
    if len(set(phase_steps)) == 1:
        return f"{total} steps ({len(phase_steps)} tasks x {phase_steps[0]})"
    return f"{total} steps ({len(phase_steps)} tasks, {min(phase_steps)} to {max(phase_steps)} each)"


def trainable(model: ContinualModel) -> dict[str, torch.nn.Parameter]:
    """The parameters that currently learn, by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def fixed_units_problem(model: ContinualModel, action: str) -> str | None:
    """The refusal of a strategy that changes weights outside the gradient (`action`) for a model whose
    units must keep their weights, or None."""
    units = model.fixed_units()
    return None if units is None else f"it would {action} {units}"


def conv_units_problem(model: ContinualModel, action: str) -> str | None:
    """The refusal of a strategy that re-initialises units (`action`) for a model with conv layers, whose channels
    clrelu does not re-initialise (models/units.py), or None."""
    if not model.channel_layers():
        return None
    return (f"it would {action} only the fully connected units, and clrelu does not re-initialise the channels of "
            "a conv trunk; use model.trunk=mlp")


def weighted_distance(model: ContinualModel, importance: dict[str, torch.Tensor],
                      anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i importance_i * (theta_i - anchor_i)^2 over the named parameters in `importance`
    (the quadratic penalty of EWC and SI)."""
    params = dict(model.named_parameters())
    return sum((weight * (params[name] - anchor[name]).pow(2)).sum() for name, weight in importance.items())


def sgd_curvature_limit(optimizer: torch.optim.Optimizer) -> float | None:
    """Half the largest curvature of a quadratic on which the optimizer's steps stay stable, for plain SGD;
    None for any other optimizer.

    SGD with learning rate lr, momentum b and dampening d is stable on a quadratic of curvature k iff
    lr (1 - d) k < 2 (1 + b) (heavy-ball momentum, Polyak 1964), or < 2 (1 + b) / (1 + 2 b) with Nesterov
    momentum. Adaptive optimizers (Adam, AdamW, RMSprop, Adagrad, ...) keep each step within about lr whatever
    the curvature, so a stiff penalty makes them oscillate around its anchor but never diverge.
    """
    if type(optimizer) is not torch.optim.SGD:
        return None
    limits = []
    for group in optimizer.param_groups:
        b = group["momentum"]
        step = group["lr"] * (1 - group["dampening"] if b > 0 else 1)
        bound = 2 * (1 + b) / (1 + 2 * b) if group["nesterov"] else 2 * (1 + b)
        if step > 0:
            limits.append(bound / 2 / step)
    return min(limits, default=None)


class CurvatureCap:
    """A cap on the curvature a quadratic penalty has in each parameter (2 x its importance), so that the default
    optimizer cannot diverge on a stiff penalty (config key `strategy.max_curvature`).

    `auto`: under plain SGD, half the stability limit of `sgd_curvature_limit` (the other half leaves room for
    the task loss's own curvature), and no cap under other optimizers; a number: that cap; null: no cap (as the
    papers). Where it binds, the parameter's importance is scaled down to the cap, and the run's log says so.
    """

    def __init__(self, strategy: str, setting):
        self.strategy = strategy
        if setting is not None and setting != "auto":
            setting = checks.number("strategy.max_curvature", setting, above=0)
        self.setting = setting
        self.limit = None if setting in (None, "auto") else setting

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> bool:
        """Take the limit from the optimizer (with `auto`); whether the limit changed."""
        if self.setting != "auto":
            return False
        limit = sgd_curvature_limit(optimizer)
        changed, self.limit = limit != self.limit, limit
        return changed

    def factors(self, curvature: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per parameter whose curvature exceeds the cap somewhere, the factor (<= 1) that brings it to the cap."""
        if self.limit is None:
            return {}
        factors, capped, total = {}, 0, 0
        for name, k in curvature.items():
            over = k > self.limit
            total += k.numel()
            if over.any():
                factors[name] = torch.where(over, self.limit / k, torch.ones_like(k))
                capped += int(over.sum())
        if capped:
            log.info("%s: penalty curvature capped at %.4g (strategy.max_curvature) in %d of %d parameters",
                     self.strategy, self.limit, capped, total)
        return factors
