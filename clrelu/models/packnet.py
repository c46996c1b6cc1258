"""PackNet's network (Mallya & Lazebnik 2018): one set of weights shared by the tasks, each weight owned by the task
that trained it; task j is answered with the weights of tasks 0..j only."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads, route_by_task
from clrelu.models.layers import TrunkSpec
from clrelu.streams.base import HeadLayout

FREE = -1  # the owner of a weight no task holds: pruned, zero, and given to the next task that begins


class PackNetNet(ContinualModel):
    """A trunk (an MLP, or a conv body then an MLP) whose every linear and conv weight has an owner, and a head per
    task (arunmallya/packnet src/prune.py: SparsePruner's masks; Avalanche's PackNetModel).

    - `begin_task(t)`: every free weight becomes task t's; while t trains, only its weights learn: the others get
      no gradient (prune.py make_grads_zero) and are put back after every optimizer step, the pruned ones to 0
      (make_pruned_zero), so that neither momentum nor weight decay can move them. The biases (and prelu slopes)
      learn with the first task and are shared and frozen from the second on (their default, train_biases false,
      keeps the pretrained network's biases; clrelu trains the network from scratch, so its first task plays that
      part).
    - `prune(fraction)`: of the weights the current task owns, the `fraction` of smallest magnitude in each layer
      (round(fraction * owned) of them, ties broken by position) become free and zero (pruning_mask).
    - task j < the current one is answered with the weights owned by tasks 0..j, the others read as 0
      (apply_mask); the current task, and tasks not begun, with every weight.
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    strategies = ("packnet",)
    strategies_reason = "its weights are owned by tasks, which strategy=packnet prunes and frees"

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 trunk: str = "mlp", channels=(32, 64), image_shape=None):
        super().__init__()
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation, trunk=trunk, channels=channels,
                                            image_shape=image_shape)
        if self.trunk_spec.kind == "resnet18":
            raise ConfigError("model.trunk=resnet18: its batch norm layers are shared by every task, which PackNet "
                              "cannot give each task its own of; use model.trunk=mlp or cnn")
        self.trunk = self.trunk_spec.build()
        self.heads = Heads(self.trunk_spec.out_features, layout)
        self.masked = {name: m for name, m in self.trunk.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
        for i, layer in enumerate(self.masked.values()):
            self.register_buffer(f"owner_{i}", torch.full(layer.weight.shape, FREE, dtype=torch.int32))
            layer.weight.register_hook(self._own_gradient(i))
        weights = {id(layer.weight) for layer in self.masked.values()}
        self.shared = [p for p in self.trunk.parameters() if id(p) not in weights]  # biases (and prelu slopes)
        for p in self.shared:
            p.register_hook(self._shared_gradient)
        self.register_buffer("current", torch.tensor(-1))  # the task training now (or last trained)
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: (learning mask, values of the others)
        self._kept_shared: list[torch.Tensor] = []
        self.register_load_state_dict_post_hook(lambda *_: self._keep())  # a resumed run keeps the same weights

    def owner(self, i: int) -> torch.Tensor:
        return getattr(self, f"owner_{i}")

    def _own_gradient(self, i: int):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad * (self.owner(i) == self.current).to(grad.dtype)
        return hook

    def _shared_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        return grad if int(self.current) == 0 else torch.zeros_like(grad)

    def begin_task(self, task_id: int) -> None:
        super().begin_task(task_id)
        self.current.fill_(task_id)
        for i in range(len(self.masked)):
            owner = self.owner(i)
            owner[owner == FREE] = task_id
        self._keep()

    @torch.no_grad()
    def _keep(self) -> None:
        """Note the values every weight that must not learn has to keep (the pruned ones: 0)."""
        current = int(self.current)
        self._kept = []
        for i, layer in enumerate(self.masked.values()):
            learning = self.owner(i) == current
            self._kept.append((learning, torch.where(learning, 0.0, layer.weight.detach())))
        self._kept_shared = [] if current == 0 else [p.detach().clone() for p in self.shared]

    @torch.no_grad()
    def after_step(self) -> None:
        for layer, (learning, kept) in zip(self.masked.values(), self._kept):
            layer.weight.copy_(torch.where(learning, layer.weight, kept))
        for p, kept in zip(self.shared, self._kept_shared):
            p.copy_(kept)

    @torch.no_grad()
    def prune(self, fraction: float) -> list[int]:
        """Free the `fraction` of smallest magnitude among the current task's weights in every layer; return how many
        were freed per layer."""
        current, freed = int(self.current), []
        for i, layer in enumerate(self.masked.values()):
            owner, weight = self.owner(i).view(-1), layer.weight.view(-1)
            owned = (owner == current).nonzero().squeeze(1)
            count = round(fraction * len(owned))
            order = torch.sort(weight[owned].abs(), stable=True).indices
            chosen = owned[order[:count]]
            owner[chosen] = FREE
            weight[chosen] = 0.0
            freed.append(count)
        self._keep()
        return freed

    def _weights_of(self, task: int) -> dict[str, torch.Tensor]:
        """Every masked weight as task `task` sees it: the entries of tasks 0..task, zero elsewhere."""
        weights = {}
        for i, (name, layer) in enumerate(self.masked.items()):
            owner = self.owner(i)
            weights[f"{name}.weight"] = torch.where((owner >= 0) & (owner <= task), layer.weight, 0.0)
        return weights

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(task):
            return route_by_task(x, task, self.heads.layout.head_width, lambda rows, t: self.forward(rows, t))
        if task < int(self.current):
            features = functional_call(self.trunk, self._weights_of(task), (x,))
        else:
            features = self.trunk(x)
        return self.heads(features, task)

    def stats(self) -> dict[str, float]:
        """Per masked layer, the share of its weights the current task owns, and the share free for later tasks."""
        current, found = int(self.current), {}
        for i in range(len(self.masked)):
            owner = self.owner(i)
            found[f"task_weights_l{i}"] = (owner == current).double().mean().item()
            found[f"free_weights_l{i}"] = (owner == FREE).double().mean().item()
        return found
