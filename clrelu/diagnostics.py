"""ReLU diagnostics, measured during the evaluation passes: activation sparsity, dead units, task overlap."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel


class ActivationMonitor:
    """Forward hooks on every hidden layer count, per evaluated task, how often each unit is active.

    A unit is active on a sample when its output exceeds `activity_threshold`. Per pass (one
    evaluation of every task) and task it gives, for each layer:

    - sparsity: the fraction of the layer's outputs that are not active, over the task's samples;
    - dead fraction: the fraction of units not active on any sample of any task evaluated so far in
      the pass (tasks 0..j for the row of task j);

    and after the pass, per layer and pair of tasks, the Jaccard overlap of their task-active units:
    those active on at least `unit_threshold` of the task's samples. The hooks only count; the
    statistics are computed once per pass, in a few tensor operations per layer.
    """

    def __init__(self, model: ContinualModel, activity_threshold: float = 0.0, unit_threshold: float = 0.05):
        self.model = model
        self.activity_threshold = checks.number("diagnostics.activity_threshold", activity_threshold)
        self.unit_threshold = checks.number("diagnostics.unit_threshold", unit_threshold, minimum=0, maximum=1)
        self._hooks: list = []
        self._task: int | None = None
        self._counts: dict[str, dict[int, torch.Tensor]] = {}  # layer -> task -> active samples per unit
        self._samples: dict[int, int] = {}
        self._buffers: dict[str, torch.Tensor] = {}  # per layer, reused by the hooks
        self.activations: list[dict] = []  # rows of the last pass: eval_task, layer, sparsity, dead_fraction, n_units
        self.overlap: list[dict] = []      # rows of the last pass: layer, task_a, task_b, jaccard

    def _hook(self, name: str, nonnegative: bool):
        threshold = self.activity_threshold

        def count(module, inputs, output):
            # sign() is 1 where an output is above the threshold, else 0 or -1; clamping drops the -1s, which
            # outputs never below zero cannot have at threshold 0. This runs several times faster than summing
            # the boolean (output > threshold), and writing into a kept buffer spares the allocator (and the
            # kernel's page zeroing) a fresh block of the layer's size on every call.
            above = self._buffers.get(name)
            if above is None or above.shape != output.shape:
                above = self._buffers[name] = torch.empty_like(output)
            torch.sign(output if threshold == 0 else torch.sub(output, threshold, out=above), out=above)
            if threshold != 0 or not nonnegative:
                above.clamp_(min=0)
            active = above.sum(0)
            per_task = self._counts.setdefault(name, {})
            per_task[self._task] = active if self._task not in per_task else per_task[self._task] + active
        return count

    def begin_pass(self) -> None:
        nonnegative = self.model.hidden_nonnegative()
        self._hooks = [m.register_forward_hook(self._hook(name, nonnegative))
                       for name, m in self.model.hidden_layers().items()]
        self._counts, self._samples = {}, {}

    def begin_task(self, task_id: int) -> None:
        self._task = task_id

    def end_task(self, n_samples: int) -> None:
        self._samples[self._task] = n_samples

    def end_pass(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.activations, self.overlap = [], []
        for name, per_task in self._counts.items():
            tasks = sorted(per_task)
            counts = torch.stack([per_task[t] for t in tasks]).double()  # tasks x units
            samples = torch.tensor([float(self._samples[t]) for t in tasks], dtype=torch.float64)
            n_units = counts.shape[1]
            sparsity = 1 - counts.sum(1) / (samples * n_units)
            ever = (counts > 0).cummax(0).values  # active on some sample of tasks up to this one
            dead = 1 - ever.double().mean(1)
            for t, s, d in zip(tasks, sparsity.tolist(), dead.tolist()):
                self.activations.append({"eval_task": t, "layer": name, "sparsity": s, "dead_fraction": d,
                                         "n_units": n_units})
            task_active = (counts >= self.unit_threshold * samples[:, None]).double()
            both = task_active @ task_active.T
            sizes = task_active.sum(1)
            union = sizes[:, None] + sizes[None, :] - both
            jaccard = (both / union).tolist()  # 0/0 (two empty sets) is NaN
            for i in range(len(tasks)):
                for j in range(i + 1, len(tasks)):
                    self.overlap.append({"layer": name, "task_a": tasks[i], "task_b": tasks[j],
                                         "jaccard": jaccard[i][j]})
