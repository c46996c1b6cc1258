"""Building blocks shared by the models: the activation choice and the MLP trunk."""

from __future__ import annotations

from torch import nn

from clrelu import checks

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module; `prelu` has its own learned slope per use."""
    return ACTIVATIONS[checks.choice("model.activation", name, ACTIVATIONS)]()


def make_trunk(in_features: int, hidden, activation: str) -> nn.Sequential:
    """Linear layers of widths `hidden`, each followed by the activation."""
    layers: list[nn.Module] = []
    width = in_features
    for size in checks.int_list("model.hidden", hidden):
        layers += [nn.Linear(width, size), make_activation(activation)]
        width = size
    return nn.Sequential(*layers)


def out_width(in_features: int, hidden) -> int:
    """The number of features a trunk of widths `hidden` hands to the heads."""
    return list(hidden)[-1] if len(hidden) else in_features
