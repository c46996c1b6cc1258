"""The trainer's regimes and evaluation, and the scenario heads, on the synthetic stream."""

import math

import pandas as pd
import pytest
import torch
from conftest import read_accuracy, run_in_process

from clrelu.models.heads import Heads
from clrelu.streams.base import HeadLayout
from clrelu.training.trainer import phases

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


def test_phases_of_each_regime():
    assert [(p.new_tasks, p.train_tasks, p.row) for p in phases("sequential", 3)] == [
        ((0,), (0,), 0), ((1,), (1,), 1), ((2,), (2,), 2)]
    assert [(p.new_tasks, p.train_tasks, p.row) for p in phases("cumulative", 3)] == [
        ((0,), (0,), 0), ((1,), (0, 1), 1), ((2,), (0, 1, 2), 2)]
    assert [(p.new_tasks, p.train_tasks, p.row) for p in phases("joint", 3)] == [((0, 1, 2), (0, 1, 2), 2)]


def test_joint_run_has_one_row(tmp_path):
    record = run_in_process(tmp_path, *FAST, "trainer.regime=joint")
    accuracy = read_accuracy(tmp_path)
    assert list(accuracy.index) == [4] and accuracy.shape == (1, 5)
    s = record.summary()
    assert s["avg_accuracy"] == pytest.approx(accuracy.iloc[0].mean())
    assert math.isnan(s["bwt"]) and math.isnan(s["learning_accuracy"]) and s["tasks_done"] == 5


@pytest.mark.parametrize("settings, batches", [
    # 100 training samples a task: iters counts steps, through as many passes as it takes, whatever the epochs
    (["trainer.iters=3", "trainer.batch_size=10"], [10] * 3),
    (["trainer.iters=25", "trainer.epochs=2", "trainer.batch_size=10"], [10] * 25),
    # without iters, epochs passes over the task, the last batch of each pass holding what is left
    (["trainer.epochs=2", "trainer.batch_size=30"], [30, 30, 30, 10] * 2),
])
def test_iters_sets_the_number_of_steps(tmp_path, monkeypatch, settings, batches):
    from clrelu.strategies.base import Strategy

    seen = {}  # per task, the size of every batch it trained on (the trainer hands each to the strategy once)
    begin, batch = Strategy.before_task, Strategy.batch

    def before_task(self, model, task_id):
        seen[task_id] = []
        return begin(self, model, task_id)

    def counted(self, x, y, task):
        seen[task].append(len(x))
        return batch(self, x, y, task)

    monkeypatch.setattr(Strategy, "before_task", before_task)
    monkeypatch.setattr(Strategy, "batch", counted)
    run_in_process(tmp_path, *FAST, "stream.n_tasks=2", *settings)
    assert seen == {0: batches, 1: batches}


def test_class_scenario_evaluates_only_seen_classes(tmp_path):
    run_in_process(tmp_path, *FAST, "stream.scenario=class")
    accuracy = read_accuracy(tmp_path)
    evals = pd.read_csv(tmp_path / "evals.csv")
    # before task j is learned its units are off, so its accuracy is undefined (NaN), not zero
    for i in range(5):
        for j in range(5):
            assert pd.isna(accuracy.loc[i, str(j)]) == (j > i)
    assert evals[evals.after_task == -1].accuracy.isna().all()


def test_cumulative_keeps_old_tasks(tmp_path):
    # measured: sequential 0.27 (only the last task survives), cumulative 0.95
    settings = [*FAST, "stream.scenario=class", "trainer.batch_size=16"]
    sequential = run_in_process(tmp_path / "s", *settings)
    cumulative = run_in_process(tmp_path / "c", *settings, "trainer.regime=cumulative")
    assert cumulative.summary()["avg_accuracy"] > sequential.summary()["avg_accuracy"] + 0.5


def test_class_heads_mask_unseen_units():
    heads = Heads(3, HeadLayout("class", n_tasks=3, classes_per_task=2))
    heads.add_task(0)
    logits = heads(torch.randn(4, 3), 0)
    assert torch.isinf(logits[:, 2:]).all() and torch.isfinite(logits[:, :2]).all()
    assert heads.knows(0) and not heads.knows(1)
    heads.add_task(1)
    assert torch.isfinite(heads(torch.randn(4, 3), 0)[:, :4]).all()


def test_active_classes_all_masks_nothing_and_seen_in_training_masks_only_in_training():
    x = torch.randn(4, 3)
    heads = Heads(3, HeadLayout("class", n_tasks=3, classes_per_task=2, active_classes="all"))
    assert torch.isfinite(heads(x, 0)).all() and heads.knows(2)  # before any task, and for every task
    with torch.inference_mode():
        assert torch.isfinite(heads(x, 0)).all()
    heads = Heads(3, HeadLayout("class", n_tasks=3, classes_per_task=2, active_classes="seen_in_training"))
    heads.add_task(0)
    assert torch.isinf(heads(x, 0)[:, 2:]).all() and heads.knows(2)  # training, the Fisher, LwF's targets
    with torch.inference_mode():  # evaluation
        assert torch.isfinite(heads(x, 0)).all()


def test_active_classes_change_the_rows_they_should(tmp_path):
    args = [*FAST, "stream.scenario=class", "stream.n_tasks=3"]
    run_in_process(tmp_path / "seen", *args)
    run_in_process(tmp_path / "hsu", *args, "stream.active_classes=seen_in_training")
    run_in_process(tmp_path / "all", *args, "stream.active_classes=all")
    seen, hsu, every = (read_accuracy(tmp_path / name) for name in ("seen", "hsu", "all"))
    assert seen.isna().sum().sum() == 3 and hsu.notna().all().all() and every.notna().all().all()
    # seen_in_training trains exactly as seen: after the last task every unit is active in both
    assert hsu.loc[2].tolist() == seen.loc[2].tolist()
    assert not every.loc[2].equals(seen.loc[2])  # training on every unit from the start changes the run


def test_task_heads_route_a_mixed_batch_like_single_task_batches():
    heads = Heads(3, HeadLayout("task", n_tasks=3, classes_per_task=2))
    x = torch.randn(6, 3)
    tasks = torch.tensor([2, 0, 1, 0, 2, 1])
    mixed = heads(x, tasks)
    for i in range(6):
        torch.testing.assert_close(mixed[i], heads(x[i:i + 1], int(tasks[i]))[0])


@pytest.mark.parametrize("reset, steps", [(True, 5), (False, 15)])
def test_reset_optimizer_false_keeps_adams_state_across_tasks(tmp_path, monkeypatch, reset, steps):
    import clrelu.training.trainer

    built = []
    make = clrelu.training.trainer.Trainer._optimizer

    def keep(self):
        built.append(make(self))
        return built[-1]

    monkeypatch.setattr(clrelu.training.trainer.Trainer, "_optimizer", keep)
    run_in_process(tmp_path, *FAST, "stream.n_tasks=3", "stream.scenario=domain", "optimizer=adam", "trainer.iters=5",
                   f"trainer.reset_optimizer={str(reset).lower()}")
    assert len({id(o) for o in built}) == (3 if reset else 1)
    assert {state["step"].item() for state in built[-1].state.values()} == {steps}


def test_the_initial_evaluation_is_timed_apart_from_the_evaluations_after_tasks(tmp_path, monkeypatch):
    """A clock that only the evaluations move: 7 s for the one at initialisation, 1 s for each after a task."""
    import clrelu.training.trainer

    now = [0.0]
    evaluate = clrelu.training.trainer.Trainer.evaluate

    def timed_evaluate(self, tasks=None, focus=0):
        now[0] += 1.0 if self.record.rows or self.record.tasks_done else 7.0
        return evaluate(self, tasks, focus)

    monkeypatch.setattr(clrelu.training.trainer.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(clrelu.training.trainer.Trainer, "evaluate", timed_evaluate)
    record = run_in_process(tmp_path, "stream=synthetic", "stream.n_tasks=3", "model.hidden=[8]", "trainer.iters=2",
                            "plasticity.enabled=false")
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert (record.eval_seconds_initial, record.eval_seconds, record.train_seconds) == (7.0, 3.0, 0.0)
    assert (summary.eval_seconds_initial, summary.eval_seconds) == (7.0, 3.0)
