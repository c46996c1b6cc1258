"""Permuted streams: every task is the whole dataset under its own fixed pixel permutation."""

from __future__ import annotations

import os

import torch

from clrelu import checks
from clrelu.data.datasets import load_dataset
from clrelu.errors import ConfigError
from clrelu.streams.base import Stream, TaskData, limit, make_stream

MEMORY_SHARE = 0.5  # permuted copies may take at most this share of the machine's memory


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def permuted_stream(dataset: str, root: str, scenario: str, n_tasks: int, seed: int,
                    train_limit: int | None, test_limit: int | None, active_classes: str = "seen") -> Stream:
    """`n_tasks` tasks, each with all classes and pixels shuffled by a permutation drawn from `seed`."""
    n_tasks = checks.integer("stream.n_tasks", n_tasks, minimum=1)
    train_limit = checks.optional_limit("stream.train_limit", train_limit)
    test_limit = checks.optional_limit("stream.test_limit", test_limit)
    generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
    data = load_dataset(dataset, root)
    per_task = (min(len(data.x_train), train_limit or len(data.x_train))
                + min(len(data.x_test), test_limit or len(data.x_test)))
    needed = n_tasks * per_task * data.n_features * 4  # float32 copies, one per task
    if needed > MEMORY_SHARE * _memory_bytes():
        raise ConfigError(
            f"stream.n_tasks={n_tasks}: the permuted copies need {needed / 2**30:.1f} GiB, more than half of this "
            f"machine's {_memory_bytes() / 2**30:.1f} GiB; lower stream.n_tasks or set stream.train_limit"
        )
    parts = []
    for _ in range(n_tasks):
        permutation = torch.randperm(data.n_features, generator=generator)
        x_train, y_train = limit(data.x_train, data.y_train, train_limit, generator)
        x_test, y_test = limit(data.x_test, data.y_test, test_limit, generator)
        parts.append(TaskData(data.class_names, x_train[:, permutation], y_train, x_test[:, permutation], y_test))
    return make_stream(parts, scenario, active_classes)
