"""The sparse perceptron: k-winners-take-all hidden layers, with units allocated to tasks and frozen."""

from __future__ import annotations

import logging

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads
from clrelu.models.layers import TrunkSpec, hidden_outputs, linear_layers
from clrelu.streams.base import HeadLayout, Split

log = logging.getLogger(__name__)

CHUNK = 10000  # samples per forward pass when counting wins


class SparsePerceptron(ContinualModel):
    """Hidden layers apply the activation, then keep each sample's top `k` fraction of units.

    With `protect`, after each task the free units that won (kept a non-zero value) on at least
    `protect_threshold` of the task's training samples are allocated to it; while later tasks train,
    the incoming weights and bias of allocated units get no gradient and are restored after every
    optimizer step (so weight decay cannot move them either). When a layer has no free units left,
    training goes on with what is free (the other layers and the heads), and a warning says so.
    `k=1.0, protect=false` is a plain MLP. On a conv trunk, k-WTA and protection act on the fully connected
    hidden layers after the conv body, which learns freely.
    """

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 k: float = 0.1, protect: bool = True, protect_threshold: float = 0.05, trunk: str = "mlp",
                 channels=(32, 64), image_shape=None):
        super().__init__()
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation, k, trunk=trunk, channels=channels,
                                            image_shape=image_shape)
        self.trunk = self.trunk_spec.build()
        self.heads = Heads(self.trunk_spec.out_features, layout)
        self.protect = checks.boolean("model.protect", protect)
        self.protect_threshold = checks.number("model.protect_threshold", protect_threshold, above=0, maximum=1)
        self.layers = linear_layers(self.trunk)
        # owner[l][u] is the task unit u of hidden layer l is allocated to, -1 while it is free
        for i, layer in enumerate(self.layers):
            self.register_buffer(f"owner_{i}", torch.full((layer.out_features,), -1, dtype=torch.long))
        self._allocated_last: list[int] = [0] * len(self.layers)
        self._frozen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (rows, weight, bias) per layer
        if self.protect:
            for i, layer in enumerate(self.layers):
                layer.weight.register_hook(self._mask_rows(i))
                layer.bias.register_hook(self._mask_rows(i))
            self.register_load_state_dict_post_hook(self._snapshot_frozen)  # a resumed run freezes the same units

    def fixed_units(self) -> str | None:
        return "the units model.protect=true freezes (model.protect=false frees them)" if self.protect else None

    def owner(self, i: int) -> torch.Tensor:
        return getattr(self, f"owner_{i}")

    def _mask_rows(self, i: int):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            free = (self.owner(i) < 0).to(grad.dtype)
            return grad * (free if grad.dim() == 1 else free[:, None])
        return hook

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x), task)

    @torch.no_grad()
    def win_rates(self, data: Split) -> list[torch.Tensor]:
        """For each hidden layer, the fraction of the samples of `data` on which each unit kept a non-zero value
        (with crelu, on which either of its two outputs did)."""
        wins = [torch.zeros_like(layer.bias) for layer in self.layers]
        for x, _ in data.chunks(CHUNK):
            for count, h in zip(wins, hidden_outputs(self.trunk, x)):
                count += (h != 0).view(len(h), -1, len(count)).any(1).sum(0)
        return [count / max(len(data), 1) for count in wins]

    def end_task(self, task_id: int, train: Split) -> None:
        if not self.protect:
            return
        for i, rate in enumerate(self.win_rates(train)):
            owner = self.owner(i)
            new = (owner < 0) & (rate >= self.protect_threshold)
            owner[new] = task_id
            self._allocated_last[i] = int(new.sum())
            if new.any() and not (owner < 0).any():
                log.warning("sparse: hidden layer %d has no free units left after task %d; later tasks train "
                            "the rest of the network only", i, task_id)
        self._snapshot_frozen()

    def _snapshot_frozen(self, *_) -> None:
        """Keep the current weights and biases of the allocated units, to restore after every step."""
        self._frozen = []
        for i, layer in enumerate(self.layers):
            rows = (self.owner(i) >= 0).nonzero().squeeze(1)
            self._frozen.append((rows, layer.weight.detach()[rows].clone(), layer.bias.detach()[rows].clone()))

    @torch.no_grad()
    def after_step(self) -> None:
        for layer, (rows, weight, bias) in zip(self.layers, self._frozen):
            layer.weight[rows] = weight
            layer.bias[rows] = bias

    def stats(self) -> dict[str, float]:
        if not self.protect:
            return {}
        found = {}
        for i in range(len(self.layers)):
            found[f"allocated_l{i}"] = self._allocated_last[i]
            found[f"free_l{i}"] = int((self.owner(i) < 0).sum())
        return found
