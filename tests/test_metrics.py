"""The metric formulas of DESIGN.md on hand-computed matrices."""

import numpy as np
import pytest

from clrelu.measure import metrics

nan = np.nan

# Three tasks; R[i, j] after training task i, tested on task j.
R = np.array([
    [0.90, 0.10, 0.20],
    [0.70, 0.95, 0.30],
    [0.60, 0.80, 0.85],
])
b = np.array([0.50, 0.15, 0.05])


def test_average_and_learning_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.60 + 0.80 + 0.85) / 3)
    assert metrics.learning_accuracy(R) == pytest.approx((0.90 + 0.95 + 0.85) / 3)


def test_forgetting_matrix_by_hand():
    F = metrics.forgetting_matrix(R)
    # F[1,0] = max(R[0,0]) - R[1,0] = 0.90 - 0.70
    # F[2,0] = max(R[0,0], R[1,0]) - R[2,0] = 0.90 - 0.60; F[2,1] = max(R[1,1]) - R[2,1] = 0.95 - 0.80
    expected = np.array([
        [nan, nan, nan],
        [0.20, nan, nan],
        [0.30, 0.15, nan],
    ])
    np.testing.assert_allclose(F, expected, equal_nan=True)


def test_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    R2 = np.array([
        [0.50, nan, nan],
        [0.90, 0.80, nan],
        [0.60, 0.70, 0.90],
    ])
    F = metrics.forgetting_matrix(R2)
    assert F[2, 0] == pytest.approx(0.90 - 0.60)  # the peak came after task 1, not when task 0 was learned
    assert metrics.average_forgetting(R2) == pytest.approx((0.30 + 0.10) / 2)


def test_average_forgetting_bwt_fwt():
    assert metrics.average_forgetting(R) == pytest.approx((0.30 + 0.15) / 2)
    assert metrics.backward_transfer(R) == pytest.approx(((0.60 - 0.90) + (0.80 - 0.95)) / 2)
    assert metrics.forward_transfer(R, b) == pytest.approx(((0.10 - 0.15) + (0.30 - 0.05)) / 2)


def test_undefined_entries_make_forward_transfer_nan_but_leave_the_rest():
    # A progressive net: no column for a task before it begins.
    R_pnn = np.array([
        [0.9, nan, nan],
        [0.9, 0.8, nan],
        [0.9, 0.8, 0.7],
    ])
    b_pnn = np.full(3, nan)
    assert metrics.average_accuracy(R_pnn) == pytest.approx(0.8)
    assert metrics.learning_accuracy(R_pnn) == pytest.approx(0.8)
    assert metrics.average_forgetting(R_pnn) == 0.0
    assert metrics.backward_transfer(R_pnn) == 0.0
    assert np.isnan(metrics.forward_transfer(R_pnn, b_pnn))


def test_joint_run_has_only_its_last_row():
    R_joint = np.full((3, 3), nan)
    R_joint[2] = [0.9, 0.8, 0.7]
    s = metrics.summary(R_joint, b)
    assert s["avg_accuracy"] == pytest.approx(0.8)
    for key in ("learning_accuracy", "avg_forgetting", "bwt", "fwt"):
        assert np.isnan(s[key]), key


def test_unfinished_run_has_no_final_accuracy():
    R_partial = np.full((3, 3), nan)
    R_partial[0] = [0.9, 0.1, 0.1]
    assert np.isnan(metrics.average_accuracy(R_partial))


def test_one_task_stream():
    R1 = np.array([[0.75]])
    s = metrics.summary(R1, np.array([0.5]))
    assert s["avg_accuracy"] == 0.75
    assert s["learning_accuracy"] == 0.75
    assert np.isnan(s["avg_forgetting"]) and np.isnan(s["bwt"]) and np.isnan(s["fwt"])
    assert np.isnan(metrics.forgetting_matrix(R1)).all()
