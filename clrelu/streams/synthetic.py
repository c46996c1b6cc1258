"""A small separable stream of Gaussian clusters: no files, runs in seconds, for tests and first runs."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.streams.base import Split, Stream, TaskSplits, limited_rows, make_stream


def synthetic_stream(scenario: str, n_tasks: int, classes_per_task: int, n_features: int, train_per_class: int,
                     test_per_class: int, noise: float, seed: int, train_limit: int | None,
                     test_limit: int | None, active_classes: str = "seen") -> Stream:
    """`n_tasks` tasks of `classes_per_task` classes; each class is a Gaussian around its own random mean.

    Each task holds the samples drawn for it (there is no dataset to share), so this stream's memory
    grows with `n_tasks`: it is meant for tests and first runs.
    """
    n_tasks = checks.integer("stream.n_tasks", n_tasks, minimum=1)
    c = checks.integer("stream.classes_per_task", classes_per_task, minimum=1)
    n_features = checks.integer("stream.n_features", n_features, minimum=1)
    train_per_class = checks.integer("stream.train_per_class", train_per_class, minimum=1)
    test_per_class = checks.integer("stream.test_per_class", test_per_class, minimum=1)
    noise = checks.number("stream.noise", noise, minimum=0)
    train_limit = checks.optional_limit("stream.train_limit", train_limit)
    test_limit = checks.optional_limit("stream.test_limit", test_limit)
    generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
    means = torch.randn(n_tasks * c, n_features, generator=generator)

    def sample(classes: range, per_class: int, n_limit: int | None) -> Split:
        y = torch.arange(c).repeat_interleave(per_class)
        x = means[list(classes)].repeat_interleave(per_class, dim=0)
        x = x + noise * torch.randn(x.shape, generator=generator)
        keep = limited_rows(len(x), n_limit, generator)
        return Split.of(x, y) if keep is None else Split.of(x[keep], y[keep])

    parts = []
    for t in range(n_tasks):
        classes = range(t * c, (t + 1) * c)
        names = tuple(f"c{k}" for k in classes)
        parts.append(TaskSplits(names, sample(classes, train_per_class, train_limit),
                                sample(classes, test_per_class, test_limit)))
    return make_stream(parts, scenario, active_classes)
