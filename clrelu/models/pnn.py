"""The progressive neural network (Rusu et al. 2016): a new column per task, earlier columns frozen."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.models.conv import ChannelLayer
from clrelu.models.heads import route_by_task
from clrelu.models.layers import TrunkSpec, make_activation, output_width
from clrelu.models.units import UnitLayer
from clrelu.streams.base import HeadLayout

ADAPTERS = ("mlp", "linear")
ALPHA_INIT = 0.1  # the MLP adapter's scalar starts uniform in [0, ALPHA_INIT): "a random small value" (Rusu et al.)


class LinearAdapter(nn.Module):
    """Rusu et al. (2016)'s eq. 1 lateral connection: sum_j U^(k:j) h^(j), one linear map per earlier column j."""

    def __init__(self, width_in: int, width_out: int, n_earlier: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(width_in, width_out, bias=False) for _ in range(n_earlier))

    def reader(self, column: int) -> nn.Linear:
        """The linear layer that reads earlier column `column` (its weight's columns are that column's outputs)."""
        return self.maps[column]

    def forward(self, earlier: list[torch.Tensor]) -> torch.Tensor:
        return sum(u(h) for u, h in zip(self.maps, earlier))


class MLPAdapter(nn.Module):
    """Rusu et al. (2016)'s eq. 2 lateral connection: U sigma(V alpha h^(<k)).

    h^(<k) concatenates layer i-1 of the k-1 earlier columns (n_{i-1} outputs each), alpha is a learned scalar
    initialised to a random small value, V (n_{i-1} x n_{i-1}(k-1), with a bias) projects it to one column's
    layer (n_{i-1} units), sigma is the non-linearity (the model's activation) and U (n_i x n_{i-1}) the lateral
    weights into layer i (no bias: layer i has its own). V is kept as one block per earlier column, [V_1 ... V_{k-1}],
    initialised as one nn.Linear of the concatenation would be, so that each block reads one column's outputs.
    """

    def __init__(self, width_in: int, units: int, width_out: int, n_earlier: int, activation: str):
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(()) * ALPHA_INIT)
        whole = nn.Linear(width_in * n_earlier, units)  # V, for PyTorch's initialisation of the whole projection
        self.project = nn.ModuleList(nn.Linear(width_in, units, bias=False) for _ in range(n_earlier))
        with torch.no_grad():
            for j, block in enumerate(self.project):
                block.weight.copy_(whole.weight[:, j * width_in:(j + 1) * width_in])
        self.project_bias = nn.Parameter(whole.bias.detach().clone())
        self.activation = make_activation(activation)                                 # sigma
        self.lateral = nn.Linear(output_width(activation, units), width_out, bias=False)  # U

    def reader(self, column: int) -> nn.Linear:
        return self.project[column]

    def projection(self) -> torch.Tensor:
        """V as one matrix, n_{i-1} x n_{i-1}(k-1)."""
        return torch.cat([block.weight for block in self.project], dim=1)

    def forward(self, earlier: list[torch.Tensor]) -> torch.Tensor:
        projected = sum(v(self.alpha * h) for v, h in zip(self.project, earlier)) + self.project_bias
        return self.lateral(self.activation(projected))


class Column(nn.Module):
    """An MLP whose layer l >= 1 also adds a lateral adapter's output from layer l-1 of every earlier column.

    The last layer is the column's output head, so with one hidden layer the lateral connections go
    into the output layer. On a conv trunk the column starts with its own conv `body`, and the lateral
    connections join the fully connected layers after it.
    """

    def __init__(self, in_features: int, widths: tuple[int, ...], out_features: int, activation: str,
                 n_earlier: int, lateral: bool, adapter: str = "mlp", body: nn.Module | None = None):
        super().__init__()
        self.body = body
        first = in_features if body is None else body.out_features
        inputs = [first, *(output_width(activation, w) for w in widths)]  # crelu doubles a layer's outputs
        outputs = [*widths, out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(inputs, outputs))
        self.activations = nn.ModuleList(make_activation(activation) for _ in widths)

        def make(i: int) -> nn.Module:  # the adapter from layer i-1 of the earlier columns into layer i
            if adapter == "mlp":
                return MLPAdapter(inputs[i], widths[i - 1], outputs[i], n_earlier, activation)
            return LinearAdapter(inputs[i], outputs[i], n_earlier)

        # laterals[l-1] maps layer l-1 of the earlier columns into layer l of this column
        self.laterals = nn.ModuleList(make(i) for i in range(1, len(self.layers)) if lateral and n_earlier)

    def forward(self, x: torch.Tensor, earlier: list[list[torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The column's logits and its hidden outputs; `earlier[k]` holds the hidden outputs of column k."""
        hidden: list[torch.Tensor] = []
        h = x if self.body is None else self.body(x)
        for i, layer in enumerate(self.layers):
            z = layer(h)
            if i > 0 and len(self.laterals):
                z = z + self.laterals[i - 1]([column[i - 1] for column in earlier])
            if i < len(self.activations):
                h = self.activations[i](z)
                hidden.append(h)
        return z, hidden


class ProgressiveNet(ContinualModel):
    """One column per task, created when the task begins; every earlier column is frozen.

    Task `t` is answered by column `t`, which reads the hidden layers of columns 0..t-1 through its
    lateral adapters (`adapter`: mlp, eq. 2 of the paper, or linear, eq. 1), so the predictions on a
    task can never change after it was learned (frozen columns stay in eval mode, so that batch norm
    statistics of a conv column cannot move either). Task scenario and sequential
    regime only.
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    strategies = ("naive",)
    strategies_reason = "its earlier columns are frozen, so there is nothing left to protect"

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 column_width: int | None = None, lateral: bool = True, adapter: str = "mlp", trunk: str = "mlp",
                 channels=(32, 64), image_shape=None):
        super().__init__()
        spec = TrunkSpec.checked(in_features, hidden, activation, trunk=trunk, channels=channels,
                                 image_shape=image_shape)
        if column_width is not None:
            checks.integer("model.column_width", column_width, minimum=1)
            spec = dataclasses.replace(spec, hidden=(column_width,) * len(spec.hidden))
        self.spec = spec
        self.layout = layout
        self.lateral = checks.boolean("model.lateral", lateral)
        self.adapter = checks.choice("model.adapter", adapter, ADAPTERS)
        self.columns = nn.ModuleList()
        self.register_buffer("device_probe", torch.zeros(0), persistent=False)  # where new columns go

    def begin_task(self, task_id: int) -> None:
        if task_id != len(self.columns):
            raise ValueError(f"progressive net: task {task_id} began, but the next column is {len(self.columns)}")
        for column in self.columns:
            column.requires_grad_(False)
        column = Column(self.spec.in_features, self.spec.hidden, self.layout.head_width, self.spec.activation,
                        n_earlier=len(self.columns), lateral=self.lateral, adapter=self.adapter,
                        body=self.spec.build_body())
        self.columns.append(column.to(self.device_probe.device))
        self.train(self.training)

    def train(self, mode: bool = True) -> ProgressiveNet:
        super().train(mode)
        for column in self.columns[:-1]:
            column.eval()  # frozen columns: batch norm statistics stay as they were
        return self

    def knows(self, task_id: int) -> bool:
        return task_id < len(self.columns)

    def hidden_layers(self) -> dict[str, nn.Module]:
        found = {}
        for c, column in enumerate(self.columns):
            if column.body is not None:
                found.update({f"columns.{c}.body.{name}": m for name, m in column.body.hidden_layers().items()})
            found.update({f"columns.{c}.activations.{i}": act for i, act in enumerate(column.activations)})
        return found

    def unit_layers(self) -> list[UnitLayer]:
        """Layer i of column c is read by layer i+1 of its column and by the lateral adapters of later columns."""
        found = []
        for c, column in enumerate(self.columns):
            for i, activation in enumerate(column.activations):
                laterals = [later.laterals[i].reader(c) for later in self.columns[c + 1:] if self.lateral]
                found.append(UnitLayer(f"columns.{c}.activations.{i}", activation, column.layers[i], None,
                                       [column.layers[i + 1], *laterals], output_width(self.spec.activation, 1)))
        return found

    def channel_layers(self) -> list[ChannelLayer]:
        return [layer for c, column in enumerate(self.columns) if column.body is not None
                for layer in column.body.channel_layers(f"columns.{c}.body")]

    def hidden_nonnegative(self) -> bool:
        return self.spec.nonnegative

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        if not isinstance(task, int):
            return route_by_task(x, task, self.layout.head_width, self)
        earlier: list[list[torch.Tensor]] = []
        if self.lateral:
            with torch.no_grad():  # frozen columns: their outputs are constants for the new column
                for column in self.columns[:task]:
                    earlier.append(column(x, earlier)[1])
        return self.columns[task](x, earlier)[0]
