"""An example of a new model: the MLP with dropout after every hidden layer.

Dropout as a defence against forgetting: Goodfellow et al. (2013) found that it reduces forgetting in most of
their settings, and Mirzadeh et al. (2020) explain it as an implicit gating of the units by task. In training,
each hidden output is zeroed with probability `p` and the others scaled by 1 / (1 - p); in evaluation the
network is the plain MLP.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.models.mlp import MLP
from clrelu.streams.base import HeadLayout


class DropoutMLP(MLP):
    """`MLP` (hidden layers, activation, the scenario's heads) with dropout of rate `p` on every hidden layer's
    outputs while training."""

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 p: float = 0.5, **mlp_options):
        super().__init__(in_features, layout, hidden=hidden, activation=activation, **mlp_options)
        self.p = checks.number("model.p", p, minimum=0, below=1)
        for layer in self.hidden_layers().values():
            layer.register_forward_hook(self._drop)

    def _drop(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        return F.dropout(output, self.p, self.training)
