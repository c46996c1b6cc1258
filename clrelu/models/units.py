"""Hidden units: what a unit of a hidden layer is made of, and re-initialising chosen units (ReDo, CBP).

A unit is one row of the linear layer that feeds a hidden layer: its incoming weights and bias, its
LayerNorm gain and bias (with `model.norm=layer`), its outputs (one, or two with crelu: output i
and output n + i both come from unit i) and its outgoing weights, the columns of every linear layer
that reads those outputs (the next trunk layer, or every head, tower and reconstruction layer that
reads the trunk).

A channel of a convolutional layer is a unit too (`models/conv.py`: `ChannelLayer`), measured by the plasticity probe
but not re-initialised: its outgoing weights are slices of the next convolution's kernels, or blocks
of the flattened features, or shared through a residual sum, so ReDo and CBP refuse conv trunks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from clrelu.models.layers import block_ends


@dataclass
class UnitLayer:
    """One hidden layer seen as units."""

    name: str               # as in `ContinualModel.hidden_layers()`
    output: nn.Module       # the module whose output is the layer's output (activation or k-WTA)
    incoming: nn.Linear     # row i: the incoming weights and bias of unit i
    norm: nn.LayerNorm | None
    readers: list[nn.Linear]  # the layers that read the outputs
    outputs_per_unit: int = 1  # 2 with crelu

    @property
    def n_units(self) -> int:
        return self.incoming.out_features

    def columns(self, units: torch.Tensor) -> torch.Tensor:
        """The output columns of `units`: unit i owns columns i, i + n, ... (one per output)."""
        return torch.cat([units + k * self.n_units for k in range(self.outputs_per_unit)])

    def outgoing_magnitude(self) -> torch.Tensor:
        """Per unit, the mean of the absolute values of its outgoing weights over every reader (continual backprop's
        `next_layer.weight.abs().mean(dim=0)`)."""
        total = torch.zeros(self.n_units, device=self.incoming.weight.device)
        for reader in self.readers:
            total += reader.weight.detach().abs().sum(0).view(self.outputs_per_unit, self.n_units).sum(0)
        return total / (sum(reader.out_features for reader in self.readers) * self.outputs_per_unit)


def trunk_units(trunk: nn.Sequential, readers_of_last: list[nn.Linear], outputs_per_unit: int = 1,
                prefix: str = "trunk") -> list[UnitLayer]:
    """The hidden layers of an MLP trunk (Linear, LayerNorm?, activation, k-WTA?), the last one read by
    `readers_of_last`."""
    ends = block_ends(trunk)
    layers = []
    start = 0
    for number, end in enumerate(ends):
        block = list(trunk)[start:end + 1]
        incoming = next(m for m in block if isinstance(m, nn.Linear))
        norm = next((m for m in block if isinstance(m, nn.LayerNorm)), None)
        readers = [trunk[end + 1]] if number + 1 < len(ends) else list(readers_of_last)
        layers.append(UnitLayer(f"{prefix}.{end}", trunk[end], incoming, norm, readers, outputs_per_unit))
        start = end + 1
    return layers


def _zero_optimizer_state(optimizer: torch.optim.Optimizer | None, param: torch.Tensor, index) -> None:
    """Zero the entries `index` of every per-element state tensor the optimizer keeps for `param`
    (Adam's moments, SGD's momentum buffer, AdamGnT's step counts). Torch's Adam keeps one step count per tensor,
    which stays."""
    if optimizer is None:
        return
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[index] = 0


@torch.no_grad()
def reinitialise(layer: UnitLayer, units: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Give `units` fresh incoming weights drawn as the layer initialises them (a scratch copy's
    `reset_parameters`, PyTorch's default for nn.Linear), a zero bias, LayerNorm gain 1 and bias 0,
    zero outgoing weights, and zero optimizer state for all of those entries. Nothing else changes."""
    if len(units) == 0:
        return
    scratch = copy.deepcopy(layer.incoming)
    scratch.reset_parameters()
    incoming = layer.incoming
    incoming.weight[units] = scratch.weight[units]
    _zero_optimizer_state(optimizer, incoming.weight, units)
    if incoming.bias is not None:
        incoming.bias[units] = 0
        _zero_optimizer_state(optimizer, incoming.bias, units)
    if layer.norm is not None:
        layer.norm.weight[units] = 1
        layer.norm.bias[units] = 0
        _zero_optimizer_state(optimizer, layer.norm.weight, units)
        _zero_optimizer_state(optimizer, layer.norm.bias, units)
    columns = layer.columns(units)
    for reader in layer.readers:
        reader.weight[:, columns] = 0
        _zero_optimizer_state(optimizer, reader.weight, (slice(None), columns))
