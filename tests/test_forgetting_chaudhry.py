"""Chaudhry et al.'s forgetting (a maximum over every earlier row) beside clrelu's (a maximum since the task was
learned), on matrices computed by hand, with undefined and skipped entries, and in summary.csv."""

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process

from clrelu.measure import metrics

NAN = float("nan")
# task 1 scores 0.97 after task 0 (before it is learned) and 0.90 once learned
R = np.array([[0.90, 0.97, 0.30],
              [0.70, 0.90, 0.50],
              [0.60, 0.85, 0.90]])


def compute_fgt(data):
    """facebookresearch/agem utils/utils.py compute_fgt, as published: the average forgetting at the last task."""
    T = data.shape[0] - 1
    return sum(np.max(data[:T, i]) - data[T, i] for i in range(T)) / T


def test_the_two_forgettings_differ_where_an_earlier_row_scored_higher_by_hand():
    clrelu = metrics.forgetting_matrix(R)
    chaudhry = metrics.forgetting_chaudhry_matrix(R)
    assert clrelu[2, 1] == pytest.approx(0.90 - 0.85) and chaudhry[2, 1] == pytest.approx(0.97 - 0.85)
    assert clrelu[2, 0] == chaudhry[2, 0] == pytest.approx(0.90 - 0.60)
    assert clrelu[1, 0] == chaudhry[1, 0] == pytest.approx(0.90 - 0.70)
    assert np.isnan(chaudhry[np.triu_indices(3)]).all()  # j >= i: undefined, as clrelu's
    assert metrics.average_forgetting(R) == pytest.approx((0.30 + 0.05) / 2)
    assert metrics.average_forgetting_chaudhry(R) == pytest.approx((0.30 + 0.12) / 2) == pytest.approx(compute_fgt(R))


def test_chaudhry_forgetting_equals_their_compute_fgt_on_random_matrices():
    rng = np.random.default_rng(0)
    for T in (2, 3, 7):
        matrix = rng.uniform(size=(T, T))
        assert metrics.average_forgetting_chaudhry(matrix) == pytest.approx(compute_fgt(matrix))
        for i in range(1, T):  # every row of the matrix is compute_fgt of the matrix cut after that row
            assert np.nanmean(metrics.forgetting_chaudhry_matrix(matrix)[i, :i]) == pytest.approx(
                compute_fgt(matrix[:i + 1, :i + 1]))


def test_undefined_and_skipped_entries_as_clrelus_metrics_handle_them():
    undefined = R.copy()
    undefined[0, 1] = NAN  # task 1 could not be answered before it was learned (class scenario, seen classes)
    assert metrics.forgetting_matrix(undefined)[2, 1] == pytest.approx(0.05)  # clrelu's max does not reach row 0
    assert np.isnan(metrics.forgetting_chaudhry_matrix(undefined)[2, 1])       # Chaudhry's needs it: undefined
    assert np.isnan(metrics.average_forgetting_chaudhry(undefined))
    skipped = np.zeros((3, 3), dtype=bool)
    skipped[1, 0] = skipped[0, 1] = True  # the schedule did not evaluate them: left out of the max
    holes = np.where(skipped, NAN, R)
    assert metrics.forgetting_chaudhry_matrix(holes, skipped)[2, 1] == pytest.approx(0.90 - 0.85)
    assert metrics.forgetting_chaudhry_matrix(holes, skipped)[2, 0] == pytest.approx(0.90 - 0.60)
    assert np.isnan(metrics.forgetting_chaudhry_matrix(holes, skipped)[1, 0])  # its own entry skipped
    assert metrics.average_forgetting_chaudhry(holes, skipped) == pytest.approx((0.30 + 0.05) / 2)
    last = skipped.copy()
    last[2, 0] = True
    assert metrics.average_forgetting_chaudhry(np.where(last, NAN, R), last) == pytest.approx(0.05)


@pytest.mark.parametrize("scenario", ["domain", "class"])
def test_summary_csv_has_both(tmp_path, scenario):
    record = run_in_process(tmp_path / "run", "stream=synthetic", "stream.n_tasks=3", "model.hidden=[16]",
                            "stream.train_per_class=30", "stream.test_per_class=20", f"stream.scenario={scenario}",
                            "plasticity.enabled=false", "diagnostics.enabled=false", "threads=1")
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").iloc[0]
    assert summary.avg_forgetting == pytest.approx(metrics.average_forgetting(record.R))
    if scenario == "domain":
        assert summary.forgetting_chaudhry == pytest.approx(compute_fgt(record.R))
    else:  # the classes of a task have no active unit before it: Chaudhry's earlier rows are undefined
        assert np.isnan(summary.forgetting_chaudhry)
