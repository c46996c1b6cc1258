"""ReLU diagnostics, measured during the evaluation passes: sparsity, dead units and task overlap, counting zeros."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.models.base import ContinualModel

ALL_PAIRS_UP_TO = 20  # a pass over more tasks gives the overlap of its focus task with each other task only


class ActivationMonitor:
    """Forward hooks on every hidden layer count, per evaluated task, how often each unit's output is zero.

    An output is zero when |h| <= `zero_tolerance` (default 0: exactly zero), as the literature counts: the
    sparsity of a layer is k/n, k the outputs that are zero, and a unit is dead when its output is zero on
    every sample (Dohare et al. 2024). A unit is nonzero on a sample otherwise. Per pass (one evaluation of
    every task) and task it gives, for each layer:

    - sparsity: the fraction of the layer's outputs that are zero, over the task's samples;
    - nonpositive_fraction: the fraction of outputs <= 0, the sign-based figure. For relu (and k-WTA after
      relu) it equals the sparsity; for activations with negative outputs (leaky_relu, elu, gelu, swish,
      tanh) it is the share of outputs in their negative region, which is not sparsity: none of them is zero;
    - dead fraction: the fraction of units zero on every sample of every task evaluated so far in the pass
      (tasks 0..j for the row of task j);

    and after the pass, per layer and pair of tasks, the Jaccard overlap of their task-active units: the units
    nonzero on at least `unit_threshold` of the task's samples. An activation that is never exactly zero
    (tanh, sigmoid, softplus, elu, gelu, swish, leaky_relu, prelu: zero only where the pre-activation is
    exactly 0 or underflows) makes every unit task-active for every task, so its overlap is 1. Every pair while
    a pass covers at most `ALL_PAIRS_UP_TO` tasks; beyond, only the pairs of the pass's focus task (the task
    just learned) with each other task, so that the rows grow with the tasks evaluated, not their square. The
    hooks only count; the statistics are computed once per pass, in a few tensor operations per layer.

    A conv layer (maps N x C x H x W) counts per channel, over positions and samples: its units are its
    channels, and every position of a sample's map is one output, so sparsity is the share of zero outputs,
    a channel is dead when it is zero at every position of every sample, and task-active when it is nonzero
    on at least `unit_threshold` of the task's (sample, position) pairs.
    """

    def __init__(self, model: ContinualModel, zero_tolerance: float = 0.0, unit_threshold: float = 0.05):
        self.model = model
        self.zero_tolerance = checks.number("diagnostics.zero_tolerance", zero_tolerance, minimum=0)
        self.unit_threshold = checks.number("diagnostics.unit_threshold", unit_threshold, minimum=0, maximum=1)
        self._hooks: list = []
        self._task: int | None = None
        self._focus = 0
        # layer -> task -> nonzero (positive) samples per unit; a conv channel counts its share of positions a sample
        self._nonzero: dict[str, dict[int, torch.Tensor]] = {}
        self._positive: dict[str, dict[int, torch.Tensor]] = {}
        self._samples: dict[int, int] = {}
        self._buffers: dict[str, torch.Tensor] = {}  # per layer, reused by the hooks
        self.activations: list[dict] = []  # rows of the last pass: eval_task, layer, sparsity, nonpositive_fraction,
        #                                    dead_fraction, n_units
        self.overlap: list[dict] = []      # rows of the last pass: layer, task_a, task_b, jaccard

    def _add(self, counts: dict, name: str, value: torch.Tensor) -> None:
        per_task = counts.setdefault(name, {})
        per_task[self._task] = value if self._task not in per_task else per_task[self._task] + value

    def _hook(self, name: str, nonnegative: bool):
        tolerance = self.zero_tolerance

        def count(module, inputs, output):
            # sign() is 1, 0 or -1 per output; summing it and its absolute value counts positive and nonzero
            # outputs several times faster than summing booleans, and writing into a kept buffer spares the
            # allocator (and the kernel's page zeroing) a fresh block of the layer's size on every call.
            s = self._buffers.get(name)
            if s is None or s.shape != output.shape:
                s = self._buffers[name] = torch.empty_like(output)
            if output.dim() > 2:  # conv maps: per channel, each position an output (counts per sample's map)
                positions = output[0, 0].numel()

                def per_unit(t):  # positions first (exact in float32), then samples in float64
                    return (t.view(len(t), t.shape[1], -1).sum(2).sum(0, dtype=torch.float64) / positions).float()
            else:
                def per_unit(t):
                    return t.sum(0)
            torch.sign(output, out=s)
            if tolerance == 0:
                if nonnegative:  # outputs >= 0: positive and nonzero are the same
                    positive = nonzero = per_unit(s)
                else:
                    difference = per_unit(s)  # positive minus negative outputs, per unit
                    nonzero = per_unit(s.abs_())  # positive plus negative
                    positive = (difference + nonzero) / 2
            else:
                positive = per_unit(s) if nonnegative else per_unit(s.clamp_(min=0))
                torch.abs(output, out=s).sub_(tolerance).clamp_(min=0)
                nonzero = per_unit(torch.sign(s, out=s))
            self._add(self._nonzero, name, nonzero)
            self._add(self._positive, name, positive)
        return count

    def begin_pass(self, focus: int = 0) -> None:
        """Start counting; `focus` is the task whose overlap with every other is kept when the pass covers more
        than ALL_PAIRS_UP_TO tasks."""
        self._focus = focus
        nonnegative = self.model.hidden_nonnegative()
        self._hooks = [m.register_forward_hook(self._hook(name, nonnegative))
                       for name, m in self.model.hidden_layers().items()]
        self._nonzero, self._positive, self._samples = {}, {}, {}

    def begin_task(self, task_id: int) -> None:
        self._task = task_id

    def end_task(self, n_samples: int) -> None:
        self._samples[self._task] = n_samples

    def end_pass(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.activations, self.overlap = [], []
        for name, per_task in self._nonzero.items():
            tasks = sorted(per_task)
            nonzero = torch.stack([per_task[t] for t in tasks]).double()  # tasks x units
            positive = torch.stack([self._positive[name][t] for t in tasks]).double()
            samples = torch.tensor([float(self._samples[t]) for t in tasks], dtype=torch.float64)
            n_units = nonzero.shape[1]
            outputs = samples * n_units
            sparsity = 1 - nonzero.sum(1) / outputs
            nonpositive = 1 - positive.sum(1) / outputs
            ever = (nonzero > 0).cummax(0).values  # nonzero on some sample of the tasks up to this one
            dead = 1 - ever.double().mean(1)
            for t, s, p, d in zip(tasks, sparsity.tolist(), nonpositive.tolist(), dead.tolist()):
                self.activations.append({"eval_task": t, "layer": name, "sparsity": s, "nonpositive_fraction": p,
                                         "dead_fraction": d, "n_units": n_units})
            task_active = (nonzero >= self.unit_threshold * samples[:, None]).double()
            if len(tasks) <= ALL_PAIRS_UP_TO:
                pairs = [(i, j) for i in range(len(tasks)) for j in range(i + 1, len(tasks))]
                rows = list(range(len(tasks)))
            else:
                f = tasks.index(self._focus) if self._focus in tasks else 0
                pairs = [(min(f, j), max(f, j)) for j in range(len(tasks)) if j != f]
                rows = [f]
            both = task_active[rows] @ task_active.T
            sizes = task_active.sum(1)
            jaccard = (both / (sizes[rows][:, None] + sizes[None, :] - both)).tolist()  # 0/0 (both empty) is NaN
            at = {r: k for k, r in enumerate(rows)}
            for i, j in pairs:
                value = jaccard[at[i]][j] if i in at else jaccard[at[j]][i]
                self.overlap.append({"layer": name, "task_a": tasks[i], "task_b": tasks[j], "jaccard": value})
