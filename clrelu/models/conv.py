"""Convolutional bodies for image streams: a small conv net (`cnn`) and GEM's reduced ResNet-18 (`resnet18`).

A body takes the flat rows a stream gives (N x C*H*W), views them as images of `image_shape`, and
returns flat features; a trunk puts its fully connected hidden layers (`model.hidden`) after it.
Every activation inside a body is one of its hidden layers (`hidden_layers`), for the diagnostics,
and a layer of channels (`channel_layers`: a channel is a unit), for the plasticity measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

RESNET_FILTERS = 20  # the reduced ResNet-18 of GEM (Lopez-Paz & Ranzato 2017), also Mammoth's reduced-resnet18


@dataclass
class ChannelLayer:
    """One convolutional hidden layer seen as units: its channels (maps N x (C * outputs_per_unit) x H x W)."""

    name: str               # as in `ContinualModel.hidden_layers()`
    output: nn.Module       # the activation module whose output is the layer's maps
    incoming: nn.Conv2d     # output channel i: the kernels of unit i
    outputs_per_unit: int = 1  # 2 with crelu: channel i and n + i both come from unit i

    @property
    def n_units(self) -> int:
        return self.incoming.out_channels


class ConvBody(nn.Module):
    """Flat rows in, flat features out; `net` does the work on images of `image_shape`."""

    out_features: int
    net: nn.Sequential

    def __init__(self, image_shape: tuple[int, int, int], make_activation: Callable[[], nn.Module],
                 outputs_per_channel: int = 1):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.outputs_per_channel = outputs_per_channel
        self._activation_type = type(make_activation())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(len(x), *self.image_shape))

    def hidden_layers(self) -> dict[str, nn.Module]:
        """Every activation module of the body, by its name inside the body."""
        return {name: m for name, m in self.named_modules() if type(m) is self._activation_type}

    def channel_layers(self, prefix: str) -> list[ChannelLayer]:
        """Every activation as a layer of channels, named `prefix.<name>`, with the convolution that makes its
        channels: the last one before it outside a shortcut (after a residual sum, the block's second
        convolution)."""
        layers, incoming = [], None
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and "shortcut" not in name:
                incoming = module
            elif type(module) is self._activation_type:
                layers.append(ChannelLayer(f"{prefix}.{name}", module, incoming, self.outputs_per_channel))
        return layers


class SmallCNN(ConvBody):
    """One block per entry of `channels`: a 3x3 convolution (padding 1), the activation, 2x2 max pooling;
    then the pooled maps flattened (a 32x32 image and channels [32, 64] give 64 x 8 x 8 = 4096 features).
    An activation with `outputs_per_channel` 2 (crelu) doubles the channels the next block reads."""

    def __init__(self, image_shape, channels: tuple[int, ...], make_activation: Callable[[], nn.Module],
                 outputs_per_channel: int = 1):
        super().__init__(image_shape, make_activation, outputs_per_channel)
        c, h, w = self.image_shape
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Conv2d(c, width, kernel_size=3, padding=1), make_activation(), nn.MaxPool2d(2)]
            c, h, w = width * outputs_per_channel, h // 2, w // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = c * h * w


class BasicBlock(nn.Module):
    """ResNet's basic block as GEM and Mammoth write it: two 3x3 convolutions with batch norm, and a 1x1
    projection shortcut where the shape changes; the activation after the first convolution and after the sum."""

    def __init__(self, in_planes: int, planes: int, stride: int, make_activation: Callable[[], nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))
        self.act2 = make_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ReducedResNet18(ConvBody):
    """The reduced ResNet-18 of GEM, A-GEM, ER and Mammoth on CIFAR: a 3x3 stem of `nf` = 20 filters, four
    stages of two basic blocks (nf, 2nf, 4nf, 8nf filters; strides 1, 2, 2, 2), global average pooling: 160
    features. GEM pools with a 4x4 window, which is the global pool on 32x32 images; Mammoth pools globally."""

    def __init__(self, image_shape, make_activation: Callable[[], nn.Module], nf: int = RESNET_FILTERS):
        super().__init__(image_shape, make_activation)
        stem = [nn.Conv2d(self.image_shape[0], nf, kernel_size=3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(nf), make_activation()]
        stages, in_planes = [], nf
        for planes, stride in ((nf, 1), (2 * nf, 2), (4 * nf, 2), (8 * nf, 2)):
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride, make_activation),
                                        BasicBlock(planes, planes, 1, make_activation)))
            in_planes = planes
        self.net = nn.Sequential(*stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = 8 * nf


def body_features(kind: str, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                  outputs_per_channel: int = 1) -> int:
    """The number of features a body of `kind` gives, without building it."""
    if kind == "resnet18":
        return 8 * RESNET_FILTERS
    _, h, w = image_shape
    return channels[-1] * outputs_per_channel * (h >> len(channels)) * (w >> len(channels))


def build_body(kind: str, image_shape: tuple[int, int, int], channels: tuple[int, ...],
               make_activation: Callable[[], nn.Module], outputs_per_channel: int = 1) -> ConvBody:
    if kind == "resnet18":
        return ReducedResNet18(image_shape, make_activation)
    return SmallCNN(image_shape, channels, make_activation, outputs_per_channel)
