"""Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC (Schwarz et al. 2018)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import CurvatureCap, Strategy, trainable, weighted_distance
from clrelu.strategies.per_sample import LinearTrace, per_sample_gradients
from clrelu.streams.base import HeadLayout, Split

CHUNK = 1024  # samples per forward pass when computing the Fisher
FISHER_LABELS = ("expected", "true", "predicted", "sampled")


def _labels(logits: torch.Tensor, y: torch.Tensor, mode: str) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The labels whose log-likelihood gradients enter the Fisher, each with a weight per sample (None: 1).

    expected: every class c the head can answer, weighted by p(c | x) (the exact Fisher); true: the data's
    labels (the empirical Fisher); predicted: the model's argmax; sampled: one label drawn from p(. | x).
    """
    if mode == "true":
        return [(y, None)]
    if mode == "predicted":
        return [(logits.argmax(1), None)]
    probs = F.softmax(logits.detach(), dim=1)
    if mode == "sampled":
        return [(torch.multinomial(probs, 1).squeeze(1), None)]
    answerable = torch.isfinite(logits[0]).nonzero().squeeze(1).tolist()  # masked units of the class scenario: -inf
    return [(torch.full_like(y, c), probs[:, c]) for c in answerable]


def _log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y | x) of every sample (gather, so that -inf logits of masked classes stay harmless)."""
    return F.log_softmax(logits, dim=1).gather(1, y.view(-1, 1)).squeeze(1)


def _linear_fisher(model: ContinualModel, params: dict, data: Split, task: int, mode: str):
    """The summed (weighted) squared per-sample gradients when every trainable parameter is the weight or bias of
    a linear layer called at most once per forward pass, or None when the model is not like that.

    The weighted sum over n of the squared outer products d_n a_n^T is (w * d^2)^T (a^2): one matmul per layer,
    after one backward pass per label (for `expected`, one per class the head can answer).
    """
    trace = LinearTrace(model, params)
    if not trace.usable:
        return None
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for x, y in data.chunks(CHUNK):
        traced = trace.forward(x, task)
        if traced is None:
            return None
        logits, used = traced
        squares = [torch.zeros_like(out) for _, _, out in used]
        pairs = _labels(logits, y, mode)
        for i, (labels, weight) in enumerate(pairs):
            total = _log_likelihood(logits, labels).sum()
            grads = torch.autograd.grad(total, [out for _, _, out in used], allow_unused=True,
                                        retain_graph=i + 1 < len(pairs))
            for square, d in zip(squares, grads):
                if d is not None:
                    square += d.pow(2) if weight is None else d.pow(2) * weight[:, None]
        for (mod, a, _), square in zip(used, squares):
            trace.add_products(sums, mod, square, a.pow(2))
    return sums


def _per_sample_fisher(model: ContinualModel, params: dict, data: Split, task: int, mode: str):
    """The summed (weighted) squared per-sample gradients of any model, with torch.func (slower)."""
    per_sample = per_sample_gradients(model, params, task, lambda logits, yi: _log_likelihood(logits, yi.view(1))[0])
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    for xs, y in data.chunks(256):
        with torch.no_grad():
            logits = model(xs, task)
        for labels, weight in _labels(logits, y, mode):
            for name, g in per_sample(xs, labels).items():
                square = g.pow(2)
                if weight is not None:
                    square = square * weight.view(-1, *[1] * (g.dim() - 1))
                sums[name] += square.sum(0)
    return sums


def fisher_diagonal(model: ContinualModel, data: Split, task: int, labels: str = "expected") -> dict[str, torch.Tensor]:
    """The diagonal Fisher of the trainable parameters on the samples of `data` (read in chunks), with the model in
    evaluation mode.

    expected: the exact Fisher, mean over x of sum_c p(c | x) (d log p(c | x) / d theta)^2; true, predicted and
    sampled: the mean over x of the squared gradient of log p(label | x) for that one label per sample.
    """
    checks.choice("strategy.fisher_labels", labels, FISHER_LABELS)
    params = trainable(model)
    was_training = model.training
    model.eval()
    try:
        sums = _linear_fisher(model, params, data, task, labels)
        if sums is None:
            sums = _per_sample_fisher(model, params, data, task, labels)
    finally:
        model.train(was_training)
    return {name: s / len(data) for name, s in sums.items()}


class EWC(Strategy):
    """Penalty `ewc_lambda / 2 * sum_t sum_i F_t,i (theta_i - theta*_t,i)^2`, one term per finished task.

    F_t is the diagonal Fisher on task t's training data (labels from `fisher_labels`; `fisher_samples` draws a
    random subset), theta*_t the parameters when task t ended. With `online` (Schwarz et al. 2018), one running
    term: F = gamma * F + F_t, theta* = the parameters after the latest task, and the penalty
    `ewc_lambda / 2 * gamma * sum_i F_i (theta_i - theta*_i)^2` (van de Ven et al.'s ewc_loss). `max_curvature`
    caps each parameter's penalty curvature (see base.CurvatureCap).
    """

    def __init__(self, layout: HeadLayout, ewc_lambda: float = 200.0, online: bool = False, gamma: float = 1.0,
                 fisher_labels: str = "expected", fisher_samples: int | None = None, max_curvature="auto"):
        super().__init__(layout)
        self.ewc_lambda = checks.number("strategy.ewc_lambda", ewc_lambda, minimum=0)
        self.online = checks.boolean("strategy.online", online)
        self.gamma = checks.number("strategy.gamma", gamma, minimum=0, maximum=1)
        self.fisher_labels = checks.choice("strategy.fisher_labels", fisher_labels, FISHER_LABELS)
        self.fisher_samples = checks.optional_limit("strategy.fisher_samples", fisher_samples)
        self.cap = CurvatureCap("ewc", max_curvature)
        self.terms: list[tuple[dict, dict]] = []  # (Fisher, anchor) per task; one merged term when online
        self._effective: list[tuple[dict, dict]] | None = None  # the terms as the penalty uses them
        self._effective_of: list | None = None  # the list of terms they were computed from

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if self.cap.use_optimizer(optimizer):
            self._effective = None

    def _terms(self) -> list[tuple[dict, dict]]:
        """(importance, anchor) per term, with importance = ewc_lambda / 2 * (gamma when online) * F, capped."""
        if self._effective is None or self._effective_of is not self.terms:
            self._effective_of = self.terms
            scale = self.ewc_lambda / 2 * (self.gamma if self.online else 1.0)
            terms = [({name: scale * f for name, f in fisher.items()}, anchor) for fisher, anchor in self.terms]
            # the penalty's curvature in a parameter is twice the sum of its importances over the terms
            factors = self.cap.factors({name: 2 * sum(t[0][name] for t in terms if name in t[0])
                                        for name in {n for t in terms for n in t[0]}})
            self._effective = [({name: f * factors[name] if name in factors else f for name, f in imp.items()},
                                anchor) for imp, anchor in terms]
        return self._effective

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        if not self.terms:
            return None
        return sum(weighted_distance(model, importance, anchor) for importance, anchor in self._terms())

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        if self.fisher_samples is not None and self.fisher_samples < len(train):
            train = train.subset(torch.randperm(len(train))[:self.fisher_samples])
        fisher = fisher_diagonal(model, train, task_id, self.fisher_labels)
        anchor = {name: p.detach().clone() for name, p in trainable(model).items()}
        if self.online and self.terms:
            previous = self.terms[0][0]
            fisher = {name: f + self.gamma * previous.get(name, torch.zeros_like(f)) for name, f in fisher.items()}
            self.terms = []
        self.terms.append((fisher, anchor))
        self._effective = None

    def state_dict(self) -> dict:
        return {"terms": self.terms}

    def load_state_dict(self, state: dict) -> None:
        self.terms = state["terms"]
        self._effective = None
