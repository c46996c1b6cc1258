"""What the trainer needs of every model, and the defaults most models keep."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clrelu.models.conv import ChannelLayer, ConvBody
from clrelu.models.layers import output_width, trunk_hidden_layers
from clrelu.models.units import UnitLayer, trunk_units
from clrelu.streams.base import SCENARIOS, Split


class ContinualModel(nn.Module):
    """A model that learns tasks one after another.

    Subclasses set `scenarios` (and `regimes`) to what they can serve, build `self.heads` (or override
    `knows` and `begin_task`), and implement `forward(x, task)`, where `task` is an int for a batch of
    one task or a tensor of task ids for a mixed batch. A model with a shared feature extractor keeps
    it as `self.trunk`, built from `self.trunk_spec`, so that runs can save it for `model=transfer`.
    """

    scenarios: tuple[str, ...] = SCENARIOS
    regimes: tuple[str, ...] = ("sequential", "cumulative", "joint")
    strategies: tuple[str, ...] | None = None  # the strategy configs it can train with; None: any
    strategies_reason = ""  # why it refuses the others

    def begin_task(self, task_id: int) -> None:
        """Called before the first training step that sees task `task_id`."""
        self.heads.add_task(task_id)

    def end_task(self, task_id: int, train: Split) -> None:
        """Called after training on task `task_id` ends, with its training data (read it in chunks)."""

    def after_step(self) -> None:
        """Called after every optimizer step."""

    def knows(self, task_id: int) -> bool:
        """Whether the model can be evaluated on task `task_id` yet (else its accuracy is NaN)."""
        return self.heads.knows(task_id)

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor,
                        task: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of a batch (cross-entropy of the logits), and the logits it was computed from."""
        logits = self(x, task)
        return F.cross_entropy(logits, y), logits

    def stats(self) -> dict[str, float]:
        """Numbers worth recording after each task (model_stats.csv), e.g. units allocated."""
        return {}

    def hidden_layers(self) -> dict[str, nn.Module]:
        """The modules whose outputs are the hidden layers (after activation and k-WTA), by name, for the
        diagnostics; by default the layers of `self.trunk`, a conv body's included."""
        trunk = getattr(self, "trunk", None)
        return {} if trunk is None else trunk_hidden_layers(trunk, "trunk")

    def unit_layers(self) -> list[UnitLayer]:
        """The hidden layers as units (models/units.py), for the plasticity measures and the strategies that
        re-initialise units; by default the layers of `self.trunk`, the last one read by `trunk_readers()`."""
        trunk = getattr(self, "trunk", None)
        if trunk is None:
            return []
        return trunk_units(trunk, self.trunk_readers(), output_width(self.trunk_spec.activation, 1))

    def channel_layers(self) -> list[ChannelLayer]:
        """The convolutional hidden layers, a channel a unit (models/units.py), for the plasticity measures; by
        default those of `self.trunk`'s conv body."""
        trunk = getattr(self, "trunk", None)
        if not isinstance(trunk, nn.Sequential) or not len(trunk) or not isinstance(trunk[0], ConvBody):
            return []
        return trunk[0].channel_layers("trunk.0")

    def trunk_readers(self) -> list[nn.Linear]:
        """The linear layers that read the trunk's output: the first layer of every head."""
        return [head if isinstance(head, nn.Linear) else head[0] for head in self.heads.layers]

    def fixed_units(self) -> str | None:
        """The hidden units that must keep their weights whatever a strategy does, in words for an error message
        ("the units of its frozen trunk"), or None when every unit may change."""
        return None

    def fixed_input_map(self) -> nn.Module | None:
        """A module every input goes through first and that never changes during the run (a frozen pretrained
        trunk), or None. A run may compute its outputs once per sample and then call `read_mapped_inputs()`."""
        return None

    def read_mapped_inputs(self) -> None:
        """From now on every input is already the output of `fixed_input_map()`."""
        raise NotImplementedError(f"{type(self).__name__} has no fixed input map")

    def hidden_nonnegative(self) -> bool:
        """Whether the hidden outputs can never be negative (lets the diagnostics count in fewer passes)."""
        spec = getattr(self, "trunk_spec", None)
        return spec is not None and spec.nonnegative

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
