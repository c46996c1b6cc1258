"""Tasks, streams, and the label mapping of the three scenarios (task, domain, class).

A stream keeps one copy of its dataset (a `Pool`). A task's training and test data are `Split`s of
it: which rows they use, how the dataset's labels map to the scenario's targets, and a transform
(a pixel permutation, a rotation) applied when rows are read. So every task costs a few small
tensors, and a stream of 1,000 tasks takes hardly more memory than one of 10. Evaluation reads the
same test images again and again: an `EvaluationCache` keeps tasks' test images ready (transformed, or
as float32), each made when its task is first evaluated, within a fixed budget (a share of the
dataset's size, not per task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from clrelu import checks

SCENARIOS = ("task", "domain", "class")
# the class scenario's output units that are active (the others get a logit of -inf): those of the classes seen so far
# in training and evaluation, every unit in both, or the seen ones in training and every unit in evaluation
ACTIVE_CLASSES = ("seen", "all", "seen_in_training")


def compact(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices below `size` in the smallest integer type that holds them (int16 or int32), to keep per-task
    memory small."""
    return index.to(torch.int16 if size <= torch.iinfo(torch.int16).max else torch.int32)


def take_columns(x: torch.Tensor, index: torch.Tensor, index_array: np.ndarray) -> torch.Tensor:
    """`x[:, index]`; on the CPU through numpy (`index_array` is `index` as a numpy array), whose column gather is
    four times faster than torch's on uint8 rows (the pixel permutation of an evaluation chunk: 9 ms against 38)."""
    if x.is_cpu:
        return torch.from_numpy(x.numpy().take(index_array, axis=1))
    return x.index_select(1, index.long())


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]; inputs that are float already pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class Pool:
    """Samples kept once for every task of a stream: rows `x` (uint8 pixels, or float features) and int64 labels."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x = x
        self.y = y

    def to(self, device: torch.device) -> None:
        self.x, self.y = self.x.to(device), self.y.to(device)


class EvaluationCache:
    """Memory, shared by a stream's test splits, for their inputs as evaluation reads them, kept between
    evaluations: at most `budget` bytes, given to the splits in the order they are first read whole (the
    tasks first evaluated); a split that does not fit is read chunk by chunk, as without a cache."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0

    @classmethod
    def share_of(cls, fraction: float, pools: list[Pool]) -> EvaluationCache | None:
        """A cache of `fraction` (config key `stream.test_cache`) times the size of the pools' inputs; None for 0."""
        if fraction == 0:
            return None
        size = sum(pool.x.numel() * pool.x.element_size() for pool in pools)
        return cls(int(fraction * size))

    def reserve(self, nbytes: int) -> bool:
        """Take `nbytes` of the budget if they are left."""
        if self.used + nbytes > self.budget:
            return False
        self.used += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.used -= nbytes


class Transform(Protocol):
    """What a task does to the rows it reads (the pool's dtype in; uint8 or float32 rows out)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device) -> None: ...


class Split:
    """A task's training or test data: rows of a shared pool, a label map, and a transform applied when read.

    `rows` indexes the pool (None: every row, in order); `labels[k]` is the target of a sample whose
    dataset label is k (the scenario's shift included). `gather(idx)` and `chunks(size)` return
    (x float32 [n, F], y int64) exactly as if the split's tensors had been built in advance.
    """

    def __init__(self, pool: Pool, labels: torch.Tensor, rows: torch.Tensor | None = None,
                 transform: Transform | None = None):
        self.pool = pool
        self.labels = labels
        self.rows = None if rows is None else rows.to(torch.int32)  # index_select takes int32 and int64
        self.transform = transform
        self.cache: EvaluationCache | None = None  # where `chunks` may keep the inputs (test splits)
        self.kept: torch.Tensor | None = None  # all rows' inputs, once kept (see `chunks`)

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> Split:
        """A split holding tensors of its own (inputs `x`, targets `y`), with no transform."""
        n_labels = int(y.max()) + 1 if len(y) else 0
        return cls(Pool(x, y), torch.arange(n_labels, device=y.device))

    def __len__(self) -> int:
        return len(self.pool.x) if self.rows is None else len(self.rows)

    def _inputs(self, rows: torch.Tensor | slice) -> torch.Tensor:
        """The inputs of pool rows `rows` after the transform, in its dtype (uint8 pixels that only moved stay
        uint8)."""
        x = self.pool.x[rows] if isinstance(rows, slice) else self.pool.x.index_select(0, rows)
        return x if self.transform is None else self.transform(x)

    def _targets(self, rows: torch.Tensor | slice) -> torch.Tensor:
        y = self.pool.y[rows] if isinstance(rows, slice) else self.pool.y.index_select(0, rows)
        return self.labels.index_select(0, y)

    def _read_stored(self, rows: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        return self._inputs(rows), self._targets(rows)

    def _read(self, rows: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._read_stored(rows)
        return as_float(x), y

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        """The pool rows of positions `idx` of the split."""
        idx = idx.to(self.pool.x.device)
        return idx if self.rows is None else self.rows.index_select(0, idx)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at positions `idx` of the split (a 1-d integer tensor), in that order."""
        return self._read(self._rows(idx))

    def gather_stored(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at positions `idx` as the pool keeps them, after the task's transform (uint8 pixels or float
        rows): `gather` is `as_float` of these inputs. A memory of samples keeps them so, a quarter of float32's size."""
        return self._read_stored(self._rows(idx))

    def chunks(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every sample of the split, in order, `size` at a time.

        With a cache, the inputs are kept the first time they are all read, when they fit in its budget,
        and sliced from then on: the same values as reading every chunk again. What is kept is what
        spares the most work a chunk: the transform's output (uint8 when it only moves pixels), or,
        without a transform, the pixels as float32; float rows without a transform are not kept (there
        is nothing to spare)."""
        n = len(self)
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        rows = [slice(a, b) if self.rows is None else self.rows[a:b] for a, b in bounds]
        if self.kept is not None:
            for (a, b), r in zip(bounds, rows):
                yield as_float(self.kept[a:b]), self._targets(r)
            return
        worth_keeping = self.cache is not None and (self.transform is not None or self.pool.x.dtype == torch.uint8)
        keep, nbytes, complete = None, 0, False
        try:
            for (a, b), r in zip(bounds, rows):
                x = self._inputs(r)
                ready = as_float(x)
                form = x if self.transform is not None else ready  # what is kept
                if a == 0 and worth_keeping:
                    nbytes = n * form[0].numel() * form.element_size()
                    keep = form.new_empty((n, *form.shape[1:])) if self.cache.reserve(nbytes) else None
                if keep is not None:
                    keep[a:b] = form
                yield ready, self._targets(r)
            complete = True
        finally:
            if keep is not None:
                if complete:
                    self.kept = keep
                else:  # the reader stopped early: give the budget back
                    self.cache.release(nbytes)

    def targets(self) -> torch.Tensor:
        """The target of every sample, in order, without reading any input."""
        y = self.pool.y if self.rows is None else self.pool.y.index_select(0, self.rows)
        return self.labels.index_select(0, y)

    def subset(self, idx: torch.Tensor) -> Split:
        """The samples at positions `idx`, in that order, as a split of the same pool."""
        return Split(self.pool, self.labels, self._rows(idx), self.transform)

    def to(self, device: torch.device) -> None:
        """Move the split's own tensors (not the pool's: `Stream.to` moves every pool once)."""
        self.labels = self.labels.to(device)
        if self.kept is not None:
            self.kept = self.kept.to(device)
        if self.rows is not None:
            self.rows = self.rows.to(device)
        if self.transform is not None:
            self.transform.to(device)


@dataclass
class Task:
    """One task: its class names (in the order of their local labels) and its training and test splits."""

    id: int
    classes: tuple[str, ...]
    train: Split
    test: Split


@dataclass(frozen=True)
class HeadLayout:
    """What the output layer of a model must look like for a stream."""

    scenario: str
    n_tasks: int
    classes_per_task: int
    active_classes: str = "seen"  # one of ACTIVE_CLASSES; only the class scenario uses it

    @property
    def n_heads(self) -> int:
        return self.n_tasks if self.scenario == "task" else 1

    @property
    def head_width(self) -> int:
        return self.classes_per_task * (self.n_tasks if self.scenario == "class" else 1)

    def units_of(self, task_id: int) -> range:
        """The output units of task `task_id` in the shared head of the class scenario."""
        start = task_id * self.classes_per_task
        return range(start, start + self.classes_per_task)


@dataclass
class Stream:
    """A list of tasks learned one after another, and its scenario.

    `image_shape` is (channels, height, width) of the images whose flattened pixels are the rows of a
    batch, so that a convolutional model can unflatten them; None when the inputs are not images.
    `normalisation` is the per-channel (mean, std) the pixels, in [0, 1], were standardised with (None:
    the rows are the pixels in [0, 1]); `augment(x, generator)`, when set, transforms every training
    batch (clrelu/streams/augment.py).
    """

    tasks: list[Task]
    scenario: str
    classes_per_task: int
    active_classes: str = "seen"
    image_shape: tuple[int, int, int] | None = None
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def in_features(self) -> int:
        return self.tasks[0].train.pool.x.shape[1]

    @property
    def layout(self) -> HeadLayout:
        return HeadLayout(self.scenario, self.n_tasks, self.classes_per_task, self.active_classes)

    def to(self, device: torch.device) -> Stream:
        splits = [split for task in self.tasks for split in (task.train, task.test)]
        for pool in {id(s.pool): s.pool for s in splits}.values():
            pool.to(device)
        for split in splits:
            split.to(device)
        return self


@dataclass
class TaskSplits:
    """A task as a stream builder makes it: its classes and its splits, with labels local to the task (0..c-1)."""

    classes: tuple[str, ...]
    train: Split
    test: Split


def limited_rows(n: int, limit: int | None, generator: torch.Generator) -> torch.Tensor | None:
    """At most `limit` of `n` rows, drawn at random without replacement, in their original order (None: all)."""
    if limit is None or limit >= n:
        return None
    return torch.randperm(n, generator=generator)[:limit].sort().values


def make_stream(parts: list[TaskSplits], scenario: str, active_classes: str = "seen",
                image_shape: tuple[int, int, int] | None = None, test_cache: EvaluationCache | None = None) -> Stream:
    """Number the tasks and map local labels to the targets of `scenario` (`active_classes`: see ACTIVE_CLASSES);
    the test splits share `test_cache`.

    task and domain keep the local label (0..c-1); class shifts task t's labels by t*c so that
    one shared head has a unit for every class of the stream.
    """
    checks.choice("stream.scenario", scenario, SCENARIOS)
    checks.choice("stream.active_classes", active_classes, ACTIVE_CLASSES)
    c = len(parts[0].classes)
    if any(len(p.classes) != c for p in parts):
        raise ValueError("every task of a stream must have the same number of classes")
    tasks = []
    for t, part in enumerate(parts):
        shift = t * c if scenario == "class" else 0
        for split in (part.train, part.test):
            split.labels = torch.where(split.labels >= 0, split.labels + shift, split.labels)
        part.test.cache = test_cache
        tasks.append(Task(t, part.classes, part.train, part.test))
    return Stream(tasks, scenario, c, active_classes, image_shape)
