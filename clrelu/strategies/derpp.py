"""Dark experience replay++ (Buzzega et al. 2020): DER's logit term plus a cross-entropy term on a second draw."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.strategies.der import DER
from clrelu.streams.base import HeadLayout


class DERpp(DER):
    """Mammoth's models/derpp.py: loss = CE(batch) + alpha * MSE(f(x'), z') + beta * CE(f(x''), y''), x' and x''
    two separate draws (without replacement each) from the reservoir memory of inputs, targets and logits."""

    def __init__(self, layout: HeadLayout, memory_size: int = 500, alpha: float = 1.0, beta: float = 0.5,
                 replay_batch_size: int | None = None):
        super().__init__(layout, memory_size, alpha, replay_batch_size)
        self.beta = checks.number("strategy.beta", beta, minimum=0)

    def n_draws(self) -> int:
        return 2

    def replay_loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor, draw: int):
        if draw == 0:
            return super().replay_loss(model, x, y, task, draw)
        return self.beta * F.cross_entropy(model(x, task), y)
