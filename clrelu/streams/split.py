"""Split streams: the classes of a dataset cut into tasks of a few classes each."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clrelu import checks
from clrelu.data.datasets import ImageData, dataset_spec, load_dataset
from clrelu.errors import ConfigError, DataError
from clrelu.streams.base import (
    EvaluationCache,
    Pool,
    Split,
    Stream,
    TaskSplits,
    Transform,
    limited_rows,
    make_stream,
)


def class_groups(n_classes: int, n_tasks: int | None, classes_per_task: int, class_order,
                 generator: torch.Generator) -> list[list[int]]:
    """The classes of each task: `class_order` (or a seeded shuffle) cut into groups."""
    c = checks.integer("stream.classes_per_task", classes_per_task, minimum=1)
    if n_classes % c:
        raise ConfigError(f"stream.classes_per_task={c}: does not divide the {n_classes} classes of the dataset")
    most = n_classes // c
    n_tasks = most if n_tasks is None else checks.integer("stream.n_tasks", n_tasks, minimum=1, maximum=most)
    if class_order is None:
        order = torch.randperm(n_classes, generator=generator).tolist()
    else:
        order = checks.int_list("stream.class_order", class_order, minimum=0)
        if len(set(order)) != len(order) or max(order, default=0) >= n_classes:
            raise ConfigError(f"stream.class_order={order}: must list distinct classes from 0 to {n_classes - 1}")
        if len(order) < n_tasks * c:
            raise ConfigError(f"stream.class_order={order}: {n_tasks} tasks x {c} classes need {n_tasks * c} classes")
    return [order[t * c:(t + 1) * c] for t in range(n_tasks)]


def _members(y: torch.Tensor, classes: list[int], limit: int | None, generator: torch.Generator) -> torch.Tensor:
    """The rows whose label is in `classes`, in order, at most `limit` of them drawn at random."""
    rows = torch.isin(y, torch.tensor(classes)).nonzero().squeeze(1)
    keep = limited_rows(len(rows), limit, generator)
    return rows if keep is None else rows[keep]


@dataclass
class SplitPlan:
    """Which classes each task takes and how many samples, drawn before the dataset is read (so that a bad value
    is refused first); `stream` then cuts a dataset into those tasks."""

    groups: list[list[int]]
    n_classes: int
    train_limit: int | None
    test_limit: int | None
    generator: torch.Generator  # the stream seed's generator, after the class order (if shuffled) was drawn
    test_cache: float = 1.0  # the test images kept ready between evaluations, as a share of the dataset's size

    @classmethod
    def checked(cls, n_classes: int, n_tasks: int | None, classes_per_task: int, class_order, seed: int,
                train_limit: int | None, test_limit: int | None, test_cache: float = 1.0) -> SplitPlan:
        train_limit = checks.optional_limit("stream.train_limit", train_limit)
        test_limit = checks.optional_limit("stream.test_limit", test_limit)
        test_cache = checks.number("stream.test_cache", test_cache, minimum=0)
        generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
        groups = class_groups(n_classes, n_tasks, classes_per_task, class_order, generator)
        return cls(groups, n_classes, train_limit, test_limit, generator, test_cache)

    def stream(self, data: ImageData, scenario: str, active_classes: str = "seen",
               transform: Transform | None = None) -> Stream:
        """The tasks over one copy of `data`, every split read through `transform` (None: as stored)."""
        self.check_classes(data)
        train, test = Pool(data.x_train, data.y_train), Pool(data.x_test, data.y_test)
        parts = []
        for classes in self.groups:
            local = torch.full((self.n_classes,), -1, dtype=torch.long)  # a dataset label's position in `classes`
            local[classes] = torch.arange(len(classes))
            train_rows = _members(data.y_train, classes, self.train_limit, self.generator)
            test_rows = _members(data.y_test, classes, self.test_limit, self.generator)
            names = tuple(data.class_names[k] for k in classes)
            parts.append(TaskSplits(names, Split(train, local, train_rows, transform),
                                    Split(test, local, test_rows, transform)))
        cache = EvaluationCache.share_of(self.test_cache, [train, test])
        return make_stream(parts, scenario, active_classes, data.image_shape, cache)

    def check_classes(self, data: ImageData) -> None:
        """Refuse, before anything trains, a dataset with no training or test sample of a class a task takes (a
        reduced copy of it, for example)."""
        for split, labels in (("training", data.y_train), ("test", data.y_test)):
            counts = torch.bincount(labels, minlength=self.n_classes)
            for t, classes in enumerate(self.groups):
                missing = [k for k in classes if counts[k] == 0]
                if missing:
                    k = missing[0]
                    raise DataError(f"{data.source}: holds no {split} sample of class {k} ({data.class_names[k]}), "
                                    f"which task {t} takes; stream.class_order or stream.n_tasks can choose the "
                                    "classes it has")


def split_stream(dataset: str, root: str, scenario: str, n_tasks: int | None, classes_per_task: int,
                 class_order, seed: int, train_limit: int | None, test_limit: int | None,
                 active_classes: str = "seen", test_cache: float = 1.0) -> Stream:
    """Split `dataset` into tasks of `classes_per_task` classes (all of them when `n_tasks` is null); the test images
    of the tasks first evaluated kept as float32 in `test_cache` times the dataset's size."""
    plan = SplitPlan.checked(len(dataset_spec(dataset).class_names), n_tasks, classes_per_task, class_order, seed,
                             train_limit, test_limit, test_cache)
    return plan.stream(load_dataset(dataset, root), scenario, active_classes)
