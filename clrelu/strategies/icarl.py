"""iCaRL (Rebuffi et al. 2017): exemplars chosen by herding, a sigmoid loss distilling the previous network on the old
classes, and classification by the nearest mean of exemplars."""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy
from clrelu.strategies.buffer import Buffer, WithMemory, herding, task_rows
from clrelu.streams.base import HeadLayout, Split

HERDING = ("welling", "exclusive")
CHUNK = 1024  # samples per forward pass when computing features


def features(model: ContinualModel, x: torch.Tensor) -> torch.Tensor:
    """The L2-normalised representation the heads read (the trunk's output)."""
    return F.normalize(model.trunk(x), dim=1)


def mirrored(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Flat rows of images of `image_shape` (channels, height, width), each flipped left to right: their code's
    x[:, :, :, ::-1], Avalanche's torch.flip(x, [3])."""
    return x.view(len(x), *image_shape).flip(3).reshape(len(x), -1)


def nearest_mean_scores(feats: torch.Tensor, means: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Minus the squared distance of each (normalised) feature to each class mean; -inf for classes without one."""
    scores = -torch.cdist(feats, means).pow(2)
    return scores.masked_fill(~known, float("-inf"))


class ICaRL(Strategy):
    """srebuffi/iCaRL (TheanoLasagne), as the paper:

    - training data: the task's samples and every exemplar kept so far (phase_data);
    - loss: the mean binary cross-entropy of the sigmoid outputs over the active units, with targets the one-hot
      label on the new classes and the previous network's sigmoid outputs on the old ones, plus `weight_decay` times
      the sum of the squared weights (lasagne's l2 on the regularizable weights, no biases);
    - after each task: ceil(memory_size / classes seen) exemplars per class (their nb_protos_cl): the old classes
      keep the first ones of their herding order, the new classes are ranked by herding on the normalised features;
    - evaluation: the nearest mean of exemplars (class means of the normalised features under the current network,
      normalised), so the accuracy matrix is iCaRL's classifier, not the linear head. With `flip_means`, each class
      mean is, as their main_cifar_100_theano.py computes it, the normalised average of two means: that of the
      exemplars' normalised features and that of their left-to-right mirror images' normalised features.
    """

    scenarios = ("class",)  # class-incremental: one head over every class, classified by class means
    regimes = ("sequential",)
    models = ("mlp",)  # the features are the trunk's output, read by the heads

    def __init__(self, layout: HeadLayout, memory_size: int = 2000, herding: str = "welling",
                 weight_decay: float = 1e-5, flip_means: bool = False,
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__(layout)
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.herding = checks.choice("strategy.herding", herding, HERDING)
        self.weight_decay = checks.number("strategy.weight_decay", weight_decay, minimum=0)
        self.flip_means = checks.boolean("strategy.flip_means", flip_means)
        if self.flip_means and image_shape is None:
            raise ConfigError("strategy.flip_means=true: this stream's inputs are not images (it has no image shape), "
                              "so they have no mirror image; use strategy.flip_means=false")
        self.image_shape = None if image_shape is None else tuple(image_shape)  # (channels, height, width)
        self.memory = Buffer()
        self.old: ContinualModel | None = None
        self.task_id = 0
        self.means: torch.Tensor | None = None  # one row per output unit
        self.known: torch.Tensor | None = None  # the units with a class mean

    def before_task(self, model: ContinualModel, task_id: int) -> None:
        self.task_id = task_id
        self.old = None
        if task_id > 0:
            self.old = copy.deepcopy(model).eval()
            self.old.requires_grad_(False)

    def phase_data(self, data):
        return WithMemory(data, self.memory) if len(self.memory) else data

    def loss_and_logits(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, task):
        logits = model(x, task)
        active = torch.isfinite(logits[0])  # the class scenario's active units (all with active_classes=all)
        targets = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        if self.old is not None:
            old_units = self.layout.units_of(self.task_id).start  # the units of tasks 0..t-1
            with torch.no_grad():
                targets[:, :old_units] = torch.sigmoid(self.old(x, task)[:, :old_units])
        loss = F.binary_cross_entropy_with_logits(logits[:, active], targets[:, active])
        if self.weight_decay:
            loss = loss + self.weight_decay * sum(p.pow(2).sum() for p in model.parameters()
                                                  if p.requires_grad and p.dim() > 1)
        return loss, logits

    @torch.no_grad()
    def _features_of(self, model: ContinualModel, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([features(model, x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])

    @torch.no_grad()
    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        was_training = model.training
        model.eval()
        per_class = math.ceil(self.memory_size / self.layout.units_of(task_id).stop)
        keep = []  # the old classes keep the first `per_class` of their exemplars, stored in herding order
        if len(self.memory):
            y = self.memory["y"].cpu()
            for c in y.unique().tolist():
                keep.append((y == c).nonzero().squeeze(1)[:per_class])
        targets = train.targets().cpu()
        new = []
        for c in targets.unique().tolist():
            members = (targets == c).nonzero().squeeze(1)
            x, _ = train.gather(members)
            ranked = herding(self._features_of(model, x).cpu(), per_class, self.herding, max_iterations=2 * per_class)
            new.append(members[ranked])
        old = len(self.memory)
        picks = torch.cat([*keep, old + torch.arange(sum(len(n) for n in new))])
        self.memory.keep(picks, task_rows(train, task_id, torch.cat(new)))
        self._class_means(model)
        model.train(was_training)

    def _class_means(self, model: ContinualModel) -> None:
        x, y, _ = self.memory.gather(torch.arange(len(self.memory)))
        feats = self._features_of(model, x)
        mirror = self._features_of(model, mirrored(x, self.image_shape)) if self.flip_means else None
        width = self.layout.head_width
        self.means = feats.new_zeros(width, feats.shape[1])
        self.known = torch.zeros(width, dtype=torch.bool, device=feats.device)
        y = y.to(feats.device)
        for c in y.unique().tolist():
            mean = feats[y == c].mean(0)
            if mirror is not None:
                mean = (mean + mirror[y == c].mean(0)) / 2
            self.means[c] = F.normalize(mean, dim=0)
            self.known[c] = True

    def eval_logits(self, model: ContinualModel, x: torch.Tensor, task_id: int) -> torch.Tensor | None:
        if self.means is None:
            return None  # no exemplars yet (the initial evaluation): the network's own outputs
        return nearest_mean_scores(features(model, x), self.means, self.known)

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "means": self.means, "known": self.known}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.means, self.known = state["means"], state["known"]
