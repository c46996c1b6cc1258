"""Continual backprop (Dohare et al. 2024): replace the least useful mature units of every hidden layer."""

from __future__ import annotations

import math

import torch

from clrelu import checks
from clrelu.measure.plasticity import unit_activity
from clrelu.models.base import ContinualModel
from clrelu.models.units import UnitLayer, reinitialise
from clrelu.strategies.adam_gnt import AdamGnT
from clrelu.strategies.base import Strategy, conv_units_problem, fixed_units_problem, steps_in_words
from clrelu.streams.base import HeadLayout, Split

UTILITIES = ("contribution", "adaptable_contribution")
ADAM_VARIANTS = ("gnt", "adam", "torch")


class ContinualBackprop(Strategy):
    """After every optimizer step, for each hidden layer, as their generate-and-test code does (lop/algos/gnt.py):

    - every unit ages by one; its running mean output f_i <- decay * f_i + (1 - decay) * mean_batch h_i, and its
      utility u_i <- decay * u_i + (1 - decay) * y_i with, per `utility`,
      `contribution` (the Nature paper's Eq. 1): y_i = mean_batch |h_i| * mean_k |w_ik|, or
      `adaptable_contribution` (their permuted MNIST runs): y_i = mean_batch |h_i - f_i / (1 - decay^age_i)| *
      mean_k |w_ik| / mean_j |v_ij|, where h_i is the unit's output in the step's training forward pass (with crelu
      the sum over its two outputs), w_ik its outgoing and v_ij its incoming weights after the step;
    - the layer's accumulator grows by `replacement_rate` times its number of mature units (older than
      `maturity_threshold`); while it is at least 1, the mature unit of lowest utility (divided by 1 - decay^age
      with `bias_correction`, as their code ranks) is replaced: fresh incoming weights as the layer initialises them,
      zero bias, zero outgoing weights, its optimizer state zeroed, utility, mean output and age 0; the accumulator
      drops by 1.

    Under torch's Adam, `adam_variant` gnt (their code) or adam trains with AdamGnT (strategies/adam_gnt.py), whose
    step count is per element, so that a replaced unit's weights restart Adam from step 0; torch keeps the
    optimizer as configured, one step count per tensor. Their code also adds a replaced unit's mean contribution
    to the next layer's bias, after it has zeroed that mean: a no-op, left out here.
    """

    def __init__(self, layout: HeadLayout, replacement_rate: float = 1e-4, decay: float = 0.99,
                 maturity_threshold: int = 100, utility: str = "contribution", bias_correction: bool = True,
                 adam_variant: str = "gnt"):
        super().__init__(layout)
        self.replacement_rate = checks.number("strategy.replacement_rate", replacement_rate, minimum=0, maximum=1)
        self.decay = checks.number("strategy.decay", decay, minimum=0, below=1)
        self.maturity_threshold = checks.integer("strategy.maturity_threshold", maturity_threshold, minimum=0)
        self.utility_kind = checks.choice("strategy.utility", utility, UTILITIES)
        self.bias_correction = checks.boolean("strategy.bias_correction", bias_correction)
        self.adam_variant = checks.choice("strategy.adam_variant", adam_variant, ADAM_VARIANTS)
        self.layers: list[UnitLayer] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.hooks: list = []
        self.outputs: dict[str, torch.Tensor] = {}  # each layer's output in the step's training forward pass
        self.utility: list[torch.Tensor] = []
        self.mean_output: list[torch.Tensor] = []  # per output column, the running mean of its value (f)
        self.age: list[torch.Tensor] = []
        self.accumulated: list[float] = []
        self.replaced: list[int] = []  # units replaced per layer during the current task

    def model_problem(self, model: ContinualModel) -> str | None:
        if not model.unit_layers():
            return "the model has no hidden layer whose units it could replace"
        return fixed_units_problem(model, "replace") or conv_units_problem(model, "replace")

    def adapt_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        if self.adam_variant == "torch" or type(optimizer) is not torch.optim.Adam:
            return optimizer
        return AdamGnT.like(optimizer, self.adam_variant)

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.layers = model.unit_layers()
        if not self.utility:
            device = self.layers[0].incoming.weight.device
            self.utility = [torch.zeros(layer.n_units, device=device) for layer in self.layers]
            self.mean_output = [torch.zeros(layer.n_units * layer.outputs_per_unit, device=device)
                                for layer in self.layers]
            self.age = [torch.zeros(layer.n_units, dtype=torch.long, device=device) for layer in self.layers]
            self.accumulated = [0.0] * len(self.layers)
        self.replaced = [0] * len(self.layers)
        self._remove_hooks()
        self.hooks = [layer.output.register_forward_hook(self._keep(layer.name)) for layer in self.layers]

    def _keep(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name] = output.detach()
        return hook

    def _remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def _new_utility(self, i: int, layer: UnitLayer, h: torch.Tensor) -> torch.Tensor:
        """y_i of every unit of layer i on the step's outputs h (see the class docstring); updates its mean output."""
        outgoing = layer.outgoing_magnitude()
        if self.utility_kind == "contribution":
            return unit_activity(h, layer.n_units).mean(0) * outgoing
        self.mean_output[i].mul_(self.decay).add_(h.mean(0), alpha=1 - self.decay)
        columns_age = self.age[i].repeat(layer.outputs_per_unit)
        corrected = self.mean_output[i] / (1 - self.decay ** columns_age.double()).float()
        incoming = layer.incoming.weight.detach().abs().mean(1)
        return unit_activity(h - corrected, layer.n_units).mean(0) * outgoing / incoming

    @torch.no_grad()
    def after_step(self, model: ContinualModel) -> None:
        if not self.replacement_rate:
            return
        chosen = []
        for i, layer in enumerate(self.layers):  # every utility first, from the weights after the step
            self.age[i] += 1
            new = self._new_utility(i, layer, self.outputs[layer.name])
            self.utility[i].mul_(self.decay).add_(new, alpha=1 - self.decay)
            chosen.append(self._to_replace(i))
        for i, (layer, units) in enumerate(zip(self.layers, chosen)):
            reinitialise(layer, units, self.optimizer)
            self.utility[i][units] = 0
            self.mean_output[i][layer.columns(units)] = 0
            self.age[i][units] = 0
            self.replaced[i] += len(units)

    def _to_replace(self, i: int) -> torch.Tensor:
        mature = (self.age[i] > self.maturity_threshold).nonzero().squeeze(1)
        if not len(mature):
            return mature
        self.accumulated[i] += self.replacement_rate * len(mature)
        count = int(self.accumulated[i])
        if not count:
            return mature[:0]
        self.accumulated[i] -= count
        rank = self.utility[i][mature]
        if self.bias_correction:
            rank = rank / (1 - self.decay ** self.age[i][mature].double()).float()
        return mature[torch.topk(rank, min(count, len(mature)), largest=False).indices]

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        self._remove_hooks()
        self.outputs = {}

    def stats(self) -> dict[str, float]:
        return {f"replaced_l{i}": n for i, n in enumerate(self.replaced)}

    def actions(self) -> int:
        return sum(self.replaced)

    def first_replacement(self, n_units: int, limit: int) -> int | None:
        """The step (counted from 1 over the stream) of a layer of `n_units` units' first replacement, by the same
        arithmetic as `after_step`, or None when it comes after step `limit`."""
        accumulated = 0.0
        for step in range(self.maturity_threshold + 1, limit + 1):  # units are mature once older than the threshold
            accumulated += self.replacement_rate * n_units
            if int(accumulated) >= 1:
                return step
        return None

    def schedule_problem(self, model: ContinualModel, phase_steps: list[int]) -> str | None:
        total = sum(phase_steps)
        if not self.replacement_rate or not model.unit_layers():  # switched off by its own setting
            return None
        widest = max(layer.n_units for layer in model.unit_layers())
        if total <= self.maturity_threshold:
            return (f"strategy.maturity_threshold={self.maturity_threshold}: a unit can be replaced once it is older "
                    f"than {self.maturity_threshold} optimizer steps, and this run has {steps_in_words(phase_steps)}, "
                    "so it never replaces a unit")
        if self.first_replacement(widest, total) is None:
            needed = self.maturity_threshold + math.ceil(1 / (self.replacement_rate * widest))
            return (f"strategy.replacement_rate={self.replacement_rate:g}: with {widest} units in the widest layer, the "
                    f"first replacement comes after about {needed} optimizer steps (maturity_threshold "
                    f"{self.maturity_threshold} + 1 / (rate x units)), and this run has {steps_in_words(phase_steps)}, "
                    "so it never replaces a unit")
        return None

    def state_dict(self) -> dict:
        return {"utility": self.utility, "mean_output": self.mean_output, "age": self.age,
                "accumulated": self.accumulated}

    def load_state_dict(self, state: dict) -> None:
        self.utility, self.age, self.accumulated = state["utility"], state["age"], state["accumulated"]
        self.mean_output = state["mean_output"]
