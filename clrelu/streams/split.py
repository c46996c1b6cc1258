"""Split streams: the classes of a dataset cut into tasks of a few classes each."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.data.datasets import dataset_spec, load_dataset
from clrelu.errors import ConfigError
from clrelu.streams.base import Pool, Split, Stream, TaskSplits, limited_rows, make_stream


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


def split_stream(dataset: str, root: str, scenario: str, n_tasks: int | None, classes_per_task: int,
                 class_order, seed: int, train_limit: int | None, test_limit: int | None,
                 active_classes: str = "seen") -> Stream:
    """Split `dataset` into tasks of `classes_per_task` classes (all of them when `n_tasks` is null)."""
    train_limit = checks.optional_limit("stream.train_limit", train_limit)
    test_limit = checks.optional_limit("stream.test_limit", test_limit)
    generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
    n_classes = len(dataset_spec(dataset).class_names)
    groups = class_groups(n_classes, n_tasks, classes_per_task, class_order, generator)
    data = load_dataset(dataset, root)
    train, test = Pool(data.x_train, data.y_train), Pool(data.x_test, data.y_test)
    parts = []
    for classes in groups:
        local = torch.full((n_classes,), -1, dtype=torch.long)  # a dataset label's position in `classes`
        local[classes] = torch.arange(len(classes))
        train_rows = _members(data.y_train, classes, train_limit, generator)
        test_rows = _members(data.y_test, classes, test_limit, generator)
        names = tuple(data.class_names[k] for k in classes)
        parts.append(TaskSplits(names, Split(train, local, train_rows), Split(test, local, test_rows)))
    return make_stream(parts, scenario, active_classes, data.image_shape)
