"""Transfer: a frozen feature extractor (trunk) and a new head per task."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.checkpoint import load_trunk
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads
from clrelu.models.layers import TrunkSpec, linear_layers
from clrelu.streams.base import HeadLayout

BACKBONES = ("first_task", "checkpoint", "random")


class TransferHead(ContinualModel):
    """A trunk that stops learning, and the scenario's heads on top of it.

    backbone `first_task` trains the whole network on task 0 and then freezes the trunk; `checkpoint`
    loads the trunk a clrelu run saved in its model.pt (its architecture must match `hidden` and
    `activation`) and freezes it; `random` freezes the trunk as initialised. `finetune_last` keeps
    the last N trunk layers learning.
    """

    def __init__(self, in_features: int, layout: HeadLayout, backbone: str = "first_task",
                 backbone_path: str | None = None, hidden=(400,), activation: str = "relu", finetune_last: int = 0):
        super().__init__()
        self.backbone = checks.choice("model.backbone", backbone, BACKBONES)
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation)
        self.finetune_last = checks.integer("model.finetune_last", finetune_last, minimum=0,
                                            maximum=len(self.trunk_spec.hidden))
        if backbone == "checkpoint":
            self.trunk_spec, state = self._checked_checkpoint(backbone_path, self.trunk_spec)
        self.trunk = self.trunk_spec.build()
        if backbone == "checkpoint":
            self.trunk.load_state_dict(state)
        self.heads = Heads(self.trunk_spec.out_features, layout)
        self.trunk_frozen = False
        if backbone != "first_task":
            self.freeze_trunk()

    @staticmethod
    def _checked_checkpoint(path: str | None, wanted: TrunkSpec) -> tuple[TrunkSpec, dict]:
        if path is None:
            raise ConfigError("model.backbone_path: needed with model.backbone=checkpoint; give a run's model.pt")
        spec, state = load_trunk(path)
        if spec.in_features != wanted.in_features:
            raise ConfigError(f"model.backbone_path={path}: its trunk takes {spec.in_features} inputs, "
                              f"this stream has {wanted.in_features}")
        if (spec.hidden, spec.activation) != (wanted.hidden, wanted.activation):
            raise ConfigError(f"model.backbone_path={path}: its trunk is hidden={list(spec.hidden)} "
                              f"activation={spec.activation}, the config asks for hidden={list(wanted.hidden)} "
                              f"activation={wanted.activation}; set model.hidden and model.activation to match")
        try:
            spec.build().load_state_dict(state)
        except RuntimeError:
            raise ConfigError(f"model.backbone_path={path}: its weights do not fit the architecture it names") from None
        return spec, state

    def freeze_trunk(self) -> None:
        """Stop the trunk learning, except its last `finetune_last` layers (with their activations)."""
        self.trunk_frozen = True
        self.trunk.requires_grad_(False)
        if self.finetune_last:
            first = linear_layers(self.trunk)[-self.finetune_last]
            start = list(self.trunk).index(first)
            for module in list(self.trunk)[start:]:
                module.requires_grad_(True)

    def fixed_units(self) -> str | None:
        return "the units of its frozen trunk"

    def end_task(self, task_id: int, x_train: torch.Tensor) -> None:
        if self.backbone == "first_task" and task_id == 0:
            self.freeze_trunk()

    def get_extra_state(self) -> dict:
        return {"trunk_frozen": self.trunk_frozen}

    def set_extra_state(self, state: dict) -> None:
        if state["trunk_frozen"]:
            self.freeze_trunk()  # a resumed run keeps its trunk frozen

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x), task)
