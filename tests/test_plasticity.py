"""Plasticity measures on hand-built activations, and the probe on hand-built networks."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import needs_fmnist, run_in_process

from clrelu.measure.metrics import online_tenths
from clrelu.measure.plasticity import (
    PlasticityProbe,
    dead_fraction,
    dormant_fraction,
    dormant_scores,
    effective_rank,
    probe_indices,
    singular_values,
    srank,
    unit_activity,
    weight_magnitude,
)
from clrelu.models.mlp import MLP
from clrelu.streams.base import HeadLayout

DOMAIN = HeadLayout("domain", n_tasks=2, classes_per_task=2)


def with_singular_values(values, rows=7, seed=0) -> torch.Tensor:
    """A rows x len(values) matrix U diag(values) V^T with random orthonormal U and V."""
    generator = torch.Generator().manual_seed(seed)
    n = len(values)
    u = torch.linalg.qr(torch.randn(rows, n, generator=generator, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))[0]
    return u @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ v.T


def test_two_always_zero_units_make_a_dead_fraction_of_2_over_n():
    H = torch.rand(6, 5) + 0.1
    H[:, 1] = 0
    H[:, 4] = 0
    H[0, 2] = 0  # zero on one sample only: alive
    assert dead_fraction(unit_activity(H, 5)) == pytest.approx(2 / 5)


def test_a_crelu_unit_is_dead_only_when_both_of_its_outputs_are():
    # 3 units, 6 outputs: unit i owns columns i and 3 + i
    H = torch.rand(4, 6) + 0.1
    H[:, 0] = 0          # unit 0: its relu(x) half never fires, its relu(-x) half does: alive
    H[:, 2] = H[:, 5] = 0  # unit 2: both halves zero: dead
    activity = unit_activity(H, 3)
    assert activity.shape == (4, 3)
    torch.testing.assert_close(activity[:, 1], H[:, 1] + H[:, 4])
    assert dead_fraction(activity) == pytest.approx(1 / 3)


def test_dormant_score_on_a_constructed_case():
    # mean |h| per unit over the two samples: 2, 1, 0.04, 0.96, 0; layer mean 0.8
    H = torch.tensor([[1.0, -1.0, 0.08, 0.96, 0.0],
                      [3.0, 1.0, 0.0, -0.96, 0.0]])
    activity = unit_activity(H, 5)
    scores = dormant_scores(activity)
    torch.testing.assert_close(scores, torch.tensor([2.5, 1.25, 0.05, 1.2, 0.0], dtype=torch.float64))
    assert dormant_fraction(activity, 0.0) == pytest.approx(1 / 5)    # tau 0: the dead unit only
    assert dormant_fraction(activity, 0.025) == pytest.approx(1 / 5)
    assert dormant_fraction(activity, 0.1) == pytest.approx(2 / 5)    # and unit 2 (score 0.05)
    assert dormant_fraction(activity, 1.3) == pytest.approx(4 / 5)    # everything but unit 0
    assert dormant_fraction(torch.zeros(3, 4), 0.0) == 1.0             # a layer of dead units: all dormant


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_the_effective_rank_of_k_equal_singular_values_is_k(k):
    H = with_singular_values([2.5] * k + [0.0] * (6 - k))
    assert effective_rank(singular_values(H)) == pytest.approx(k, rel=1e-6)


def test_effective_rank_by_hand_and_of_a_zero_matrix():
    # p = (0.75, 0.25): exp(-(0.75 ln 0.75 + 0.25 ln 0.25))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(singular_values(with_singular_values([3.0, 1.0]))) == pytest.approx(expected)
    assert effective_rank(singular_values(torch.zeros(4, 3))) == 0.0


def test_srank_is_the_smallest_k_whose_singular_values_hold_1_minus_delta():
    # shares of the sum after k values: 0.5, 0.8, 0.95, 0.995, 1.0
    sigma = singular_values(with_singular_values([0.45, 5.0, 0.05, 3.0, 1.5]))
    assert srank(sigma, 0.01) == 4
    assert srank(sigma, 0.1) == 3
    assert srank(sigma, 0.25) == 2
    assert srank(sigma, 0.0) == 5
    assert srank(singular_values(torch.zeros(4, 3)), 0.01) == 0


def numpy_erank_and_srank(H: torch.Tensor, delta: float) -> tuple[float, int]:
    """Effective rank and srank from numpy's SVD of H in float64, computed as PLASTICITY.md defines them."""
    s = np.linalg.svd(H.double().numpy(), compute_uv=False)
    if s.sum() == 0:
        return 0.0, 0
    p = s[s > 0] / s.sum()
    share = np.cumsum(np.sort(s)[::-1]) / s.sum()
    return math.exp(-(p * np.log(p)).sum()), int(np.argmax(share >= 1 - delta)) + 1


def random_matrix(kind: str, seed: int) -> torch.Tensor:
    """float32 matrices like a probe's features, and the ones that are hard for a Gram matrix."""
    g = torch.Generator().manual_seed(seed)
    m, n = int(torch.randint(10, 90, (), generator=g)), int(torch.randint(10, 90, (), generator=g))
    r = int(torch.randint(1, min(m, n), (), generator=g))
    if kind == "gaussian":
        return torch.randn(m, n, generator=g)
    if kind == "relu features":  # one linear layer and ReLU on random inputs: some units dead, some samples silent
        H = torch.relu(torch.randn(m, 30, generator=g) @ torch.randn(30, n, generator=g) - 1.5)
        H[:, : n // 5] = 0
        H[: m // 7] = 0
        return H
    if kind == "rank deficient":  # rank r < min(m, n), up to float32 rounding
        return torch.randn(m, r, generator=g) @ torch.randn(r, n, generator=g)
    if kind == "rank deficient relu":
        return torch.relu(torch.randn(m, r, generator=g) @ torch.randn(r, n, generator=g))
    if kind == "graded":  # columns from 1 down to 1e-9
        return torch.randn(m, n, generator=g) * torch.logspace(0, -9, n)
    if kind == "duplicate units":
        H = torch.randn(m, n, generator=g)
        H[:, 1::2] = H[:, ::2][:, : n // 2]
        return H
    return torch.zeros(m, n)


@pytest.mark.parametrize("kind", ["gaussian", "relu features", "rank deficient", "rank deficient relu", "graded",
                                  "duplicate units", "zero"])
@pytest.mark.parametrize("seed", range(4))
def test_singular_values_give_the_effective_rank_and_srank_of_an_svd_to_1e_6(kind, seed):
    H = random_matrix(kind, seed)
    sigma = singular_values(H)
    assert len(sigma) == min(H.shape) and sigma.dtype == torch.float64
    assert torch.equal(sigma, sigma.sort(descending=True).values) and (sigma >= 0).all()
    for delta in (0.01, 0.1):
        erank, expected_srank = numpy_erank_and_srank(H, delta)
        assert abs(effective_rank(sigma) - erank) <= 1e-6
        assert srank(sigma, delta) == expected_srank


def test_singular_values_come_from_the_gram_matrix_unless_some_are_too_small_to_resolve(monkeypatch):
    svd_calls = []
    svdvals = torch.linalg.svdvals
    monkeypatch.setattr(torch.linalg, "svdvals", lambda A: svd_calls.append(A.shape) or svdvals(A))
    singular_values(random_matrix("relu features", 0))  # dead units and silent samples: left out, no SVD
    singular_values(random_matrix("gaussian", 0).T)  # a wide matrix: the Gram matrix of its rows
    assert svd_calls == []
    H = random_matrix("rank deficient", 0)
    singular_values(H)
    assert svd_calls == [H.shape]


def test_weight_magnitude_is_the_mean_absolute_weight():
    assert weight_magnitude(torch.tensor([[1.0, -3.0], [0.5, -0.5]])) == pytest.approx(1.25)


def test_probe_indices_are_fixed_and_draw_no_random_numbers():
    state = torch.get_rng_state()
    assert probe_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert probe_indices(3, 4).tolist() == [0, 1, 2]
    assert torch.equal(torch.get_rng_state(), state)


def hand_built(activation="relu", norm="none"):
    """4 inputs -> 4 units -> 3 units; units 1 and 3 of the first layer get a bias of -100 (dead for inputs in [0,1])."""
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[4, 3], activation=activation, norm=norm)
    with torch.no_grad():
        model.trunk[0].bias.copy_(torch.tensor([0.5, -100.0, 0.5, -100.0]))
    return model


def numpy_measures(rows: np.ndarray, activity: np.ndarray, tau: float, delta: float) -> dict:
    """The measures of PLASTICITY.md in numpy, from a layer's output matrix (one row a sample, or a sample and
    position) and its units' activity (samples x units), with none of clrelu's functions."""
    per_unit = np.abs(activity).mean(0)
    measures = {"dead_fraction": float(np.mean(np.abs(activity).sum(0) == 0)),
                "dormant_fraction": float(np.mean(per_unit <= tau * per_unit.mean()))}  # all zero: all dormant
    sigma = np.linalg.svd(rows.astype(np.float64), compute_uv=False)  # decreasing
    if sigma.sum() == 0:  # a layer whose outputs are all zero: rank 0
        return {**measures, "effective_rank": 0.0, "srank": 0}
    p = sigma[sigma > 0] / sigma.sum()
    share = np.cumsum(sigma) / sigma.sum()
    return {**measures, "effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
            "srank": next(k + 1 for k in range(len(sigma)) if share[k] >= 1 - delta)}


def test_the_probe_measures_every_hidden_layer_of_a_model():
    model = hand_built()
    with torch.no_grad():  # unit 2 outputs 0.002 on every input: alive, but dormant (score 4 x 0.002 / (0.002 + 0.23))
        model.trunk[0].weight[2] = 0
        model.trunk[0].bias[2] = 0.002
    x = torch.rand(50, 4)
    rows = PlasticityProbe(model, tau=0.1).measure(x, 0)
    assert [r["layer"] for r in rows] == list(model.hidden_layers()) == ["trunk.1", "trunk.3"]
    assert rows[0]["task"] == 0
    weights = [(model.trunk[i].weight.detach().double().numpy(), model.trunk[i].bias.detach().double().numpy())
               for i in (0, 2)]
    h = x.double().numpy()
    for row, (w, b) in zip(rows, weights):
        h = np.maximum(h @ w.T + b, 0)  # the layer's relu outputs, by hand
        expected = numpy_measures(h, h, tau=0.1, delta=0.01)
        for key in ("dead_fraction", "dormant_fraction", "effective_rank"):
            assert row[key] == pytest.approx(expected[key], rel=1e-6), key
        assert row["srank"] == expected["srank"]
        assert row["weight_magnitude"] == pytest.approx(np.abs(w).mean())
    first, second = rows
    # units 1 and 3 are dead and unit 2 dormant; two live units: rank 2 at most
    assert first["dead_fraction"] == 2 / 4 and first["dormant_fraction"] == 3 / 4 and first["srank"] <= 2
    # the second layer is zero on every sample here: all dead and dormant, ranks 0
    assert (second["dead_fraction"], second["dormant_fraction"], second["effective_rank"], second["srank"]) == (1, 1, 0, 0)


def test_the_probe_counts_crelu_units_and_reads_through_layer_norm():
    model = hand_built("crelu")
    rows = PlasticityProbe(model).measure(torch.rand(50, 4), 0)
    assert rows[0]["dead_fraction"] == 0.0  # relu(-x) of the -100-biased units fires on every sample
    layer_norm = hand_built("relu", norm="layer")
    assert [r["layer"] for r in PlasticityProbe(layer_norm).measure(torch.rand(50, 4), 0)] == ["trunk.2", "trunk.5"]


def test_a_run_writes_a_row_per_task_and_layer_and_measuring_changes_nothing(tmp_path):
    fast = ["stream=synthetic", "model.hidden=[16,8]", "stream.train_per_class=50", "stream.test_per_class=20",
            "stream.n_tasks=3", "trainer.batch_size=16"]
    on = run_in_process(tmp_path / "on", *fast)
    run_in_process(tmp_path / "off", *fast, "plasticity.enabled=false")
    frame = pd.read_csv(tmp_path / "on" / "plasticity.csv")
    assert list(frame.columns) == ["task", "layer", "dead_fraction", "dormant_fraction", "effective_rank", "srank",
                                   "weight_magnitude"]
    assert list(zip(frame.task, frame.layer)) == [(t, layer) for t in range(3) for layer in ("trunk.1", "trunk.3")]
    assert not (tmp_path / "off" / "plasticity.csv").exists()
    assert (tmp_path / "on" / "accuracy.csv").read_bytes() == (tmp_path / "off" / "accuracy.csv").read_bytes()
    summary = on.summary()
    last = frame[frame.task == 2]
    assert summary["final_dead_fraction"] == pytest.approx(last.dead_fraction.mean())
    assert summary["final_effective_rank"] == pytest.approx(last.effective_rank.mean())


def test_online_tenths_are_the_means_of_the_first_and_last_tenth_of_the_tasks():
    online = [0.9, 0.8] + [0.5] * 16 + [0.2, 0.1]  # 20 tasks: tenths of 2
    first, last = online_tenths(online)
    assert first == pytest.approx(0.85) and last == pytest.approx(0.15)
    assert online_tenths([0.4, 0.6, 0.7]) == pytest.approx((0.4, 0.7))  # 3 tasks: one task a tenth
    assert all(math.isnan(v) for v in online_tenths([]))


@needs_fmnist
def test_a_permuted_run_records_online_accuracy_and_plasticity_for_every_task(tmp_path):
    record = run_in_process(tmp_path, "stream=permuted_fmnist", "stream.n_tasks=3", "stream.scenario=domain",
                            "stream.train_limit=1000", "stream.test_limit=500", "model.hidden=[100,100]",
                            "optimizer=adam", "trainer.batch_size=32", "eval.tasks=current")
    online = pd.read_csv(tmp_path / "online.csv")
    # measured at seed 0: online accuracy 0.43, 0.46, 0.39 (one pass over 1,000 images a task; chance is 0.1)
    assert list(online.task) == [0, 1, 2] and (online.online_accuracy > 0.25).all()
    frame = pd.read_csv(tmp_path / "plasticity.csv")
    assert list(zip(frame.task, frame.layer)) == [(t, layer) for t in range(3) for layer in ("trunk.1", "trunk.3")]
    assert frame.dead_fraction.between(0, 1).all() and frame.dormant_fraction.between(0, 1).all()
    assert (frame.effective_rank > 1).all() and (frame.srank <= 100).all() and (frame.weight_magnitude > 0).all()
    summary = record.summary()
    assert summary["online_first_tenth"] == online.online_accuracy.iloc[0]
    assert summary["online_last_tenth"] == online.online_accuracy.iloc[-1]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_diverged_layer_has_nan_measures_not_an_error(bad):
    H = torch.zeros(40, 6)  # a NaN in a column of zeros: a check that reads the column's maximum must still see it
    H[:, :2] = torch.rand(40, 2)
    H[3, 4] = bad
    sigma = singular_values(H)
    assert sigma.shape == (6,) and sigma.isnan().all()
    assert math.isnan(effective_rank(sigma)) and math.isnan(srank(sigma))
