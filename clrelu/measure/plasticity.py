"""Plasticity measures of hidden layers (PLASTICITY.md), as pure functions, and the probe that takes them.

`H` is the m x (n * g) matrix of a hidden layer's outputs on m probe samples (one row a sample), n
its units and g the outputs of each unit (2 with crelu: unit i owns columns i and n + i; else 1).
The unit measures (dead, dormant) read a unit's activity, the sum of the absolute values of its
outputs; the rank measures read H as the next layer sees it, both from the one forward pass of the
probe. H's singular values come from its Gram matrix in float64 (an SVD only when some are too small
for that): the effective rank and srank of an SVD to 1e-6, at a fraction of its cost. On the CPU numpy forms
that matrix and its eigenvalues: its BLAS makes a Gram matrix by one symmetric rank-k update, half the
products of torch's general matrix product, and with its LAPACK the pair takes 12.7 ms for a 2,000 x 400 H
on one thread against torch's 22 ms (a run gives numpy's BLAS as many threads as torch: training/experiment.py).

A convolutional layer's unit is a channel (maps m x (n * g) x P, P positions): a unit's activity on a
sample is the sum of the absolute values of its outputs at every position, and the rank measures read
the (m * P) x (n * g) matrix whose rows are the (sample, position) pairs, the channels as the next
convolution sees them at one position. Its singular values are the square roots of the eigenvalues of
the channels' n*g x n*g Gram matrix, summed in float64 over chunks of samples, so that the measures
never hold that matrix, whose rows are hundreds of thousands. A layer's weight magnitude is that of
the convolution making its channels (after a residual sum: the block's second convolution).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from clrelu import checks
from clrelu.models.base import ContinualModel


def unit_activity(H: torch.Tensor, n_units: int) -> torch.Tensor:
    """m x n: per sample, the sum of the absolute values of each unit's outputs."""
    magnitude = H.abs()
    return magnitude if magnitude.shape[1] == n_units else magnitude.reshape(len(H), -1, n_units).sum(1)


def dead_fraction(activity: torch.Tensor) -> float:
    """The fraction of units whose every output is exactly 0 on every sample (Dohare et al.)."""
    return (activity.sum(0) == 0).double().mean().item()


def dormant_scores(activity: torch.Tensor) -> torch.Tensor:
    """ReDo's score (Sokar et al. 2023): s_i = mean_x |h_i(x)| / ((1/n) sum_k mean_x |h_k(x)|).

    When every unit is 0 on every sample the layer mean is 0; every score is then 0 (every unit is
    dormant), as ReDo's reference code gives (it divides by the mean plus 1e-9)."""
    per_unit = activity.mean(0, dtype=torch.float64)
    layer_mean = per_unit.mean()
    return per_unit / layer_mean if layer_mean > 0 else torch.zeros_like(per_unit)


def dormant_fraction(activity: torch.Tensor, tau: float) -> float:
    """The fraction of tau-dormant units: score <= tau (a dead unit is 0-dormant)."""
    return (dormant_scores(activity) <= tau).double().mean().item()


# The Gram matrix's eigenvalues are known to about eps * the largest (float64); one at least RESOLVED times that
# gives its singular value to within about 1%, and such a value is at least 1.5e-7 of the largest: too small a
# share of their sum for that error to move the effective rank by 1e-6. Below it (a matrix whose rank is below its
# size up to float32 rounding), the singular values come from an SVD.
RESOLVED = 100


def singular_values(H: torch.Tensor) -> torch.Tensor:
    """The min(m, n) singular values of the m x n matrix H in decreasing order, in float64.

    The rows and columns of H that are all zero (samples that activate no unit, dead units) only add
    zeros, so they are left out. The rest come from the eigenvalues of the Gram matrix of the smaller
    side (k x k, k = min(m, n)) computed in float64, where the products of H's float32 values are
    exact: far cheaper than an SVD of H, and the same values to about 1e-12 of the largest, unless
    some eigenvalue is too small to resolve (see RESOLVED); then `torch.linalg.svdvals` gives them. A matrix
    with an inf or NaN (a diverged network) has NaN singular values.
    """
    k = min(H.shape)
    # the largest |value| of each column, without a copy of H (torch.aminmax is several times slower than the pair):
    # NaN or inf where a column holds one, the finiteness check at 1/m of its cost
    column_max = torch.maximum(H.amax(0), -H.amin(0))
    if not torch.isfinite(column_max).all():
        return torch.full((k,), float("nan"), dtype=torch.float64, device=H.device)
    nonzero_rows = (H.amax(1) > 0) | (H.amin(1) < 0)
    R = H
    for dim, kept in ((1, column_max > 0), (0, nonzero_rows)):  # the columns, then the rows, not all 0
        if not kept.all():
            R = R.index_select(dim, kept.nonzero().squeeze(1))
    R = R.double()
    sigma = torch.zeros(k, dtype=torch.float64, device=H.device)
    if R.numel() == 0:
        return sigma
    # increasing, of the Gram matrix of the smaller side
    eigenvalues = symmetric_eigenvalues(gram(R.T if R.shape[0] >= R.shape[1] else R))
    if eigenvalues[0] >= RESOLVED * torch.finfo(torch.float64).eps * eigenvalues[-1]:
        found = eigenvalues.flip(0).sqrt()
    else:
        found = torch.linalg.svdvals(R)
    sigma[:len(found)] = found
    return sigma


def gram(a: torch.Tensor) -> torch.Tensor:
    """a a^T of a float64 matrix a: through numpy on the CPU, one symmetric rank-k update (see the top of this
    module), through torch elsewhere."""
    if a.device.type != "cpu":
        return a @ a.T
    x = a.numpy()
    return torch.from_numpy(x @ x.T)


def symmetric_eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    """The eigenvalues of a symmetric float64 matrix, increasing: numpy's LAPACK on the CPU, torch's elsewhere."""
    if matrix.device.type != "cpu":
        return torch.linalg.eigvalsh(matrix)
    return torch.from_numpy(np.linalg.eigvalsh(matrix.numpy()))


def effective_rank(sigma: torch.Tensor) -> float:
    """Roy & Vetterli's effective rank, exp(-sum_k p_k log p_k), p_k = sigma_k / sum_j sigma_j, terms with
    p_k = 0 counting 0 (Dohare et al.'s compute_effective_rank). A zero matrix has effective rank 0; NaN
    singular values give NaN."""
    total = sigma.sum()
    if not torch.isfinite(total):
        return float("nan")
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return math.exp(-(p * p.log()).sum().item())


def srank(sigma: torch.Tensor, delta: float = 0.01) -> int | float:
    """Kumar et al. 2021: the smallest k with sum_{i<=k} sigma_i / sum_i sigma_i >= 1 - delta (sigma in
    decreasing order). A zero matrix has srank 0; NaN singular values give NaN."""
    total = sigma.sum()
    if not torch.isfinite(total):
        return float("nan")
    if total <= 0:
        return 0
    share = sigma.sort(descending=True).values.cumsum(0) / total
    return min(int((share < 1 - delta).sum().item()) + 1, len(sigma))  # min: rounding when delta is 0


def weight_magnitude(weight: torch.Tensor) -> float:
    """The mean absolute value of a layer's weights (its incoming weight matrix, without the bias)."""
    return weight.detach().abs().mean(dtype=torch.float64).item()


def channel_summary(maps: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Of a conv layer's maps (m x C x H x W): per sample and channel the sum of absolute values over positions
    (m x C), and the singular values of the (m * H * W) x C matrix of (sample, position) rows, decreasing."""
    activity = maps.abs().sum((2, 3))
    channels = torch.zeros(maps.shape[1], maps.shape[1], dtype=torch.float64, device=maps.device)  # their Gram matrix
    for part in maps.split(chunk):
        rows = part.transpose(0, 1).reshape(part.shape[1], -1).double()  # C x (samples * positions)
        channels += gram(rows)
    if not torch.isfinite(channels).all():  # a diverged network
        return activity, torch.full((maps.shape[1],), float("nan"), dtype=torch.float64, device=maps.device)
    sigma = symmetric_eigenvalues(channels).clamp(min=0).sqrt().flip(0)
    return activity, sigma


def probe_indices(n: int, size: int) -> torch.Tensor:
    """`size` sample indices spread evenly over 0..n-1 (all of them when n <= size): the same every time, and
    drawing no random numbers, so that measuring changes nothing in a run."""
    if n <= size:
        return torch.arange(n)
    return torch.linspace(0, n - 1, size, dtype=torch.float64).round().long()


class PlasticityProbe:
    """Measures every hidden layer of a model on probe inputs, with forward hooks on `model.channel_layers()` (its
    conv layers, first) and `model.unit_layers()`. A conv layer's maps are summarised as the hook sees them."""

    def __init__(self, model: ContinualModel, probe_size: int = 2000, tau: float = 0.025, delta: float = 0.01):
        self.model = model
        self.probe_size = checks.integer("plasticity.probe_size", probe_size, minimum=1)
        self.tau = checks.number("plasticity.tau", tau, minimum=0)
        self.delta = checks.number("plasticity.delta", delta, minimum=0, below=1)

    @torch.inference_mode()
    def measure(self, x: torch.Tensor, task_id: int) -> list[dict]:
        """One row per hidden layer: the measures of its outputs on the probe inputs `x` of task `task_id`."""
        layers = [*self.model.channel_layers(), *self.model.unit_layers()]
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # per layer: (activity, singular values)

        def keep(layer):
            def hook(module, inputs, output):
                if output.dim() == 4:
                    activity, sigma = channel_summary(output.float())
                    found[layer.name] = unit_activity(activity, layer.n_units), sigma
                else:
                    H = output.float()
                    found[layer.name] = unit_activity(H, layer.n_units), singular_values(H)
            return hook

        hooks = [layer.output.register_forward_hook(keep(layer)) for layer in layers]
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
            if layer.name not in found:  # a layer this task's forward pass does not use
                continue
            activity, sigma = found[layer.name]
            rows.append({"task": task_id, "layer": layer.name, "dead_fraction": dead_fraction(activity),
                         "dormant_fraction": dormant_fraction(activity, self.tau),
                         "effective_rank": effective_rank(sigma), "srank": srank(sigma, self.delta),
                         "weight_magnitude": weight_magnitude(layer.incoming.weight)})
        return rows
