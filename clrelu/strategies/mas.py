"""Memory aware synapses (Aljundi et al. 2018): importance from how much the output's squared norm moves with each
parameter, measured without labels."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import CurvatureCap, Strategy, trainable, weighted_distance
from clrelu.strategies.per_sample import LinearTrace, per_sample_gradients
from clrelu.streams.base import HeadLayout, Split

CHUNK = 1024  # samples per forward pass of the one-sample importance


def squared_norms(logits: torch.Tensor) -> torch.Tensor:
    """||f(x)||^2 of every row of `logits`, over the outputs the model can give (the class scenario's units of classes
    not seen yet, -inf, are left out)."""
    return torch.where(torch.isfinite(logits), logits, 0.0).pow(2).sum(1)


def _one_sample_linear(model: ContinualModel, params: dict, data: Split, task: int):
    """sum_n |d ||f(x_n)||^2 / d theta| when every trainable parameter belongs to a linear layer called once per
    forward pass, or None: |d_n a_n^T| = |d_n| |a_n|^T, so the sum over n is |D|^T |A|, one matmul per layer."""
    trace = LinearTrace(model, params)
    if not trace.usable:
        return None
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for x, _ in data.chunks(CHUNK):
        traced = trace.forward(x, task)
        if traced is None:
            return None
        logits, used = traced
        if not used:
            continue
        grads = torch.autograd.grad(squared_norms(logits).sum(), [out for _, _, out in used], allow_unused=True)
        for (mod, a, _), d in zip(used, grads):
            if d is not None:
                trace.add_products(sums, mod, d.abs(), a.abs())
    return sums


def _one_sample_any(model: ContinualModel, params: dict, data: Split, task: int) -> dict[str, torch.Tensor]:
    """sum_n |d ||f(x_n)||^2 / d theta| of any model, with torch.func."""
    per_sample = per_sample_gradients(model, params, task, lambda logits: squared_norms(logits)[0])
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for xs, _ in data.chunks(256):
        for name, g in per_sample(xs).items():
            sums[name] += g.abs().sum(0)
    return sums


def _batches(model: ContinualModel, params: dict, data: Split, task: int, batch_size: int) -> dict[str, torch.Tensor]:
    """sum over batches b of |d sum_{x in b} ||f(x)||^2 / d theta|, the batches `batch_size` samples in order."""
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    names, tensors = list(params), list(params.values())
    for x, _ in data.chunks(batch_size):
        grads = torch.autograd.grad(squared_norms(model(x, task)).sum(), tensors, allow_unused=True)
        for name, g in zip(names, grads):
            if g is not None:
                sums[name] += g.abs()
    return sums


def output_importance(model: ContinualModel, data: Split, task: int, batch_size: int = 1) -> dict[str, torch.Tensor]:
    """MAS's omega of every trainable parameter on the samples of `data` of task `task`, the model in evaluation mode
    (their compute_importance_l2): (1/N) sum over batches b of |d/d theta sum_{x in b} ||f(x)||^2|, batches of
    `batch_size` consecutive samples (1: the paper's per-sample mean of |d ||f(x)||^2 / d theta|)."""
    params = trainable(model)
    was_training = model.training
    model.eval()
    try:
        sums = None
        if batch_size == 1:
            sums = _one_sample_linear(model, params, data, task)
            if sums is None:
                sums = _one_sample_any(model, params, data, task)
        else:
            sums = _batches(model, params, data, task, batch_size)
    finally:
        model.train(was_training)
    return {name: s / len(data) for name, s in sums.items()}


class MAS(Strategy):
    """Penalty `mas_lambda * sum_i Omega_i (theta_i - theta*_i)^2`, theta* the parameters when the latest task ended
    (their Weight_Regularized_SGD adds 2 lambda Omega (theta - theta*) to the gradient).

    After each task, omega on its training data (output_importance, labels unused), merged into Omega as their code
    does, Omega + omega (accumelate_reg_params), or with `alpha` as Avalanche and FACIL do,
    alpha Omega + (1 - alpha) omega. `max_curvature` caps each parameter's penalty curvature (base.CurvatureCap).
    """

    scenarios = ("task", "domain", "class")
    regimes = ("sequential", "cumulative")

    def __init__(self, layout: HeadLayout, mas_lambda: float = 1.0, importance_batch_size: int = 1,
                 alpha: float | None = None, max_curvature="auto"):
        super().__init__(layout)
        self.mas_lambda = checks.number("strategy.mas_lambda", mas_lambda, minimum=0)
        self.importance_batch_size = checks.integer("strategy.importance_batch_size", importance_batch_size, minimum=1)
        self.alpha = None if alpha is None else checks.number("strategy.alpha", alpha, minimum=0, maximum=1)
        self.cap = CurvatureCap("mas", max_curvature)
        self.omega: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}
        self._importance: dict[str, torch.Tensor] | None = None  # mas_lambda * Omega, capped: what the penalty uses

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if self.cap.use_optimizer(optimizer):
            self._importance = None

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if not self.omega:
            return None
        if self._importance is None:
            importance = {name: self.mas_lambda * w for name, w in self.omega.items()}
            factors = self.cap.factors({name: 2 * w for name, w in importance.items()})
            self._importance = {name: w * factors[name] if name in factors else w for name, w in importance.items()}
        return weighted_distance(model, self._importance, self.anchor)

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        omega = output_importance(model, train, task_id, self.importance_batch_size)
        for name, new in omega.items():
            old = self.omega.get(name)
            if old is None:
                self.omega[name] = new
            elif self.alpha is None:
                self.omega[name] = old + new
            else:
                self.omega[name] = self.alpha * old + (1 - self.alpha) * new
        self.anchor = {name: p.detach().clone() for name, p in trainable(model).items()}
        self._importance = None

    def state_dict(self) -> dict:
        return {"omega": self.omega, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.omega, self.anchor = state["omega"], state["anchor"]
        self._importance = None
