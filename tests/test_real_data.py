"""Runs on the real datasets under $CLRELU_DATA (skipped without them): the baseline's known behaviour."""

import numpy as np
import pandas as pd
import pytest
from conftest import needs_fmnist, run_in_process

pytestmark = needs_fmnist


def final_accuracy(tmp_path, *overrides):
    record = run_in_process(tmp_path, "model=mlp", "stream=split_fmnist", "trainer.epochs=1", *overrides)
    assert record.status == "finished"
    return record.summary()["avg_accuracy"]


def test_task_scenario_learns_split_fmnist(tmp_path):
    # Two-way heads on Fashion-MNIST pairs: measured 0.92 to 0.99 over seeds 0-2 (seed 0 draws the hardest pairs).
    assert final_accuracy(tmp_path, "stream.scenario=task") >= 0.90


def test_class_scenario_forgets_catastrophically(tmp_path):
    # Fine-tuning one shared head: only the last task's classes survive (measured 0.15 to 0.20).
    assert final_accuracy(tmp_path, "stream.scenario=class") < 0.35


def test_joint_training_is_the_upper_bound_of_the_class_scenario(tmp_path):
    # All ten classes at once for one epoch: measured 0.81 to 0.82.
    assert final_accuracy(tmp_path, "stream.scenario=class", "trainer.regime=joint") >= 0.78


# Each model of the design on split_fmnist, task scenario, one epoch, seed 0. Seed 0's shuffled class
# order draws the hardest pairs (Shirt against T-shirt/top among them): measured there, mlp 0.92,
# sparse 0.92, pnn 0.95, transfer 0.91, multitask 0.92, against 0.96-0.99 for seeds 1 and 2. The
# thresholds sit about 0.04 below seed 0 so that a real regression, not noise, fails them.
@pytest.mark.parametrize("model, threshold", [("sparse", 0.88), ("pnn", 0.90), ("transfer", 0.87), ("multitask", 0.88)])
def test_each_model_learns_split_fmnist(tmp_path, model, threshold):
    record = run_in_process(tmp_path, f"model={model}", "stream=split_fmnist", "stream.scenario=task")
    assert record.summary()["avg_accuracy"] >= threshold


def test_pnn_forgets_nothing_on_real_data(tmp_path):
    record = run_in_process(tmp_path, "model=pnn", "stream=split_fmnist", "stream.n_tasks=3")
    R = record.R
    assert R[2, 0] == R[1, 0] == R[0, 0] and R[2, 1] == R[1, 1]
    assert record.summary()["avg_forgetting"] == 0.0


def test_multitask_joint_is_the_upper_bound(tmp_path):
    # The conventional split (consecutive class pairs): measured 0.989 for seeds 0-2. With seed 0's
    # shuffled order it is 0.955, held down by the Shirt/T-shirt pair at 0.85.
    record = run_in_process(tmp_path, "model=multitask", "stream=split_fmnist", "trainer.regime=joint",
                            "stream.class_order=[0,1,2,3,4,5,6,7,8,9]")
    assert record.summary()["avg_accuracy"] >= 0.95


def test_rotated_fashion_mnist_records_online_accuracy_and_forgets_far_rotations(tmp_path):
    # 3 tasks over 0-180 degrees, 1,000 training images a task: task 2 turns the images by 120-180 degrees,
    # so after it the accuracy on task 0 (0-60 degrees) drops (measured at seed 0: 0.55 -> 0.14; online
    # accuracy 0.42, 0.42, 0.51; over seeds 0-2 online accuracy 0.36-0.54)
    record = run_in_process(tmp_path, "stream=rotated_fmnist", "stream.n_tasks=3", "stream.scenario=domain",
                            "stream.train_limit=1000", "stream.test_limit=500", "trainer.batch_size=32",
                            "eval.tasks=current")
    online = pd.read_csv(tmp_path / "online.csv")
    assert list(online.task) == [0, 1, 2] and (online.online_accuracy > 0.3).all() and (online.final_loss > 0).all()
    R = record.R
    assert not np.isnan(R[2]).any() and np.isnan(R[0, 1:]).all()  # `current`: the last row covers every task
    assert R[2, 0] < R[0, 0] - 0.1
