"""Hard attention to the task (Serra et al. 2018): how model=hat learns its gates and keeps old tasks' units."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.streams.base import HeadLayout, Split


def annealed_s(s_max: float, epoch_fraction: float) -> float:
    """The gates' slope for a batch that starts `epoch_fraction` into its epoch: from 1/s_max at the first batch of
    every epoch towards s_max (hat.py train_epoch: s = (smax - 1/smax) * i / len(r) + 1/smax, i the batch's first
    sample)."""
    return (s_max - 1 / s_max) * epoch_fraction + 1 / s_max


def attention_regulariser(gates: list[torch.Tensor], previous: list[torch.Tensor] | None) -> torch.Tensor | None:
    """hat.py criterion: sum_l sum_i a_l,i (1 - a<_l,i) / sum_l sum_i (1 - a<_l,i), a the current task's gates and
    a< the elementwise max of the earlier tasks' gates at s_max; before any task ended, sum a / number of units.
    None when every unit is taken (their code would divide by zero)."""
    if previous is None:
        total = sum(g.sum() for g in gates)
        count = sum(g.numel() for g in gates)
    else:
        total = sum((g * (1 - p)).sum() for g, p in zip(gates, previous))
        count = sum((1 - p).sum() for p in previous)
        if count == 0:
            return None
    return total / count


class HAT(Strategy):
    """The training procedure of joansj/hat src/approaches/hat.py for model=hat, step by step:

    - before each batch, the gates' slope s anneals from 1/s_max to s_max over each epoch (annealed_s);
    - the loss gets `c` times the attention regulariser (attention_regulariser), which keeps the current task's
      gates off the units earlier tasks left free;
    - after the backward pass, from the second task on, the gradient of every weight is multiplied by
      1 - min(a<_post, a<_pre), a< the earlier tasks' cumulative gates of the units the weight joins (biases: of
      their unit; the first layer: its units only; the heads are not masked); the embeddings' gradients are
      compensated, times s_max / s * (cosh(clamp(s e, -thres_cosh, thres_cosh)) + 1) / (cosh(e) + 1); then the
      whole gradient is clipped to norm `clip_grad_norm`;
    - after each step the embeddings are clamped to [-thres_emb, thres_emb];
    - after each task, a< = max(a<, the task's gates at s_max).
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    models = ("hat",)

    def __init__(self, layout: HeadLayout, c: float = 0.75, clip_grad_norm: float = 10000.0, thres_cosh: float = 50.0,
                 thres_emb: float = 6.0):
        super().__init__(layout)
        self.c = checks.number("strategy.c", c, minimum=0)
        self.clip_grad_norm = checks.number("strategy.clip_grad_norm", clip_grad_norm, above=0)
        self.thres_cosh = checks.number("strategy.thres_cosh", thres_cosh, above=0)
        self.thres_emb = checks.number("strategy.thres_emb", thres_emb, above=0)
        self.s = 1.0
        self.previous: list[torch.Tensor] | None = None  # a<: per layer, the max of the earlier tasks' gates at s_max
        self._masks: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # gradient multipliers made from a<

    def before_step(self, model: ContinualModel, epoch_fraction: float) -> None:
        self.s = model.s = annealed_s(model.s_max, epoch_fraction)

    def penalty(self, model: ContinualModel, x: torch.Tensor, task) -> torch.Tensor | None:
        regulariser = attention_regulariser(model.gates(task, self.s), self.previous)
        return None if regulariser is None else self.c * regulariser

    def gradient_masks(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) gradient multipliers of every hidden layer: 1 - a< of the units each entry joins, the
        smaller of the two for a weight between two gated layers (mlp_hat.py get_view_for)."""
        if self._masks is None:
            self._masks, pre = [], None
            for post in self.previous:
                used = post[:, None] if pre is None else torch.minimum(post[:, None], pre[None, :])
                self._masks.append((1 - used, 1 - post))
                pre = post
        return self._masks

    @torch.no_grad()
    def after_backward(self, model: ContinualModel) -> None:
        if self.previous is not None:
            for layer, (weight, bias) in zip(model.layers, self.gradient_masks()):
                if layer.weight.grad is not None:
                    layer.weight.grad.mul_(weight)
                if layer.bias.grad is not None:
                    layer.bias.grad.mul_(bias)
        for embedding in model.embeddings:
            e, g = embedding.weight, embedding.weight.grad
            if g is not None:
                num = torch.cosh(torch.clamp(self.s * e, -self.thres_cosh, self.thres_cosh)) + 1
                den = torch.cosh(e) + 1
                g.mul_(model.s_max / self.s * num / den)
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)

    @torch.no_grad()
    def after_step(self, model: ContinualModel) -> None:
        for embedding in model.embeddings:
            embedding.weight.clamp_(-self.thres_emb, self.thres_emb)

    @torch.no_grad()
    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        gates = [g.detach().clone() for g in model.gates(task_id, model.s_max)]
        self.previous = gates if self.previous is None else [torch.maximum(p, g) for p, g in zip(self.previous, gates)]
        self._masks = None

    def state_dict(self) -> dict:
        return {"previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state["previous"]
        self._masks = None
