"""Hard parameter sharing: a shared trunk, a small tower per task, and an optional reconstruction head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.models.heads import Heads
from clrelu.models.layers import TrunkSpec
from clrelu.streams.base import HeadLayout


class HardSharedMultitask(ContinualModel):
    """Trunk, then per task a tower (`tower_hidden` units and the task's outputs).

    The loss of a batch is `sum_t lambda_t * CE_t + lambda_rec * MSE`, CE_t the mean cross-entropy
    over the batch's samples of task t and MSE the error of reconstructing the input pixels from the
    trunk's features (only when `lambda_rec > 0`; otherwise there is no reconstruction head).
    With `trainer.regime=joint` it is the classic multitask learner. Task scenario only.
    """

    scenarios = ("task",)

    def __init__(self, in_features: int, layout: HeadLayout, hidden=(400,), activation: str = "relu",
                 tower_hidden: int = 64, lambda_task=1.0, lambda_rec: float = 0.0, trunk: str = "mlp",
                 channels=(32, 64), image_shape=None):
        super().__init__()
        self.trunk_spec = TrunkSpec.checked(in_features, hidden, activation, trunk=trunk, channels=channels,
                                            image_shape=image_shape)
        self.trunk = self.trunk_spec.build()
        tower_hidden = checks.integer("model.tower_hidden", tower_hidden, minimum=1)
        self.heads = Heads(self.trunk_spec.out_features, layout, tower_hidden=tower_hidden, activation=activation)
        self.lambda_task = self._task_weights(lambda_task, layout.n_tasks)
        self.lambda_rec = checks.number("model.lambda_rec", lambda_rec, minimum=0)
        self.reconstruction = nn.Linear(self.trunk_spec.out_features, in_features) if self.lambda_rec > 0 else None

    @staticmethod
    def _task_weights(value, n_tasks: int) -> list[float]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [checks.number("model.lambda_task", value, minimum=0)] * n_tasks
        weights = list(value) if isinstance(value, (list, tuple)) else None
        if weights is None or len(weights) != n_tasks:
            raise ConfigError(f"model.lambda_task={value}: give one weight, or a list of one weight per task "
                              f"({n_tasks})")
        return [checks.number("model.lambda_task", w, minimum=0) for w in weights]

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x), task)

    def trunk_readers(self) -> list[nn.Linear]:
        return super().trunk_readers() + ([self.reconstruction] if self.reconstruction is not None else [])

    def loss_and_logits(self, x: torch.Tensor, y: torch.Tensor,
                        task: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x)
        logits = self.heads(features, task)
        ce = F.cross_entropy(logits, y, reduction="none")
        if isinstance(task, int):
            loss = self.lambda_task[task] * ce.mean()
        else:
            loss = sum(self.lambda_task[t] * ce[task == t].mean() for t in task.unique().tolist())
        if self.reconstruction is not None:
            loss = loss + self.lambda_rec * F.mse_loss(self.reconstruction(features), x)
        return loss, logits
