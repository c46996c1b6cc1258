"""Continual-learning metrics as pure functions of the accuracy matrix.

`R[i, j]` is the test accuracy on task j after training tasks 0..i (tasks numbered from 0), a T x T
array with NaN where an entry is undefined (a head or column that does not exist yet) or was not
measured (the rows of a joint run before its last, or of a run that has not finished). `b[j]` is the
accuracy on task j at initialisation. Every formula needs all of its terms: when one of them is NaN,
the result is NaN, so an undefined metric can never pass for a number.
"""

from __future__ import annotations

import numpy as np


def _mean(values) -> float:
    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.isnan(values).any():
        return float("nan")
    return float(values.mean())


def average_accuracy(R: np.ndarray) -> float:
    """ACC = mean_j R[T-1, j]."""
    return _mean(R[-1, :])


def learning_accuracy(R: np.ndarray) -> float:
    """LA = mean_j R[j, j]."""
    return _mean(np.diag(R))


def forgetting_matrix(R: np.ndarray) -> np.ndarray:
    """F[i, j] = max_{l in j..i-1} R[l, j] - R[i, j] for j < i, NaN otherwise (Chaudhry et al. 2018)."""
    T = R.shape[0]
    F = np.full(R.shape, np.nan)
    for i in range(T):
        for j in range(i):
            earlier = R[j:i, j]
            if not np.isnan(earlier).any():
                F[i, j] = earlier.max() - R[i, j]
    return F


def average_forgetting(R: np.ndarray) -> float:
    """mean_{j < T-1} F[T-1, j]."""
    return _mean(forgetting_matrix(R)[-1, :-1])


def backward_transfer(R: np.ndarray) -> float:
    """BWT = mean_{j < T-1} (R[T-1, j] - R[j, j]) (Lopez-Paz & Ranzato 2017)."""
    return _mean(R[-1, :-1] - np.diag(R)[:-1])


def forward_transfer(R: np.ndarray, b: np.ndarray) -> float:
    """FWT = mean_{j >= 1} (R[j-1, j] - b[j])."""
    T = R.shape[0]
    return _mean([R[j - 1, j] - b[j] for j in range(1, T)])


def summary(R: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every metric above, under the column names of summary.csv."""
    return {
        "avg_accuracy": average_accuracy(R),
        "learning_accuracy": learning_accuracy(R),
        "avg_forgetting": average_forgetting(R),
        "bwt": backward_transfer(R),
        "fwt": forward_transfer(R, b),
    }
