"""Plasticity measures of hidden layers (PLASTICITY.md), as pure functions, and the probe that takes them.

`H` is the m x (n * g) matrix of a hidden layer's outputs on m probe samples (one row a sample), n
its units and g the outputs of each unit (2 with crelu: unit i owns columns i and n + i; else 1).
The unit measures (dead, dormant) read a unit's activity, the sum of the absolute values of its
outputs; the rank measures read H as the next layer sees it.
"""

from __future__ import annotations

import math

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel


def unit_activity(H: torch.Tensor, n_units: int) -> torch.Tensor:
    """m x n: per sample, the sum of the absolute values of each unit's outputs."""
    return H.abs().reshape(len(H), -1, n_units).sum(1)


def dead_fraction(activity: torch.Tensor) -> float:
    """The fraction of units whose every output is exactly 0 on every sample (Dohare et al.)."""
    return (activity.sum(0) == 0).double().mean().item()


def dormant_scores(activity: torch.Tensor) -> torch.Tensor:
    """ReDo's score (Sokar et al. 2023): s_i = mean_x |h_i(x)| / ((1/n) sum_k mean_x |h_k(x)|).

    When every unit is 0 on every sample the layer mean is 0; every score is then 0 (every unit is
    dormant), as ReDo's reference code gives (it divides by the mean plus 1e-9)."""
    per_unit = activity.double().mean(0)
    layer_mean = per_unit.mean()
    return per_unit / layer_mean if layer_mean > 0 else torch.zeros_like(per_unit)


def dormant_fraction(activity: torch.Tensor, tau: float) -> float:
    """The fraction of tau-dormant units: score <= tau (a dead unit is 0-dormant)."""
    return (dormant_scores(activity) <= tau).double().mean().item()


def singular_values(H: torch.Tensor) -> torch.Tensor:
    """The singular values of H in decreasing order, in float64."""
    return torch.linalg.svdvals(H.double())


def effective_rank(sigma: torch.Tensor) -> float:
    """Roy & Vetterli's effective rank, exp(-sum_k p_k log p_k), p_k = sigma_k / sum_j sigma_j, terms with
    p_k = 0 counting 0 (Dohare et al.'s compute_effective_rank). A zero matrix has effective rank 0."""
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return math.exp(-(p * p.log()).sum().item())


def srank(sigma: torch.Tensor, delta: float = 0.01) -> int:
    """Kumar et al. 2021: the smallest k with sum_{i<=k} sigma_i / sum_i sigma_i >= 1 - delta (sigma in
    decreasing order). A zero matrix has srank 0."""
    total = sigma.sum()
    if total <= 0:
        return 0
    share = sigma.sort(descending=True).values.cumsum(0) / total
    return min(int((share < 1 - delta).sum().item()) + 1, len(sigma))  # min: rounding when delta is 0


def weight_magnitude(weight: torch.Tensor) -> float:
    """The mean absolute value of a layer's weights (its incoming weight matrix, without the bias)."""
    return weight.detach().abs().double().mean().item()


def probe_indices(n: int, size: int) -> torch.Tensor:
    """`size` sample indices spread evenly over 0..n-1 (all of them when n <= size): the same every time, and
    drawing no random numbers, so that measuring changes nothing in a run."""
    if n <= size:
        return torch.arange(n)
    return torch.linspace(0, n - 1, size, dtype=torch.float64).round().long()


class PlasticityProbe:
    """Measures every hidden layer of a model on probe inputs, with forward hooks on `model.unit_layers()`."""

    def __init__(self, model: ContinualModel, probe_size: int = 2000, tau: float = 0.025, delta: float = 0.01):
        self.model = model
        self.probe_size = checks.integer("plasticity.probe_size", probe_size, minimum=1)
        self.tau = checks.number("plasticity.tau", tau, minimum=0)
        self.delta = checks.number("plasticity.delta", delta, minimum=0, below=1)

    @torch.inference_mode()
    def measure(self, x: torch.Tensor, task_id: int) -> list[dict]:
        """One row per hidden layer: the measures of its outputs on the probe inputs `x` of task `task_id`."""
        layers = self.model.unit_layers()
        outputs: dict[str, torch.Tensor] = {}
        hooks = [layer.output.register_forward_hook(
            lambda module, inputs, output, name=layer.name: outputs.__setitem__(name, output)) for layer in layers]
        was_training = self.model.training
        self.model.eval()
        try:
            self.model(x, task_id)
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)
        rows = []
        for layer in layers:
            if layer.name not in outputs:  # a layer this task's forward pass does not use
                continue
            H = outputs[layer.name].float()
            activity = unit_activity(H, layer.n_units)
            sigma = singular_values(H)
            rows.append({"task": task_id, "layer": layer.name, "dead_fraction": dead_fraction(activity),
                         "dormant_fraction": dormant_fraction(activity, self.tau),
                         "effective_rank": effective_rank(sigma), "srank": srank(sigma, self.delta),
                         "weight_magnitude": weight_magnitude(layer.incoming.weight)})
        return rows
