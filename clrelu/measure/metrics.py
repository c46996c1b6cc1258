"""Continual-learning metrics as pure functions of the accuracy matrix (and of the online accuracies).

`R[i, j]` is the test accuracy on task j after training tasks 0..i (tasks numbered from 0), a T x T
array, and `b[j]` the accuracy on task j at initialisation. An entry is NaN for one of two reasons,
which the metrics treat differently:

- **undefined**: the model cannot answer task j yet (a head or column that does not exist), or the
  row was never reached (the rows of a joint run before its last, a run that has not finished).
  A formula that needs an undefined entry is NaN, so an undefined metric never passes for a number.
- **not evaluated**: the evaluation schedule (`eval.every`, `eval.tasks`) skipped it on purpose;
  the optional boolean masks `skipped` (T x T) and `b_skipped` (T) say which. A term of a formula
  that needs a skipped entry is left out, and the metric is the mean over the terms that remain
  (NaN when none remains). So with every entry evaluated the masks change nothing.
"""

from __future__ import annotations

import numpy as np

NAMES = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "forgetting_chaudhry", "bwt", "fwt")  # summary()


def _mean(values, dropped=None) -> float:
    """The mean of `values` without the `dropped` ones; NaN when none is left or a remaining one is NaN."""
    values = np.asarray(values, dtype=float)
    if dropped is not None:
        values = values[~np.asarray(dropped, dtype=bool)]
    if values.size == 0 or np.isnan(values).any():
        return float("nan")
    return float(values.mean())


def _none(shape) -> np.ndarray:
    return np.zeros(shape, dtype=bool)


def average_accuracy(R: np.ndarray, skipped: np.ndarray | None = None) -> float:
    """ACC = mean_j R[T-1, j]."""
    return _mean(R[-1, :], None if skipped is None else skipped[-1, :])


def learning_accuracy(R: np.ndarray, skipped: np.ndarray | None = None) -> float:
    """LA = mean_j R[j, j]."""
    return _mean(np.diag(R), None if skipped is None else np.diag(skipped))


def _forgetting(R: np.ndarray, skipped: np.ndarray | None, since_learned: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The forgetting matrix and where its entries are not evaluated (vectorised: a running max down each column).

    F[i, j] = max_l R[l, j] - R[i, j] for j < i, the max over l in j..i-1 (`since_learned`: clrelu's) or over
    l in 0..i-1 (Chaudhry et al.'s). F[i, j] is not evaluated when R[i, j] was skipped or no R[l, j] of the max
    was evaluated; the max runs over the evaluated ones, and is NaN when one of them is undefined.
    """
    T = R.shape[0]
    skipped = _none(R.shape) if skipped is None else skipped
    candidates = np.where(skipped, -np.inf, R)
    if since_learned:
        candidates[np.triu_indices(T, 1)] = -np.inf  # R[l, j] with l < j comes before task j: not in its max
    best = np.maximum.accumulate(candidates, axis=0)  # best[i, j] = max over the rows up to i; propagates NaN
    F = np.full(R.shape, np.nan)
    F_skipped = _none(R.shape)
    below = np.tril(np.ones((T, T), dtype=bool), -1)[1:]  # j < i, rows 1..T-1
    F_skipped[1:] = below & (skipped[1:] | (best[:-1] == -np.inf))
    F[1:] = np.where(below & ~F_skipped[1:], best[:-1] - R[1:], np.nan)
    return F, F_skipped


def forgetting_matrix(R: np.ndarray, skipped: np.ndarray | None = None) -> np.ndarray:
    """clrelu's forgetting: F[i, j] = max_{l in j..i-1} R[l, j] - R[i, j] for j < i, NaN otherwise: how far task j
    fell from the best accuracy it had since it was learned. The max runs over the evaluated entries."""
    return _forgetting(R, skipped)[0]


def average_forgetting(R: np.ndarray, skipped: np.ndarray | None = None) -> float:
    """mean_{j < T-1} F[T-1, j], with clrelu's F (forgetting_matrix)."""
    F, F_skipped = _forgetting(R, skipped)
    return _mean(F[-1, :-1], F_skipped[-1, :-1])


def forgetting_chaudhry_matrix(R: np.ndarray, skipped: np.ndarray | None = None) -> np.ndarray:
    """Chaudhry et al. (2018)'s forgetting: F[i, j] = max_{l in 0..i-1} R[l, j] - R[i, j] for j < i, NaN otherwise.

    Their maximum runs over every earlier row, the rows before task j was learned included (facebookresearch/agem,
    utils.compute_fgt: `np.max(data[:T, i]) - data[T, i]`), so it differs from clrelu's when an earlier row
    scored task j higher than any row since (transfer in the domain scenario, a lucky untrained head). An
    undefined earlier entry (the class scenario with active_classes=seen, a progressive net's column that did not
    exist yet) makes it NaN; skipped entries are left out of the max.
    """
    return _forgetting(R, skipped, since_learned=False)[0]


def average_forgetting_chaudhry(R: np.ndarray, skipped: np.ndarray | None = None) -> float:
    """mean_{j < T-1} F[T-1, j] with Chaudhry et al.'s F (compute_fgt)."""
    F, F_skipped = _forgetting(R, skipped, since_learned=False)
    return _mean(F[-1, :-1], F_skipped[-1, :-1])


def backward_transfer(R: np.ndarray, skipped: np.ndarray | None = None) -> float:
    """BWT = mean_{j < T-1} (R[T-1, j] - R[j, j]) (Lopez-Paz & Ranzato 2017)."""
    skipped = _none(R.shape) if skipped is None else skipped
    return _mean(R[-1, :-1] - np.diag(R)[:-1], skipped[-1, :-1] | np.diag(skipped)[:-1])


def forward_transfer(R: np.ndarray, b: np.ndarray, skipped: np.ndarray | None = None,
                     b_skipped: np.ndarray | None = None) -> float:
    """FWT = mean_{j >= 1} (R[j-1, j] - b[j])."""
    T = R.shape[0]
    skipped = _none(R.shape) if skipped is None else skipped
    b_skipped = _none(T) if b_skipped is None else b_skipped
    j = np.arange(1, T)
    return _mean(R[j - 1, j] - b[j], skipped[j - 1, j] | b_skipped[j])


def summary(R: np.ndarray, b: np.ndarray, skipped: np.ndarray | None = None,
            b_skipped: np.ndarray | None = None) -> dict[str, float]:
    """Every metric above, under the column names of summary.csv (NAMES)."""
    values = (average_accuracy(R, skipped), learning_accuracy(R, skipped), average_forgetting(R, skipped),
              average_forgetting_chaudhry(R, skipped), backward_transfer(R, skipped),
              forward_transfer(R, b, skipped, b_skipped))
    return dict(zip(NAMES, values))


def online_tenths(online: list[float]) -> tuple[float, float]:
    """The mean online accuracy of the first and of the last tenth of the phases (ceil(n / 10) of them, at least
    one): how well the stream's first tasks were learned, and how well its last ones (Dohare et al. 2024)."""
    if not online:
        return float("nan"), float("nan")
    k = -(-len(online) // 10)
    return float(np.mean(online[:k])), float(np.mean(online[-k:]))
