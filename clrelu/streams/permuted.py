"""Permuted streams: every task is the whole dataset under its own fixed pixel permutation."""

from __future__ import annotations

import torch

from clrelu.data.datasets import ImageData
from clrelu.streams.base import Stream, compact, take_columns
from clrelu.streams.transformed import transformed_stream


class Permutation:
    """Reorder the pixels (columns) of every row by one fixed permutation."""

    def __init__(self, order: torch.Tensor):
        self.order = compact(order, len(order))
        self.order_array = self.order.numpy()  # a view of the same memory, for take_columns

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return take_columns(x, self.order, self.order_array)

    def to(self, device: torch.device) -> None:
        self.order = self.order.to(device)


def _draw_permutation(t: int, data: ImageData, generator: torch.Generator) -> Permutation:
    return Permutation(torch.randperm(data.n_features, generator=generator))


def permuted_stream(dataset: str, root: str, scenario: str, n_tasks: int, seed: int,
                    train_limit: int | None, test_limit: int | None, active_classes: str = "seen",
                    test_cache: float = 1.0) -> Stream:
    """`n_tasks` tasks, each with all classes and pixels shuffled by a permutation drawn from `seed`; the permuted
    test images of the tasks first evaluated kept in `test_cache` times the dataset's size."""
    return transformed_stream(dataset, root, scenario, n_tasks, seed, train_limit, test_limit, active_classes,
                              _draw_permutation, test_cache)
