"""A validation split carved from each task's training data (`stream.validation`), evaluated in place of the test
split: hyperparameters are chosen on it, so that test data never chooses one (Chaudhry et al. 2019's protocol)."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.errors import ConfigError
from clrelu.streams.base import Stream


def carve_validation(stream: Stream, fraction: float, seed: int) -> Stream:
    """Take `fraction` of every task's training samples out of training (drawn at random with `seed`, kept in
    their order) and evaluate the task on them instead of its test split; the test data is never read."""
    for task in stream.tasks:
        n = len(task.train)
        held_out = round(fraction * n)
        if held_out == 0 or held_out == n:
            raise ConfigError(f"stream.validation={fraction}: leaves task {task.id}, which has {n} training samples, "
                              f"{'no validation' if held_out == 0 else 'no training'} sample; choose a fraction that "
                              "keeps both")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + task.id))
        cache = task.test.cache  # the memory for test images evaluation keeps ready serves the validation split
        task.test = task.train.subset(order[:held_out].sort().values)
        task.test.cache = cache
        task.train = task.train.subset(order[held_out:].sort().values)
    return stream


def validation_fraction(value) -> float:
    """`stream.validation`: the fraction of each task's training data held out (0: none; evaluate on test data)."""
    return checks.number("stream.validation", value, minimum=0, below=1)
