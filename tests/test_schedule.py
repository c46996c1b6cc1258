"""The evaluation schedule (eval.every, eval.tasks): which rows and tasks are evaluated, what the files hold, and
how the metrics treat the entries left out; online accuracy; the record's appended files."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import read_accuracy, run_in_process

import clrelu.training.trainer
from clrelu.measure import metrics
from clrelu.models.base import ContinualModel
from clrelu.rundir.record import Evaluation, RunRecord
from clrelu.training.schedule import EvalSchedule

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


def test_which_rows_and_tasks_each_schedule_evaluates():
    def evaluated(every, tasks, n=7):
        schedule = EvalSchedule(every, tasks)
        return {row: schedule.after(row, (row,), n) for row in range(n)}, schedule.initial(n)

    rows, initial = evaluated(3, "all")
    assert {r for r, t in rows.items() if t} == {2, 5, 6} and rows[2] == list(range(7)) and initial == list(range(7))
    rows, initial = evaluated(1, "seen")
    assert rows[2] == [0, 1, 2] and rows[6] == list(range(7)) and initial == []
    rows, initial = evaluated(2, "current")
    assert rows == {0: [], 1: [1], 2: [], 3: [3], 4: [], 5: [5], 6: list(range(7))} and initial == []
    assert EvalSchedule(1, "current").after(6, (0, 1, 2, 3, 4, 5, 6), 7) == list(range(7))  # joint: one phase


def test_a_scheduled_run_writes_only_what_it_evaluated_and_its_metrics_leave_out_the_rest(tmp_path):
    record = run_in_process(tmp_path, *FAST, "eval.every=2", "eval.tasks=seen")
    evals = pd.read_csv(tmp_path / "evals.csv")
    assert sorted(set(zip(evals.after_task, evals.eval_task))) == (
        [(1, 0), (1, 1)] + [(3, j) for j in range(4)] + [(4, j) for j in range(5)])  # no initial evaluation
    R = read_accuracy(tmp_path).to_numpy()
    assert R.shape == (5, 5)
    assert np.isnan(R[[0, 2]]).all() and np.isnan(R[1, 2:]).all() and np.isnan(R[3, 4])
    assert not np.isnan(R[4]).any()
    s = record.summary()
    assert s["avg_accuracy"] == R[4].mean()
    assert s["learning_accuracy"] == pytest.approx((R[1, 1] + R[3, 3] + R[4, 4]) / 3)
    assert s["bwt"] == pytest.approx((R[4, 1] - R[1, 1] + R[4, 3] - R[3, 3]) / 2)
    forgetting = [max(R[1, 0], R[3, 0]) - R[4, 0], max(R[1, 1], R[3, 1]) - R[4, 1], R[3, 2] - R[4, 2],
                  R[3, 3] - R[4, 3]]
    assert s["avg_forgetting"] == pytest.approx(sum(forgetting) / 4)
    assert math.isnan(s["fwt"])  # R[j-1, j] is never evaluated with eval.tasks=seen
    F = pd.read_csv(tmp_path / "forgetting.csv", index_col="after_task").to_numpy()
    np.testing.assert_allclose(F[4, :4], forgetting)
    # rows 0 and 2 were not evaluated; F[1, 0] and F[3, 2] have no evaluated earlier entry to compare with
    assert np.isnan(F[[0, 1, 2]]).all() and np.isnan(F[3, 2:]).all()
    np.testing.assert_allclose(F[3, :2], [R[1, 0] - R[3, 0], R[1, 1] - R[3, 1]])


def test_metrics_leave_out_entries_not_evaluated_and_are_nan_on_undefined_ones():
    nan = float("nan")
    R = np.array([[0.9, nan, nan],
                  [nan, 0.8, nan],
                  [0.6, 0.7, 0.5]])
    skipped = np.array([[False, True, True],
                        [True, False, True],
                        [False, False, False]])
    b, b_skipped = np.array([0.1, 0.2, 0.3]), np.zeros(3, dtype=bool)
    s = metrics.summary(R, b, skipped, b_skipped)
    assert s["avg_accuracy"] == pytest.approx(0.6)
    assert s["learning_accuracy"] == pytest.approx((0.9 + 0.8 + 0.5) / 3)
    # F[2, 0] = R[0, 0] - R[2, 0] (R[1, 0] was not evaluated); F[2, 1] = R[1, 1] - R[2, 1]
    np.testing.assert_allclose(metrics.forgetting_matrix(R, skipped)[2, :2], [0.3, 0.1])
    assert s["avg_forgetting"] == pytest.approx(0.2)
    assert s["bwt"] == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    assert math.isnan(s["fwt"])  # both of its terms need a skipped entry: nothing left to average
    # FWT with one evaluated term: R[1, 2] evaluated, R[0, 1] not
    R2, skipped2 = R.copy(), skipped.copy()
    R2[1, 2], skipped2[1, 2] = 0.4, False
    assert metrics.forward_transfer(R2, b, skipped2, b_skipped) == pytest.approx(0.4 - 0.3)
    # the same R with R[1, 0] undefined (NaN but evaluated): forgetting needs it, so it is NaN
    undefined = skipped.copy()
    undefined[1, 0] = False
    assert math.isnan(metrics.average_forgetting(R, undefined))
    assert metrics.average_accuracy(R, undefined) == pytest.approx(0.6)
    # without a mask every NaN is undefined, as before the schedule existed
    assert math.isnan(metrics.learning_accuracy(R)) is False and math.isnan(metrics.backward_transfer(R)) is False
    assert math.isnan(metrics.average_forgetting(R))


def test_the_record_forgetting_rows_equal_the_forgetting_matrix():
    rng = np.random.default_rng(0)
    for regime_rows in (list(range(6)), [5]):  # sequential, and joint (one row)
        record = RunRecord(None, 6, {})
        skipped_rows = {}
        for i in regime_rows:
            tasks = [j for j in range(6) if rng.random() < 0.6 or i == 5]
            accuracy = {j: (float("nan") if rng.random() < 0.1 else float(rng.random())) for j in tasks}
            record.add(i, [Evaluation(j, a, 0.0, 1) for j, a in accuracy.items()], 1)
            skipped_rows[i] = tasks
        expected = metrics.forgetting_matrix(record.R, record.skipped)
        written = np.array([row[1:] for row in record._pending["forgetting.csv"]], dtype=float)
        np.testing.assert_array_equal(written, expected[regime_rows])


def test_online_accuracy_counts_the_drawn_samples_before_each_update(tmp_path, monkeypatch):
    seen = []
    loss_and_logits = ContinualModel.loss_and_logits

    def spy(self, x, y, task):
        loss, logits = loss_and_logits(self, x, y, task)
        seen.append((logits.detach().clone(), y.clone(), loss.item()))
        return loss, logits

    monkeypatch.setattr(ContinualModel, "loss_and_logits", spy)
    # 100 training samples a task, batches of 20: five steps a task, each with 20 drawn samples and, from the
    # second task on, 16 replayed ones after them
    run_in_process(tmp_path, *FAST, "stream.n_tasks=3", "stream.scenario=class", "strategy=replay",
                   "strategy.replay_batch_size=16", "trainer.batch_size=20", "trainer.epochs=2")
    online = pd.read_csv(tmp_path / "online.csv")
    assert list(online.columns) == ["task", "online_accuracy", "final_loss"] and list(online.task) == [0, 1, 2]
    assert len(seen) == 30 and [len(y) for _, y, _ in seen] == [20] * 10 + [36] * 20
    for t in range(3):
        steps = seen[10 * t:10 * (t + 1)]
        correct = sum(int((logits[:20].argmax(1) == y[:20]).sum()) for logits, y, _ in steps)
        assert online.online_accuracy[t] == correct / 200
        assert online.final_loss[t] == steps[-1][2]  # the last tenth of 10 steps: the last one


def test_online_accuracy_of_a_cumulative_phase_counts_its_new_task_only(tmp_path, monkeypatch):
    captured = []
    loss_and_logits = ContinualModel.loss_and_logits

    def spy(self, x, y, task):
        loss, logits = loss_and_logits(self, x, y, task)
        captured.append((logits.detach().clone(), y.clone(), task.clone() if torch.is_tensor(task) else task))
        return loss, logits

    monkeypatch.setattr(ContinualModel, "loss_and_logits", spy)
    run_in_process(tmp_path, *FAST, "stream.n_tasks=2", "trainer.regime=cumulative", "trainer.batch_size=20")
    online = pd.read_csv(tmp_path / "online.csv")
    phase_1 = captured[5:]  # task 0 alone: 5 steps; then tasks 0 and 1: 200 samples, 10 steps
    hits = [(logits.argmax(1) == y)[task == 1] for logits, y, task in phase_1]
    assert online.online_accuracy[1] == sum(int(h.sum()) for h in hits) / sum(len(h) for h in hits)
    assert sum(len(h) for h in hits) == 100


def test_the_record_keeps_no_growing_lists_and_a_resume_cuts_appended_rows_back(tmp_path, monkeypatch):
    args = [*FAST, "stream.n_tasks=4"]
    whole = run_in_process(tmp_path / "whole", *args)
    assert all(len(v) <= 4 for v in vars(whole).values() if isinstance(v, list))
    assert not any(whole._pending.values())
    save = clrelu.training.trainer.save_checkpoint
    calls = []

    def crash_before_the_third_checkpoint(folder, state):
        calls.append(folder)
        if len(calls) == 3:  # the files of task 1 are appended, its checkpoint is not written
            raise RuntimeError("killed")
        save(folder, state)

    monkeypatch.setattr(clrelu.training.trainer, "save_checkpoint", crash_before_the_third_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        run_in_process(tmp_path / "cut", *args)
    assert len(pd.read_csv(tmp_path / "cut" / "accuracy.csv")) == 2  # rows of tasks 0 and 1 on disk
    monkeypatch.setattr(clrelu.training.trainer, "save_checkpoint", save)
    run_in_process(tmp_path / "cut", *args, "resume=true")
    for name in ("accuracy.csv", "forgetting.csv", "evals.csv", "online.csv", "activations.csv", "overlap.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_evaluations_give_freed_memory_back_every_ten_evaluated_tasks(tmp_path, monkeypatch):
    asked = []  # every task an evaluation reached, over the run
    trims = []  # how many tasks had been reached at each trim
    monkeypatch.setattr(clrelu.training.trainer, "release_freed_memory", lambda: trims.append(len(asked)))
    knows = ContinualModel.knows
    monkeypatch.setattr(ContinualModel, "knows", lambda self, task_id: asked.append(task_id) or knows(self, task_id))
    run_in_process(tmp_path, "stream=synthetic", "stream.n_tasks=25", "model.hidden=[8]", "trainer.iters=1",
                   "eval.every=25", "plasticity.enabled=false", "diagnostics.enabled=false")
    # two evaluations of all 25 tasks (at initialisation and after the last): a trim before every tenth task
    # reached, counted over both
    assert trims == [10, 20, 30, 40]
