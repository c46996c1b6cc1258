"""Transfer: a frozen feature extractor (trunk) and a new head per task."""

from __future__ import annotations

import torch
from torch import nn

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads
from clrelu.models.layers import TrunkSpec, linear_layers
from clrelu.models.units import UnitLayer
from clrelu.rundir.checkpoint import load_trunk
from clrelu.streams.base import HeadLayout, Split

BACKBONES = ("first_task", "checkpoint", "random", "torchvision")


class TransferHead(ContinualModel):
    """A trunk that stops learning, and the scenario's heads on top of it.

    backbone `first_task` trains the whole network on task 0 and then freezes the trunk; `checkpoint`
    loads the trunk a clrelu run saved in its model.pt (its architecture must match `trunk`, `hidden` and
    `activation`) and freezes it; `random` freezes the trunk as initialised; `torchvision` takes the torchvision
    model `backbone_name` with weights `backbone_weights` (null: random) up to its classifier, frozen
    (clrelu/models/torchvision_trunk.py). `finetune_last` keeps the last N fully connected trunk layers
    learning. A frozen trunk stays in eval mode, so that batch norm statistics cannot move either.
    """

    def __init__(self, in_features: int, layout: HeadLayout, backbone: str = "first_task",
                 backbone_path: str | None = None, hidden=(400,), activation: str = "relu", finetune_last: int = 0,
                 trunk: str = "mlp", channels=(32, 64), image_shape=None, backbone_name: str = "resnet18",
                 backbone_weights: str | None = None, backbone_size: int | None = None, image_normalisation=None):
        super().__init__()
        self.backbone = checks.choice("model.backbone", backbone, BACKBONES)
        self.inputs_mapped = False  # True once the run feeds the torchvision trunk's outputs instead of images
        if backbone == "torchvision":
            self._torchvision_trunk(trunk, finetune_last, backbone_name, backbone_weights, backbone_size, image_shape,
                                    image_normalisation)
        else:
            self._clrelu_trunk(in_features, backbone_path, hidden, activation, finetune_last, trunk, channels,
                               image_shape)
        self.heads = Heads(self.trunk_width, layout)
        self.trunk_frozen = False
        if backbone != "first_task":
            self.freeze_trunk()

    def _clrelu_trunk(self, in_features, backbone_path, hidden, activation, finetune_last, trunk, channels,
                      image_shape) -> None:
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation, trunk=trunk, channels=channels,
                                            image_shape=image_shape)
        self.finetune_last = checks.integer("model.finetune_last", finetune_last, minimum=0,
                                            maximum=len(self.trunk_spec.hidden))
        if self.backbone == "checkpoint":
            self.trunk_spec, state = self._checked_checkpoint(backbone_path, self.trunk_spec)
        self.trunk = self.trunk_spec.build()
        if self.backbone == "checkpoint":
            self.trunk.load_state_dict(state)
        self.trunk_width = self.trunk_spec.out_features

    def _torchvision_trunk(self, trunk, finetune_last, name, weights, size, image_shape, normalisation) -> None:
        from clrelu.models.torchvision_trunk import TorchvisionTrunk

        if trunk != "mlp":
            raise ConfigError(f"model.trunk={trunk}: model.backbone=torchvision brings its own trunk; "
                              "leave model.trunk=mlp")
        if finetune_last != 0:
            raise ConfigError(f"model.finetune_last={finetune_last}: a torchvision backbone stays frozen whole; "
                              "use 0")
        self.finetune_last = 0
        mean, std = normalisation if normalisation is not None else ((0.0,), (1.0,))
        self.trunk = TorchvisionTrunk(name, weights, image_shape, size, mean, std)
        self.trunk_width = self.trunk.out_features

    @staticmethod
    def _checked_checkpoint(path: str | None, wanted: TrunkSpec) -> tuple[TrunkSpec, dict]:
        if path is None:
            raise ConfigError("model.backbone_path: needed with model.backbone=checkpoint; give a run's model.pt")
        spec, state = load_trunk(path)
        if spec.in_features != wanted.in_features:
            raise ConfigError(f"model.backbone_path={path}: its trunk takes {spec.in_features} inputs, "
                              f"this stream has {wanted.in_features}")
        if (spec.kind, spec.hidden, spec.activation) != (wanted.kind, wanted.hidden, wanted.activation):
            def shown(s: TrunkSpec) -> str:
                return ("" if s.kind == "mlp" else f"trunk={s.kind} ") + f"hidden={list(s.hidden)} activation={s.activation}"

            raise ConfigError(f"model.backbone_path={path}: its trunk is {shown(spec)}, the config asks for "
                              f"{shown(wanted)}; set model.trunk, model.hidden and model.activation to match")
        if (spec.image_shape, spec.channels) != (wanted.image_shape, wanted.channels):
            raise ConfigError(f"model.backbone_path={path}: its trunk takes images of shape {spec.image_shape} with "
                              f"channels={list(spec.channels)}, the config has {wanted.image_shape} and "
                              f"{list(wanted.channels)}; set model.channels to match, on a stream of the same images")
        try:
            spec.build().load_state_dict(state)
        except RuntimeError:
            raise ConfigError(f"model.backbone_path={path}: its weights do not fit the architecture it names") from None
        return spec, state

    def freeze_trunk(self) -> None:
        """Stop the trunk learning, except its last `finetune_last` fully connected layers (with their
        activations); the frozen trunk goes to eval mode."""
        self.trunk_frozen = True
        self.trunk.requires_grad_(False)
        if self.finetune_last:
            first = linear_layers(self.trunk)[-self.finetune_last]
            start = list(self.trunk).index(first)
            for module in list(self.trunk)[start:]:
                module.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferHead:
        super().train(mode)
        if getattr(self, "trunk_frozen", False):
            self.trunk.eval()  # batch norm statistics and dropout of a frozen trunk stay as they are
        return self

    def hidden_layers(self) -> dict[str, nn.Module]:
        return {} if self.backbone == "torchvision" else super().hidden_layers()

    def unit_layers(self) -> list[UnitLayer]:
        return [] if self.backbone == "torchvision" else super().unit_layers()

    def fixed_units(self) -> str | None:
        return "the units of its frozen trunk"

    def fixed_input_map(self) -> nn.Module | None:
        return self.trunk if self.backbone == "torchvision" else None

    def read_mapped_inputs(self) -> None:
        self.inputs_mapped = True

    def end_task(self, task_id: int, train: Split) -> None:
        if self.backbone == "first_task" and task_id == 0:
            self.freeze_trunk()

    def get_extra_state(self) -> dict:
        return {"trunk_frozen": self.trunk_frozen}

    def set_extra_state(self, state: dict) -> None:
        if state["trunk_frozen"]:
            self.freeze_trunk()  # a resumed run keeps its trunk frozen

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.heads(x if self.inputs_mapped else self.trunk(x), task)
