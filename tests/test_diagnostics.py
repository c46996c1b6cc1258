"""ReLU diagnostics: sparsity, dead units and task overlap on hand-built cases, k-WTA sparsity, no side effects."""

import pandas as pd
import pytest
import torch

from clrelu.diagnostics import ActivationMonitor
from clrelu.models.mlp import MLP
from clrelu.models.sparse import SparsePerceptron
from clrelu.streams.base import Stream, Task
from clrelu.streams.synthetic import synthetic_stream
from clrelu.trainer import Trainer, TrainSettings
from conftest import run_in_process

FAST = ["stream=synthetic", "stream.train_per_class=50", "stream.test_per_class=20", "trainer.batch_size=16"]


def hand_built(activation: str = "relu", threshold: float = 0.0):
    """One hidden layer of 3 units: unit 0 reads input 0, unit 1 input 1, unit 2 minus their sum."""
    tasks = [
        Task(0, ("a", "b"), None, None, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1])),
        Task(1, ("a", "b"), None, None, torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 1])),
        Task(2, ("a", "b"), None, None, torch.tensor([[1.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1])),
    ]
    stream = Stream(tasks, "task", classes_per_task=2)
    model = MLP(2, stream.layout, hidden=[3], activation=activation)
    with torch.no_grad():
        model.trunk[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        model.trunk[0].bias.zero_()
    monitor = ActivationMonitor(model, activity_threshold=threshold, unit_threshold=0.05)
    Trainer(model, None, stream, None, TrainSettings(), None, None, monitor).evaluate()
    return monitor


def test_sparsity_dead_fraction_and_overlap_by_hand():
    monitor = hand_built()
    rows = pd.DataFrame(monitor.activations).set_index("eval_task")
    # active units per sample: task 0 {0},{0}; task 1 {1},{1}; task 2 {0,1},{0}
    assert rows.sparsity.tolist() == pytest.approx([4 / 6, 4 / 6, 3 / 6])
    # never active so far in the pass: after task 0 units 1 and 2; after tasks 0-1 and 0-2 unit 2
    assert rows.dead_fraction.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert set(rows.n_units) == {3} and set(rows.layer) == {"trunk.1"}
    overlap = {(r["task_a"], r["task_b"]): r["jaccard"] for r in monitor.overlap}
    # task-active sets: {0}, {1}, {0, 1}
    assert overlap == {(0, 1): 0.0, (0, 2): 0.5, (1, 2): 0.5}


def test_activity_threshold_applies_whatever_the_activation():
    # tanh outputs: task 1's second sample gives tanh(2) = 0.96 on unit 1, tanh(1) = 0.76 elsewhere
    monitor = hand_built("tanh", threshold=0.8)
    rows = pd.DataFrame(monitor.activations).set_index("eval_task")
    assert rows.sparsity.tolist() == pytest.approx([1.0, 5 / 6, 1.0])
    overlap = {(r["task_a"], r["task_b"]): r["jaccard"] for r in monitor.overlap}
    assert overlap[(0, 1)] == 0.0 and pd.isna(overlap[(0, 2)])  # two empty sets: undefined, not 1


def test_k_winners_sparsity_is_at_least_1_minus_k_and_exact_where_enough_units_fire():
    torch.manual_seed(0)
    stream = synthetic_stream("task", n_tasks=3, classes_per_task=2, n_features=32, train_per_class=10,
                              test_per_class=50, noise=1.0, seed=0, train_limit=None, test_limit=None)
    model = SparsePerceptron(32, stream.layout, hidden=[100, 50], k=0.1, protect=False)
    monitor = ActivationMonitor(model)
    Trainer(model, None, stream, None, TrainSettings(), None, None, monitor).evaluate()
    rows = pd.DataFrame(monitor.activations)
    assert set(rows.layer) == {"trunk.2", "trunk.5"}
    assert (rows.sparsity >= 0.9).all()
    # the first layer: at least 10% of its units are positive before k-WTA on every test input, so
    # exactly 10% remain active
    inputs = torch.cat([t.x_test for t in stream.tasks])
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
