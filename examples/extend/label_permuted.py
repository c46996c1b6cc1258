"""An example of a new stream: label-permuted images, a benchmark of loss of plasticity.

Every task is the whole dataset with its classes relabelled by a permutation of its own, drawn from the stream
seed (Lyle et al. 2023; Elsayed & Mahmood 2024): the inputs never change, so what was learned of them stays
useful, but every task asks for a new mapping to the labels. In the domain scenario (one shared head, the
default) a network must overwrite its previous answers on every task.
"""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.data.datasets import load_dataset
from clrelu.streams.base import Pool, Split, Stream, TaskSplits, limited_rows, make_stream


def label_permuted_stream(dataset: str, root: str, scenario: str, n_tasks: int, seed: int,
                          train_limit: int | None = None, test_limit: int | None = None,
                          active_classes: str = "seen") -> Stream:
    """`n_tasks` tasks over one copy of `dataset`; task t reads class c as label `order_t[c]`, with `order_t` a
    permutation of the classes drawn from `seed`, then its training rows and its test rows (when limited)."""
    n_tasks = checks.integer("stream.n_tasks", n_tasks, minimum=1)
    train_limit = checks.optional_limit("stream.train_limit", train_limit)
    test_limit = checks.optional_limit("stream.test_limit", test_limit)
    generator = torch.Generator().manual_seed(checks.integer("stream.seed", seed))
    data = load_dataset(dataset, root)
    train, test = Pool(data.x_train, data.y_train), Pool(data.x_test, data.y_test)
    parts = []
    for _ in range(n_tasks):
        order = torch.randperm(len(data.class_names), generator=generator)
        names = [data.class_names[c] for c in torch.argsort(order).tolist()]  # label k is class argsort(order)[k]
        train_rows = limited_rows(len(data.x_train), train_limit, generator)
        test_rows = limited_rows(len(data.x_test), test_limit, generator)
        parts.append(TaskSplits(names, Split(train, order, train_rows), Split(test, order, test_rows)))
    return make_stream(parts, scenario, active_classes, data.image_shape)
