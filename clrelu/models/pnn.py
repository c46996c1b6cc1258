"""The progressive neural network (Rusu et al. 2016): a new column per task, earlier columns frozen."""

from __future__ import annotations

import torch
from torch import nn

from clrelu import checks
from clrelu.models.base import ContinualModel
from clrelu.models.heads import route_by_task
from clrelu.models.layers import TrunkSpec, make_activation, output_width
from clrelu.models.units import UnitLayer
from clrelu.streams.base import HeadLayout


class Column(nn.Module):
    """An MLP whose layer l >= 1 also adds a learned linear map of layer l-1 of every earlier column.

    The last layer is the column's output head, so with one hidden layer the lateral connections go
    into the output layer.
    """

    def __init__(self, in_features: int, widths: tuple[int, ...], out_features: int, activation: str,
                 n_earlier: int, lateral: bool):
        super().__init__()
        inputs = [in_features, *(output_width(activation, w) for w in widths)]  # crelu doubles a layer's outputs
        outputs = [*widths, out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(inputs, outputs))
        self.activations = nn.ModuleList(make_activation(activation) for _ in widths)
        # laterals[l-1][k] maps layer l-1 of earlier column k into layer l of this column
        self.laterals = nn.ModuleList(
            nn.ModuleList(nn.Linear(inputs[i], outputs[i], bias=False) for _ in range(n_earlier if lateral else 0))
            for i in range(1, len(self.layers))
        )

    def forward(self, x: torch.Tensor, earlier: list[list[torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The column's logits and its hidden outputs; `earlier[k]` holds the hidden outputs of column k."""
        hidden: list[torch.Tensor] = []
        h = x
        for i, layer in enumerate(self.layers):
            z = layer(h)
            if i > 0:
                for adapter, column in zip(self.laterals[i - 1], earlier):
                    z = z + adapter(column[i - 1])
            if i < len(self.activations):
                h = self.activations[i](z)
                hidden.append(h)
        return z, hidden


class ProgressiveNet(ContinualModel):
    """One column per task, created when the task begins; every earlier column is frozen.

    Task `t` is answered by column `t`, which reads the hidden layers of columns 0..t-1, so the
    predictions on a task can never change after it was learned. Task scenario and sequential
    regime only.
    """

    scenarios = ("task",)
    regimes = ("sequential",)
    strategies = ("naive",)
    strategies_reason = "its earlier columns are frozen, so there is nothing left to protect"

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 column_width: int | None = None, lateral: bool = True):
        super().__init__()
        spec = TrunkSpec.checked(in_features, hidden, activation)
        if column_width is not None:
            checks.integer("model.column_width", column_width, minimum=1)
            spec = TrunkSpec(in_features, (column_width,) * len(spec.hidden), activation)
        self.spec = spec
        self.layout = layout
        self.lateral = checks.boolean("model.lateral", lateral)
        self.columns = nn.ModuleList()
        self.register_buffer("device_probe", torch.zeros(0), persistent=False)  # where new columns go

    def begin_task(self, task_id: int) -> None:
        if task_id != len(self.columns):
            raise ValueError(f"progressive net: task {task_id} began, but the next column is {len(self.columns)}")
        for column in self.columns:
            column.requires_grad_(False)
        column = Column(self.spec.in_features, self.spec.hidden, self.layout.head_width, self.spec.activation,
                        n_earlier=len(self.columns), lateral=self.lateral)
        self.columns.append(column.to(self.device_probe.device))

    def knows(self, task_id: int) -> bool:
        return task_id < len(self.columns)

    def hidden_layers(self) -> dict[str, nn.Module]:
        return {f"columns.{c}.activations.{i}": act for c, column in enumerate(self.columns)
                for i, act in enumerate(column.activations)}

    def unit_layers(self) -> list[UnitLayer]:
        """Layer i of column c is read by layer i+1 of its column and by the lateral adapters of later columns."""
        found = []
        for c, column in enumerate(self.columns):
            for i, activation in enumerate(column.activations):
                laterals = [later.laterals[i][c] for later in self.columns[c + 1:] if self.lateral]
                found.append(UnitLayer(f"columns.{c}.activations.{i}", activation, column.layers[i], None,
                                       [column.layers[i + 1], *laterals], output_width(self.spec.activation, 1)))
        return found

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
