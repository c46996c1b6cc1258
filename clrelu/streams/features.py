"""Inputs mapped once per sample through a fixed module (a frozen pretrained trunk), instead of once per batch.

A frozen torchvision trunk at 224 x 224 pixels is by far the slowest part of a transfer run on a CPU,
and its output for a sample never changes during the run. When every task reading a pool of samples
reads it through the same transform (a split stream: one normalisation for all tasks), the pool's
rows can be replaced by the module's outputs, computed once, and the tasks then read those features.
A stream whose tasks transform the same samples differently (permuted, rotated) would need one copy
of the features per task, which grows with the number of tasks: it is left alone, and the module
runs on every batch. So is a stream that augments its training batches.
"""

from __future__ import annotations

import torch
from torch import nn

from clrelu.streams.base import Stream, as_float


def shared_transforms(stream: Stream) -> dict[int, tuple] | None:
    """Per pool (by id): the pool, its one transform and its splits; None when some pool is read through
    different transforms."""
    pools: dict[int, tuple] = {}
    for task in stream.tasks:
        for split in (task.train, task.test):
            _, transform, splits = pools.setdefault(id(split.pool), (split.pool, split.transform, []))
            if split.transform is not transform:
                return None
            splits.append(split)
    return pools


@torch.no_grad()
def map_inputs(stream: Stream, module: nn.Module, chunk: int) -> bool:
    """Replace every pool's rows by `module` of them (read through their transform), `chunk` rows at a time;
    False, changing nothing, when the stream cannot be mapped once per sample."""
    pools = shared_transforms(stream)
    if pools is None or stream.augment is not None:
        return False
    for pool, transform, splits in pools.values():
        outputs = []
        for start in range(0, len(pool.x), chunk):
            x = pool.x[start:start + chunk]
            outputs.append(module(as_float(x if transform is None else transform(x))))
        pool.x = torch.cat(outputs)
        for split in splits:
            split.transform = None
    return True
