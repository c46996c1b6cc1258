"""Per-sample gradients for importance estimates (EWC's Fisher, MAS's omega): by outer products when every trainable
parameter belongs to a linear layer called once per forward pass, and by torch.func for any other model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from clrelu.models.base import ContinualModel


class LinearTrace:
    """The linear layers that own a model's trainable parameters `params` (by name), and a forward pass that keeps
    each one's input and output.

    Per sample n, the gradient of a linear layer's weight is the outer product of the gradient at its output (d_n)
    and its input (a_n), and of its bias d_n; so any sum over samples of a function of those per-sample gradients
    that factors over the outer product (their squares, their absolute values) is one matmul per layer.
    """

    def __init__(self, model: ContinualModel, params: dict[str, torch.Tensor]):
        self.model = model
        self.linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        owned = {id(p) for m in self.linears for p in (m.weight, m.bias) if p is not None}
        self.usable = all(id(p) in owned for p in params.values())
        self.names = {id(p): name for name, p in params.items()}

    def forward(self, x: torch.Tensor, task) -> tuple[torch.Tensor, list] | None:
        """The logits of `x`, and (layer, input, output) for every linear layer whose output needs a gradient; None
        when a layer is called twice (the outer-product shortcut does not hold)."""
        calls = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0].detach(), out)))
                 for m in self.linears]
        try:
            logits = self.model(x, task)
        finally:
            for hook in hooks:
                hook.remove()
        if len({id(mod) for mod, _, _ in calls}) != len(calls):
            return None
        return logits, [(mod, a, out) for mod, a, out in calls if out.requires_grad]

    def add_products(self, sums: dict[str, torch.Tensor], layer: nn.Linear, left: torch.Tensor,
                     right: torch.Tensor) -> None:
        """Add `left`^T @ `right` to the sum of `layer`'s weight and the column sums of `left` to its bias's."""
        if id(layer.weight) in self.names:
            sums[self.names[id(layer.weight)]] += left.T @ right
        if layer.bias is not None and id(layer.bias) in self.names:
            sums[self.names[id(layer.bias)]] += left.sum(0)


def per_sample_gradients(model: ContinualModel, params: dict[str, torch.Tensor], task: int,
                         objective: Callable[..., torch.Tensor]) -> Callable[..., dict[str, torch.Tensor]]:
    """A function (xs, *extras) -> {name: gradients, one row per sample} of `objective(logits, *extra)`, the logits
    of one sample of task `task` (1 x C) and its entries of `extras`, with respect to `params`: by torch.func, for
    any model (slower than the outer products)."""
    detached = {name: p.detach() for name, p in params.items()}
    buffers = dict(model.named_buffers())

    def one(p, xi, *extra):
        return objective(functional_call(model, (p, buffers), (xi.unsqueeze(0), task)), *extra)

    def compute(xs: torch.Tensor, *extras: torch.Tensor) -> dict[str, torch.Tensor]:
        return vmap(grad(one), in_dims=(None, 0, *[0] * len(extras)))(detached, xs, *extras)
    return compute
