"""GDumb (Prabhu et al. 2020): a greedy class-balanced sampler, and a learner trained from scratch on the sampler's
memory alone before every evaluation."""

from __future__ import annotations

import logging
import math

import torch

from clrelu import checks
from clrelu.errors import RunError
from clrelu.models.base import ContinualModel
from clrelu.strategies.base import Strategy, trainable
from clrelu.strategies.buffer import Buffer, chunked, greedy_balanced_picks, task_rows
from clrelu.streams.base import HeadLayout, Split

log = logging.getLogger(__name__)


@torch.no_grad()
def reinitialise(model: ContinualModel) -> None:
    """A new initialisation of every module that has one (PyTorch's own, as a freshly built model gets)."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


class GDumb(Strategy):
    """drimpossible/GDumb: the sampler sees every training sample once, in a random order, and keeps a memory of
    `memory_size` samples balanced over the classes (buffer.greedy_balanced_picks); the learner never trains on the
    stream's batches: when a task ends the model is re-initialised and trained on the memory alone for `epochs`
    passes of `batch_size` samples, with SGD (`momentum`, `weight_decay`), one warm-up pass at max_lr / 10, then SGDR
    (cosine annealing from `max_lr` to `min_lr` with warm restarts after 1, 2, 4, ... passes) and the gradient's
    norm clipped at `clip`, as their main.py. trainer.epochs, trainer.batch_size and the optimizer config are not used.

    A class is a task's label (in the class scenario, a label).
    """

    regimes = ("sequential",)
    models = ("mlp",)  # a model whose every parameter a fresh initialisation redraws

    def __init__(self, layout: HeadLayout, memory_size: int = 500, epochs: int = 128, batch_size: int = 16,
                 max_lr: float = 0.05, min_lr: float = 0.0005, momentum: float = 0.9, weight_decay: float = 1e-6,
                 clip: float = 10.0):
        super().__init__(layout)
        self.memory_size = checks.integer("strategy.memory_size", memory_size, minimum=1)
        self.epochs = checks.integer("strategy.epochs", epochs, minimum=1)
        self.batch_size = checks.integer("strategy.batch_size", batch_size, minimum=1)
        self.max_lr = checks.number("strategy.max_lr", max_lr, above=0)
        self.min_lr = checks.number("strategy.min_lr", min_lr, minimum=0)
        self.momentum = checks.number("strategy.momentum", momentum, minimum=0, below=1)
        self.weight_decay = checks.number("strategy.weight_decay", weight_decay, minimum=0)
        self.clip = checks.number("strategy.clip", clip, above=0)
        self.memory = Buffer()
        self.final_loss = math.nan
        log.info("gdumb trains only on its memory, from scratch after every task, with its own SGD and schedule "
                 "(strategy.epochs, strategy.batch_size, strategy.max_lr, ...); trainer.epochs, trainer.batch_size "
                 "and the optimizer config are not used")

    def phase_data(self, data):
        return None  # the learner never sees the stream's batches

    def classes(self, y: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """A class is a task's label: in the domain scenario the same label in two tasks is two classes (balancing
        the labels alone would keep the first task's samples forever, every label being full)."""
        return task * self.layout.head_width + y

    def after_task(self, model: ContinualModel, task_id: int, train: Split) -> None:
        order = torch.randperm(len(train))  # the order in which the sampler sees the task's samples
        y = train.targets().cpu()[order]
        arriving = self.classes(y, torch.full_like(y, task_id))
        kept = self.classes(self.memory["y"], self.memory["task"]).cpu() if len(self.memory) else y[:0]
        picks = greedy_balanced_picks(kept, arriving, self.memory_size)
        old = len(self.memory)
        fresh = picks >= old
        picks[fresh] = old + order[picks[fresh] - old]
        self.memory.keep(picks, lambda idx: task_rows(train, task_id, idx))
        reinitialise(model)
        self.fit(model)

    def fit(self, model: ContinualModel) -> None:
        """Train `model` on the memory as GDumb's experiment() does."""
        params = list(trainable(model).values())
        optimizer = torch.optim.SGD(params, lr=self.max_lr, momentum=self.momentum, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=1, T_mult=2,
                                                                         eta_min=self.min_lr)
        model.train()
        losses = []
        for epoch in range(self.epochs):
            if epoch <= 1:  # a warm-up pass at a tenth of max_lr, then max_lr
                for group in optimizer.param_groups:
                    group["lr"] = self.max_lr * (0.1 if epoch == 0 else 1.0)
            else:
                scheduler.step()
            order = torch.randperm(len(self.memory))
            for idx in chunked(len(order), self.batch_size):
                x, y, task = self.memory.gather(order[idx])
                loss, _ = model.loss_and_logits(x, y, task)
                if not math.isfinite(loss.item()):
                    raise RunError(f"gdumb, pass {epoch} over the memory: the loss became {loss.item()} (a smaller "
                                   "strategy.max_lr usually avoids this)")
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, self.clip)
                optimizer.step()
                model.after_step()
                if epoch == self.epochs - 1:
                    losses.append(loss.item())
        self.final_loss = sum(losses) / max(len(losses), 1)

    def stats(self) -> dict[str, float]:
        return {"gdumb_memory": float(len(self.memory)), "gdumb_final_loss": self.final_loss}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "final_loss": self.final_loss}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.final_loss = state["final_loss"]
