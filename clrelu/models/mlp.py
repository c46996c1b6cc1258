"""The plain baseline: a multilayer perceptron with the heads of the scenario."""

from __future__ import annotations

import torch

from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads
from clrelu.models.layers import TrunkSpec
from clrelu.streams.base import HeadLayout


class MLP(ContinualModel):
    """Hidden layers of widths `hidden` with `activation` (LayerNorm before it with norm `layer`; after a conv body
    with `trunk` cnn or resnet18), then the scenario's heads."""

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 norm: str = "none", trunk: str = "mlp", channels=(32, 64), image_shape=None):
        super().__init__()
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation, norm=norm, trunk=trunk,
                                            channels=channels, image_shape=image_shape)
        self.trunk = self.trunk_spec.build()
        self.heads = Heads(self.trunk_spec.out_features, layout)

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x), task)
