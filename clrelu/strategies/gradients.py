"""A model's gradients as one flat vector, for the strategies that project them (A-GEM, GEM)."""

from __future__ import annotations

import torch

from clrelu.models.base import ContinualModel


def learning_parameters(model: ContinualModel) -> list[torch.nn.Parameter]:
    """The parameters that currently learn, in the model's order."""
    return [p for p in model.parameters() if p.requires_grad]


def flat(grads, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """One vector of the gradients `grads` (one per parameter, None for a parameter they did not reach: zeros)."""
    return torch.cat([torch.zeros(p.numel(), device=p.device) if g is None else g.reshape(-1)
                      for g, p in zip(grads, params)])


def current_gradient(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The gradient the backward pass left in `p.grad`, flat."""
    return flat([p.grad for p in params], params)


def loss_gradient(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The gradient of `loss` with respect to `params`, flat, leaving `p.grad` untouched."""
    return flat(torch.autograd.grad(loss, params, allow_unused=True), params)


@torch.no_grad()
def write_gradient(vector: torch.Tensor, params: list[torch.nn.Parameter]) -> None:
    """Make `p.grad` the parameters' slices of `vector`. Every parameter gets its slice, also one the batch did not
    reach (an earlier task's head) when its slice is not zero, as in the reference codes, whose networks give every
    parameter a gradient."""
    start = 0
    for p in params:
        part = vector[start:start + p.numel()].view_as(p)
        start += p.numel()
        if p.grad is not None:
            p.grad.copy_(part)
        elif part.any():
            p.grad = part.clone()
