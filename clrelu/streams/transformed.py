"""Streams whose every task is the whole dataset under a transform of its own (permuted, rotated)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from clrelu import checks
from clrelu.data.datasets import ImageData, load_dataset
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


def transformed_stream(dataset: str, root: str, scenario: str, n_tasks: int, seed: int, train_limit: int | None,
                       test_limit: int | None, active_classes: str,
                       draw: Callable[[int, ImageData, torch.Generator], Transform], test_cache: float = 1.0) -> Stream:
    """`n_tasks` tasks over one copy of `dataset`, task t read through `draw(t, data, generator)`; the transformed
    test images of the tasks first evaluated are kept in `test_cache` times the dataset's size.

    Random draws, in this order for each task: its transform, then its training rows (when
    `train_limit` is below the dataset's size), then its test rows (likewise `test_limit`).
    """
    n_tasks = checks.integer("stream.n_tasks", n_tasks, minimum=1)
    test_cache = checks.number("stream.test_cache", test_cache, minimum=0)
    train_limit = checks.optional_limit("stream.train_limit", train_limit)
    test_limit = checks.optional_limit("stream.test_limit", test_limit)
    generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
    data = load_dataset(dataset, root)
    train, test = Pool(data.x_train, data.y_train), Pool(data.x_test, data.y_test)
    labels = torch.arange(len(data.class_names))
    parts = []
    for t in range(n_tasks):
        transform = draw(t, data, generator)
        train_rows = limited_rows(len(data.x_train), train_limit, generator)
        test_rows = limited_rows(len(data.x_test), test_limit, generator)
        parts.append(TaskSplits(data.class_names, Split(train, labels, train_rows, transform),
                                Split(test, labels, test_rows, transform)))
    cache = EvaluationCache.share_of(test_cache, [train, test])
    return make_stream(parts, scenario, active_classes, data.image_shape, cache)
