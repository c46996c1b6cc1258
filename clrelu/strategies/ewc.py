"""Elastic weight consolidation (Kirkpatrick et al. 2017), and online EWC (Schwarz et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable, weighted_distance
from clrelu.streams.base import HeadLayout

CHUNK = 1024  # samples per forward pass when computing the Fisher


def _log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y | x) of every sample (gather, so that -inf logits of masked classes stay harmless)."""
    return F.log_softmax(logits, dim=1).gather(1, y.view(-1, 1)).squeeze(1)


def _linear_fisher(model: ContinualModel, params: dict, x: torch.Tensor, y: torch.Tensor, task: int):
    """The summed squared per-sample gradients when every trainable parameter is the weight or bias of a
    linear layer called at most once per forward pass, or None when the model is not like that.

    Per sample n, the gradient of a linear layer's weight is the outer product of the gradient at its
    output (d_n) and its input (a_n), so the sum over n of its square is (d^2)^T (a^2): one matmul.
    """
    linears = {m: (m.weight, m.bias) for m in model.modules() if isinstance(m, nn.Linear)}
    owned = {id(p) for pair in linears.values() for p in pair if p is not None}
    if any(id(p) not in owned for p in params.values()):
        return None
    names = {id(p): name for name, p in params.items()}
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for start in range(0, len(x), CHUNK):
        calls = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0].detach(), out)))
                 for m in linears]
        try:
            total = _log_likelihood(model(x[start:start + CHUNK], task), y[start:start + CHUNK]).sum()
        finally:
            for hook in hooks:
                hook.remove()
        if len({id(mod) for mod, _, _ in calls}) != len(calls):
            return None  # a layer used twice: the outer-product shortcut does not hold
        used = [(mod, a, out) for mod, a, out in calls if out.requires_grad]
        grads = torch.autograd.grad(total, [out for _, _, out in used], allow_unused=True)
        for (mod, a, _), d in zip(used, grads):
            if d is None:
                continue
            if id(mod.weight) in names:
                sums[names[id(mod.weight)]] += d.pow(2).T @ a.pow(2)
            if mod.bias is not None and id(mod.bias) in names:
                sums[names[id(mod.bias)]] += d.pow(2).sum(0)
    return sums


def _per_sample_fisher(model: ContinualModel, params: dict, x: torch.Tensor, y: torch.Tensor, task: int):
    """The summed squared per-sample gradients of any model, with torch.func (slower)."""
    detached = {name: p.detach() for name, p in params.items()}
    buffers = dict(model.named_buffers())

    def log_likelihood(p, xi, yi):
        return _log_likelihood(functional_call(model, (p, buffers), (xi.unsqueeze(0), task)), yi.view(1)).squeeze()

    per_sample = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for start in range(0, len(x), 256):
        for name, g in per_sample(detached, x[start:start + 256], y[start:start + 256]).items():
            sums[name] += g.pow(2).sum(0)
    return sums


def fisher_diagonal(model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task: int) -> dict[str, torch.Tensor]:
    """The diagonal Fisher: the mean over the samples of the squared gradient of log p(y | x) per parameter."""
    params = trainable(model)
    was_training = model.training
    model.eval()
    try:
        sums = _linear_fisher(model, params, x, y, task)
        if sums is None:
            sums = _per_sample_fisher(model, params, x, y, task)
    finally:
        model.train(was_training)
    return {name: s / len(x) for name, s in sums.items()}


class EWC(Strategy):
    """Penalty `ewc_lambda / 2 * sum_t sum_i F_t,i (theta_i - theta*_t,i)^2`, one term per finished task.

    F_t is the diagonal Fisher on task t's training data (true labels; `fisher_samples` draws a
    random subset), theta*_t the parameters when task t ended. With `online`, one running term:
    F = gamma * F + F_t and theta* = the parameters after the latest task.
    """

    def __init__(self, layout: HeadLayout, ewc_lambda: float = 200.0, online: bool = False, gamma: float = 1.0,
                 fisher_samples: int | None = None):
        super().__init__(layout)
        self.ewc_lambda = checks.number("strategy.ewc_lambda", ewc_lambda, minimum=0)
        self.online = checks.boolean("strategy.online", online)
        self.gamma = checks.number("strategy.gamma", gamma, minimum=0, maximum=1)
        self.fisher_samples = checks.optional_limit("strategy.fisher_samples", fisher_samples)
        self.terms: list[tuple[dict, dict]] = []  # (Fisher, anchor) per task; one merged term when online

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if not self.terms:
            return None
        return self.ewc_lambda / 2 * sum(weighted_distance(model, fisher, anchor) for fisher, anchor in self.terms)

    def after_task(self, model: ContinualModel, task_id: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.fisher_samples is not None and self.fisher_samples < len(x):
            keep = torch.randperm(len(x))[:self.fisher_samples].to(x.device)
            x, y = x[keep], y[keep]
        fisher = fisher_diagonal(model, x, y, task_id)
        anchor = {name: p.detach().clone() for name, p in trainable(model).items()}
        if self.online and self.terms:
            previous = self.terms[0][0]
            fisher = {name: f + self.gamma * previous.get(name, torch.zeros_like(f)) for name, f in fisher.items()}
            self.terms = []
        self.terms.append((fisher, anchor))

    def state_dict(self) -> dict:
        return {"terms": self.terms}

    def load_state_dict(self, state: dict) -> None:
        self.terms = state["terms"]
