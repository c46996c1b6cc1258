"""ReLU diagnostics: sparsity, dead units and task overlap on hand-built cases, k-WTA sparsity, no side effects."""

import pandas as pd
import pytest
import torch
from conftest import run_in_process

from clrelu.measure import diagnostics
from clrelu.measure.diagnostics import ActivationMonitor
from clrelu.models.layers import make_activation
from clrelu.models.mlp import MLP
from clrelu.models.sparse import SparsePerceptron
from clrelu.strategies.base import Strategy
from clrelu.streams.base import Split, Stream, Task
from clrelu.streams.synthetic import synthetic_stream
from clrelu.training.trainer import Trainer, TrainSettings

FAST = ["stream=synthetic", "stream.train_per_class=50", "stream.test_per_class=20", "trainer.batch_size=16"]


def hand_built(activation: str = "relu", tolerance: float = 0.0, bias: float = 0.0):
    """One hidden layer of 3 units: unit 0 reads input 0, unit 1 input 1, unit 2 minus their sum, plus `bias`.

    Pre-activations (bias 0), two samples a task: task 0 [1, 0, -1] [1, 0, -1]; task 1 [0, 1, -1] [0, 2, -2];
    task 2 [1, 1, -2] [1, 0, -1].
    """
    inputs = ([[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 2.0]], [[1.0, 1.0], [1.0, 0.0]])
    tasks = [Task(t, ("a", "b"), None, Split.of(torch.tensor(x), torch.tensor([0, 1]))) for t, x in enumerate(inputs)]
    stream = Stream(tasks, "task", classes_per_task=2)
    model = MLP(2, stream.layout, hidden=[3], activation=activation)
    with torch.no_grad():
        model.trunk[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        model.trunk[0].bias.fill_(bias)
    monitor = ActivationMonitor(model, zero_tolerance=tolerance, unit_threshold=0.05)
    Trainer(model, Strategy(stream.layout), stream, None, TrainSettings(), None, None, monitor).evaluate()
    return monitor


def rows_and_overlap(monitor):
    rows = pd.DataFrame(monitor.activations).set_index("eval_task")
    return rows, {(r["task_a"], r["task_b"]): r["jaccard"] for r in monitor.overlap}


def test_relu_sparsity_is_the_share_of_zeros_and_dead_units_are_zero_on_every_sample():
    rows, overlap = rows_and_overlap(hand_built())
    # zero outputs per sample: task 0 two and two, task 1 two and two, task 2 one and two
    assert rows.sparsity.tolist() == pytest.approx([4 / 6, 4 / 6, 3 / 6])
    assert rows.nonpositive_fraction.tolist() == pytest.approx(rows.sparsity.tolist())  # relu is never negative
    # zero on every sample so far in the pass: after task 0 units 1 and 2; after tasks 0-1 and 0-2 unit 2
    assert rows.dead_fraction.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert set(rows.n_units) == {3} and set(rows.layer) == {"trunk.1"}
    # task-active (nonzero) sets: {0}, {1}, {0, 1}
    assert overlap == {(0, 1): 0.0, (0, 2): 0.5, (1, 2): 0.5}


def test_tanh_without_zero_outputs_has_sparsity_0_whatever_its_sign():
    rows, overlap = rows_and_overlap(hand_built("tanh", bias=0.5))  # no pre-activation is exactly 0
    assert rows.sparsity.tolist() == [0.0, 0.0, 0.0]
    assert rows.dead_fraction.tolist() == [0.0, 0.0, 0.0]
    assert rows.nonpositive_fraction.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])  # unit 2's negative outputs
    assert overlap == {(0, 1): 1.0, (0, 2): 1.0, (1, 2): 1.0}  # every unit is task-active for every task


def test_tanh_counts_exact_zeros_and_the_tolerance_widens_zero():
    rows, _ = rows_and_overlap(hand_built("tanh"))  # tanh(0) = 0 where the pre-activation is exactly 0
    assert rows.sparsity.tolist() == pytest.approx([2 / 6, 2 / 6, 1 / 6])
    assert rows.nonpositive_fraction.tolist() == pytest.approx([4 / 6, 4 / 6, 3 / 6])
    assert rows.dead_fraction.tolist() == pytest.approx([1 / 3, 0, 0])  # unit 1 is 0 on both samples of task 0
    # |tanh(1)| = 0.76 counts as zero with tolerance 0.8, |tanh(2)| = 0.96 does not
    rows, overlap = rows_and_overlap(hand_built("tanh", tolerance=0.8))
    assert rows.sparsity.tolist() == pytest.approx([1.0, 4 / 6, 5 / 6])
    assert rows.nonpositive_fraction.tolist() == pytest.approx([4 / 6, 4 / 6, 3 / 6])
    assert overlap == {(0, 1): 0.0, (0, 2): 0.0, (1, 2): 0.5}  # task-active: {}, {1, 2}, {2}
    _, overlap = rows_and_overlap(hand_built("tanh", tolerance=1.0))
    assert all(pd.isna(v) for v in overlap.values())  # two empty sets: undefined, not 1


@pytest.mark.parametrize("activation", ["swish", "softplus"])
def test_swish_and_softplus_have_no_zero_outputs(activation):
    x = torch.linspace(-5, 5, 11)
    expected = x * torch.sigmoid(x) if activation == "swish" else torch.log1p(torch.exp(x))
    torch.testing.assert_close(make_activation(activation)(x), expected)
    rows, _ = rows_and_overlap(hand_built(activation, bias=0.5))
    assert rows.sparsity.tolist() == [0.0, 0.0, 0.0]
    negative = 1 / 3 if activation == "swish" else 0.0  # swish(-0.5) < 0; softplus is always positive
    assert rows.nonpositive_fraction.tolist() == pytest.approx([negative] * 3)


def test_k_winners_sparsity_is_at_least_1_minus_k_and_exact_where_enough_units_fire():
    torch.manual_seed(0)
    stream = synthetic_stream("task", n_tasks=3, classes_per_task=2, n_features=32, train_per_class=10,
                              test_per_class=50, noise=1.0, seed=0, train_limit=None, test_limit=None)
    model = SparsePerceptron(32, stream.layout, hidden=[100, 50], k=0.1, protect=False)
    monitor = ActivationMonitor(model)
    Trainer(model, Strategy(stream.layout), stream, None, TrainSettings(), None, None, monitor).evaluate()
    rows = pd.DataFrame(monitor.activations)
    assert set(rows.layer) == {"trunk.2", "trunk.5"}
    assert (rows.sparsity >= 0.9).all()
    # the first layer: at least 10% of its units are positive before k-WTA on every test input, so
    # exactly 10% remain active
    inputs = torch.cat([t.test.gather(torch.arange(len(t.test)))[0] for t in stream.tasks])
    with torch.no_grad():
        before = model.trunk[1](model.trunk[0](inputs))
    assert ((before > 0).sum(1) >= 10).all()
    assert (rows[rows.layer == "trunk.2"].sparsity == 0.9).all()


def test_diagnostics_do_not_change_the_results(tmp_path):
    on = run_in_process(tmp_path / "on", "model=mlp", "model.hidden=[32,16]", *FAST)
    off = run_in_process(tmp_path / "off", "model=mlp", "model.hidden=[32,16]", *FAST, "diagnostics.enabled=false")
    for name in ("accuracy.csv", "forgetting.csv"):
        assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes()
    assert (tmp_path / "on" / "activations.csv").is_file() and not (tmp_path / "off" / "activations.csv").exists()
    assert pd.isna(off.summary()["mean_sparsity"]) and 0 < on.summary()["mean_sparsity"] < 1


def test_overlap_csv_and_summary_columns(tmp_path):
    record = run_in_process(tmp_path, "model=mlp", "model.hidden=[32,16]", *FAST)
    overlap = pd.read_csv(tmp_path / "overlap.csv")
    assert list(overlap.columns) == ["after_task", "layer", "task_a", "task_b", "jaccard"]
    final = overlap[overlap.after_task == 4]
    assert len(final) == 2 * 10  # two layers, ten pairs of five tasks
    assert record.summary()["mean_overlap"] == pytest.approx(final.jaccard.mean())
    activations = pd.read_csv(tmp_path / "activations.csv")
    assert len(activations) == 6 * 5 * 2  # init and five tasks, five evaluated tasks, two layers


def test_overlap_of_a_pass_over_many_tasks_keeps_the_pairs_of_its_focus_task(monkeypatch):
    torch.manual_seed(0)
    stream = synthetic_stream("task", n_tasks=25, classes_per_task=2, n_features=8, train_per_class=5,
                              test_per_class=10, noise=1.0, seed=0, train_limit=None, test_limit=None)
    model = MLP(8, stream.layout, hidden=[16])

    def overlap(limit):
        monkeypatch.setattr(diagnostics, "ALL_PAIRS_UP_TO", limit)
        monitor = ActivationMonitor(model)
        Trainer(model, Strategy(stream.layout), stream, None, TrainSettings(), None, None, monitor).evaluate(focus=7)
        return {(r["task_a"], r["task_b"]): r["jaccard"] for r in monitor.overlap}

    every_pair, bounded = overlap(100), overlap(20)
    assert len(every_pair) == 25 * 24 // 2
    assert sorted(bounded) == sorted((min(7, t), max(7, t)) for t in range(25) if t != 7)
    assert all(bounded[pair] == every_pair[pair] for pair in bounded)
