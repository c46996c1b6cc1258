"""Building blocks shared by the models: the activation choice, k-winners-take-all, normalisation and the trunk."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.conv import ConvBody, body_features, build_body


class CReLU(nn.Module):
    """Concatenated ReLU (Shang et al. 2016): [relu(x), relu(-x)], twice as many outputs as inputs.

    Output i and output n + i both come from input i, so one of them is non-zero unless x_i is 0. On the
    maps of a conv layer (N x C x H x W) the channels double.
    """

    outputs_per_input = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.cat([x, -x], dim=1))


TRUNKS = ("mlp", "cnn", "resnet18")  # what comes before the fully connected hidden layers
NONNEGATIVE = ("relu", "sigmoid", "softplus", "crelu")  # activations whose outputs are never below zero
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "swish": nn.SiLU,  # x * sigmoid(x) (Ramachandran et al. 2017; SiLU, Hendrycks & Gimpel 2016)
    "softplus": nn.Softplus,  # log(1 + exp(x))
    "crelu": CReLU,
}
NORMS = ("none", "layer")  # `layer`: LayerNorm over a hidden layer's units, before the activation


def make_activation(name: str) -> nn.Module:
    """A fresh activation module; `prelu` has its own learned slope per use."""
    return ACTIVATIONS[checks.choice("model.activation", name, ACTIVATIONS)]()


def output_width(activation: str, units: int) -> int:
    """How many outputs `units` units give after `activation` (twice as many with crelu)."""
    return units * getattr(ACTIVATIONS[activation], "outputs_per_input", 1)


class KWinners(nn.Module):
    """k-winners-take-all: per sample, the top `k` fraction of units keep their value, the rest are zero.

    The result is the input times a 0/1 mask, so gradients reach only the winners.
    """

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        keep = max(1, round(self.k * h.shape[1]))
        winners = h.topk(keep, dim=1).indices
        return h * torch.zeros_like(h).scatter_(1, winners, 1.0)


@dataclass(frozen=True)
class TrunkSpec:
    """The architecture of a trunk: enough to rebuild it from a checkpoint.

    `kind` mlp is fully connected layers of widths `hidden` on the flat input; cnn and resnet18 put a
    convolutional body (clrelu/models/conv.py) on images of `image_shape` before those layers.
    """

    in_features: int
    hidden: tuple[int, ...]
    activation: str
    k: float = 1.0  # fraction of units kept by k-winners-take-all after each activation; 1.0 keeps all
    norm: str = "none"  # `layer`: LayerNorm over each hidden layer's units, between the linear layer and activation
    kind: str = "mlp"
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width) of the input, for conv bodies
    channels: tuple[int, ...] = ()  # the conv widths of kind cnn

    @classmethod
    def checked(cls, in_features: int, hidden, activation: str, k: float = 1.0, norm: str = "none",
                trunk: str = "mlp", channels=(), image_shape=None) -> TrunkSpec:
        hidden = tuple(checks.int_list("model.hidden", hidden))
        checks.choice("model.activation", activation, ACTIVATIONS)
        checks.number("model.k", k, above=0, maximum=1)
        checks.choice("model.norm", norm, NORMS)
        kind = checks.choice("model.trunk", trunk, TRUNKS)
        if kind == "mlp":
            return cls(in_features, hidden, activation, float(k), norm)
        if image_shape is None:
            raise ConfigError(f"model.trunk={kind}: needs a stream of images, and this stream's inputs are not images; "
                              "use model.trunk=mlp")
        image_shape = tuple(image_shape)
        if kind == "resnet18" and output_width(activation, 1) != 1:
            raise ConfigError(f"model.activation={activation}: doubles the channels, which the residual sums of "
                              "model.trunk=resnet18 cannot take; use model.trunk=cnn")
        channels = tuple(checks.int_list("model.channels", channels)) if kind == "cnn" else ()
        if kind == "cnn" and not channels:
            raise ConfigError("model.channels=[]: model.trunk=cnn needs at least one conv block, e.g. [32,64]")
        if kind == "cnn" and min(image_shape[1:]) >> len(channels) < 1:
            raise ConfigError(f"model.channels={list(channels)}: {len(channels)} pooling blocks shrink a "
                              f"{image_shape[1]}x{image_shape[2]} image to nothing; give fewer channels")
        return cls(in_features, hidden, activation, float(k), norm, kind, image_shape, channels)

    @property
    def nonnegative(self) -> bool:
        """Whether every hidden output is >= 0 (k-WTA keeps that: it only zeroes values)."""
        return self.activation in NONNEGATIVE

    @property
    def body_features(self) -> int:
        """The width of what the fully connected layers receive: the input, or a conv body's features."""
        if self.kind == "mlp":
            return self.in_features
        return body_features(self.kind, self.image_shape, self.channels, output_width(self.activation, 1))

    @property
    def out_features(self) -> int:
        return output_width(self.activation, self.hidden[-1]) if self.hidden else self.body_features

    def build_body(self) -> ConvBody | None:
        """The convolutional body of a conv trunk, None for an MLP."""
        if self.kind == "mlp":
            return None
        return build_body(self.kind, self.image_shape, self.channels, lambda: make_activation(self.activation),
                          output_width(self.activation, 1))

    def build(self) -> nn.Sequential:
        """The conv body (if any), then linear layers of widths `hidden`, each followed by LayerNorm (norm `layer`),
        the activation, and k-WTA (k < 1). `hidden` counts units; with crelu a layer has twice as many outputs,
        all read by the next."""
        body = self.build_body()
        layers: list[nn.Module] = [] if body is None else [body]
        width = self.body_features
        for size in self.hidden:
            layers.append(nn.Linear(width, size))
            if self.norm == "layer":
                layers.append(nn.LayerNorm(size))
            layers.append(make_activation(self.activation))
            if self.k < 1:
                layers.append(KWinners(self.k))
            width = output_width(self.activation, size)
        return nn.Sequential(*layers)

    def as_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden), "channels": list(self.channels),
                "image_shape": None if self.image_shape is None else list(self.image_shape)}

    @classmethod
    def from_dict(cls, spec: dict) -> TrunkSpec:
        """The spec `as_dict` wrote (trunks saved before model.norm or conv trunks existed: no norm, an MLP)."""
        shape = spec.get("image_shape")
        return cls(spec["in_features"], tuple(spec["hidden"]), spec["activation"], spec["k"], spec.get("norm", "none"),
                   spec.get("kind", "mlp"), None if shape is None else tuple(shape), tuple(spec.get("channels", ())))


def linear_layers(trunk: nn.Sequential) -> list[nn.Linear]:
    return [m for m in trunk if isinstance(m, nn.Linear)]


def block_ends(trunk: nn.Sequential) -> list[int]:
    """The index in a trunk of the module that ends each fully connected hidden layer (its activation, or its
    k-WTA); a conv body's layers are inside it."""
    return [i for i in range(len(trunk))
            if not isinstance(trunk[i], ConvBody) and (i + 1 == len(trunk) or isinstance(trunk[i + 1], nn.Linear))]


def trunk_hidden_layers(trunk: nn.Sequential, prefix: str) -> dict[str, nn.Module]:
    """Every hidden layer of a trunk by name: a conv body's activations (maps N x C x H x W), then the ends of the
    fully connected layers."""
    layers = {}
    if len(trunk) and isinstance(trunk[0], ConvBody):
        layers.update({f"{prefix}.0.{name}": m for name, m in trunk[0].hidden_layers().items()})
    layers.update({f"{prefix}.{i}": trunk[i] for i in block_ends(trunk)})
    return layers


def hidden_outputs(trunk: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every fully connected hidden layer of a trunk (after its activation and k-WTA), in order."""
    ends, outputs = set(block_ends(trunk)), []
    h = x
    for i, module in enumerate(trunk):
        h = module(h)
        if i in ends:
            outputs.append(h)
    return outputs
