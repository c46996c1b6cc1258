"""Hard attention to the task (Serra et al. 2018): an MLP whose hidden units are gated by a mask each task learns."""

from __future__ import annotations

import torch
from torch import nn

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads, route_by_task
from clrelu.models.layers import ACTIVATIONS, NONNEGATIVE, make_activation, output_width
from clrelu.models.units import UnitLayer
from clrelu.streams.base import HeadLayout

USED = 0.5  # a task uses a unit when its gate at s_max is above this (its embedding is positive)


class Gate(nn.Module):
    """A hidden layer's outputs times the task's gates: the module whose output is the layer (for the diagnostics)."""

    def forward(self, h: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        return h * gates


class HatNet(ContinualModel):
    """joansj/hat src/networks/mlp_hat.py: dropout on the input, then per hidden layer l
    `h_l = dropout(activation(W_l h_{l-1} + b_l)) * sigmoid(s * e_l[t])`, e_l[t] task t's embedding of layer l
    (nn.Embedding: N(0, 1) at initialisation), and a head per task.

    s is `s_max` in evaluation (model.eval(): the trainer's evaluation, the plasticity probe), and whatever the
    training strategy anneals it to in training (strategy=hat). `gates(task, s)` are the masks of every layer.
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    strategies = ("hat",)
    strategies_reason = "its gates are learned with HAT's regulariser and gradient masks, which strategy=hat applies"

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 dropout_input: float = 0.2, dropout_hidden: float = 0.5, s_max: float = 400.0):
        super().__init__()
        widths = checks.int_list("model.hidden", hidden)
        if not widths:
            raise ConfigError("model.hidden=[]: HAT gates hidden units, so it needs at least one hidden layer")
        checks.choice("model.activation", activation, ACTIVATIONS)
        if output_width(activation, 1) != 1:
            raise ConfigError(f"model.activation={activation}: gives two outputs per unit, and HAT gates one; use "
                              "another activation")
        self.s_max = checks.number("model.s_max", s_max, above=0)
        self.s = self.s_max
        self.drop_input = nn.Dropout(checks.number("model.dropout_input", dropout_input, minimum=0, below=1))
        self.drop_hidden = nn.Dropout(checks.number("model.dropout_hidden", dropout_hidden, minimum=0, below=1))
        sizes = [in_features, *widths]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.activations = nn.ModuleList(make_activation(activation) for _ in widths)
        self.gate_outputs = nn.ModuleList(Gate() for _ in widths)
        self.embeddings = nn.ModuleList(nn.Embedding(layout.n_tasks, width) for width in widths)
        self.heads = Heads(widths[-1], layout)
        self.nonnegative = activation in NONNEGATIVE

    def gates(self, task: int, s: float) -> list[torch.Tensor]:
        """sigmoid(s * e_l[task]) of every hidden layer l (mask() in mlp_hat.py)."""
        return [torch.sigmoid(s * embedding.weight[task]) for embedding in self.embeddings]

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        if torch.is_tensor(task):
            return route_by_task(x, task, self.heads.layout.head_width, lambda rows, t: self.forward(rows, t))
        h = self.drop_input(x)
        for layer, activation, gate, g in zip(self.layers, self.activations, self.gate_outputs,
                                              self.gates(task, self.s if self.training else self.s_max)):
            h = gate(self.drop_hidden(activation(layer(h))), g)
        return self.heads(h, task)

    def hidden_layers(self) -> dict[str, nn.Module]:
        return {f"gate_outputs.{i}": gate for i, gate in enumerate(self.gate_outputs)}

    def unit_layers(self) -> list[UnitLayer]:
        readers = [[layer] for layer in self.layers[1:]] + [self.trunk_readers()]
        return [UnitLayer(f"gate_outputs.{i}", gate, layer, None, reader)
                for i, (gate, layer, reader) in enumerate(zip(self.gate_outputs, self.layers, readers))]

    def hidden_nonnegative(self) -> bool:
        return self.nonnegative

    @torch.no_grad()
    def used_units(self, task: int) -> list[torch.Tensor]:
        """Per hidden layer, whether task `task` uses each unit: its gate at s_max is above 0.5."""
        return [g > USED for g in self.gates(task, self.s_max)]

    def stats(self) -> dict[str, float]:
        """Per hidden layer, for the latest task: the units it uses, how many of them an earlier task uses too, the
        units every task so far uses together, and the mean Jaccard overlap of its units with each earlier task's."""
        tasks = self.heads.added.nonzero().squeeze(1).tolist()
        latest, earlier = tasks[-1], tasks[:-1]
        found = {}
        mine = self.used_units(latest)
        theirs = [self.used_units(t) for t in earlier]
        for i, units in enumerate(mine):
            before = torch.zeros_like(units)
            jaccards = []
            for other in theirs:
                before |= other[i]
                union = (units | other[i]).sum().item()
                jaccards.append((units & other[i]).sum().item() / union if union else float("nan"))
            found[f"units_l{i}"] = int(units.sum())
            found[f"shared_l{i}"] = int((units & before).sum())
            found[f"used_l{i}"] = int((units | before).sum())
            found[f"jaccard_l{i}"] = sum(jaccards) / len(jaccards) if jaccards else float("nan")
        return found
