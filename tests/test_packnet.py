"""PackNet: pruning takes exactly its fraction of each layer, the weights of finished tasks and their accuracy stay
bit-identical while later tasks train, and the method refuses what it cannot serve."""

import pandas as pd
import pytest
import torch
from conftest import crash_during_task, run_in_process

from clrelu.errors import ConfigError
from clrelu.models.packnet import FREE, PackNetNet
from clrelu.streams.base import HeadLayout

TASK = HeadLayout("task", n_tasks=3, classes_per_task=2)
RUN = ["model=packnet", "strategy=packnet", "stream=synthetic", "stream.n_tasks=3", "model.hidden=[16,8]",
       "stream.train_per_class=60", "stream.test_per_class=30", "trainer.batch_size=16", "trainer.epochs=2",
       "optimizer=adam", "optimizer.lr=0.01", "threads=1"]


def test_pruning_frees_exactly_the_fraction_of_smallest_weights_in_every_layer():
    model = PackNetNet(5, TASK, hidden=[4, 3])
    model.begin_task(0)
    first, second = model.masked.values()
    with torch.no_grad():  # magnitudes all different: 1..20 in a known order, and 1..12
        first.weight.copy_(torch.arange(1.0, 21.0).flip(0).view(4, 5) * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]))
        second.weight.copy_(torch.arange(1.0, 13.0).view(3, 4))
    freed = model.prune(0.3)
    assert freed == [6, 4]  # round(0.3 * 20), round(0.3 * 12)
    assert sorted(first.weight.abs().flatten().tolist())[:6] == [0.0] * 6
    assert (model.owner(0) == FREE).sum() == 6 and (model.owner(1) == FREE).sum() == 4
    assert set(first.weight.abs().flatten()[(model.owner(0) == FREE).flatten()].tolist()) == {0.0}
    assert sorted(first.weight.abs().flatten().tolist())[6:] == [float(v) for v in range(7, 21)]
    assert second.weight.flatten()[:4].tolist() == [0.0] * 4 and second.weight.flatten()[4:].tolist() == list(
        map(float, range(5, 13)))
    assert model.stats() == {"task_weights_l0": 0.7, "free_weights_l0": 0.3,
                             "task_weights_l1": pytest.approx(8 / 12), "free_weights_l1": pytest.approx(4 / 12)}
    model.begin_task(1)  # the freed weights are the next task's; a second prune takes a fraction of those alone
    assert (model.owner(0) == 1).sum() == 6 and (model.owner(0) == FREE).sum() == 0
    assert model.prune(0.5) == [3, 2] and (model.owner(0) == 0).sum() == 14


def test_a_task_sees_only_the_weights_of_the_tasks_up_to_it():
    torch.manual_seed(0)
    model = PackNetNet(5, TASK, hidden=[4])
    model.begin_task(0)
    model.prune(0.5)
    model.begin_task(1)
    layer = model.masked["0"]
    with torch.no_grad():
        layer.weight.add_(1.0)  # as if task 1 had trained: only its weights may count for it
        model.after_step()  # ... and task 0's are put back
    x = torch.rand(3, 5)
    task0 = torch.where(model.owner(0) == 0, layer.weight, 0.0)
    expected = model.heads.layers[0](torch.relu(x @ task0.T + layer.bias))
    assert torch.equal(model(x, 0), expected)
    assert torch.equal(model(x, 1), model.heads.layers[1](torch.relu(layer(x))))


def test_frozen_weights_and_old_accuracy_are_bit_identical_after_later_tasks(tmp_path):
    # adversarial settings: one Adam for the stream (moments carried over) and weight decay on every parameter
    args = [*RUN, "trainer.reset_optimizer=false", "optimizer.weight_decay=0.01"]
    crash_during_task(tmp_path / "run", 1, *args)  # its checkpoint holds the network after task 0
    after_first = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    record = run_in_process(tmp_path / "run", *args, "resume=true")
    final = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    for i, name in enumerate(("trunk.0.weight", "trunk.2.weight")):
        mine = after_first[f"owner_{i}"] == 0
        assert mine.any() and torch.equal(final[f"owner_{i}"][mine], after_first[f"owner_{i}"][mine])
        assert torch.equal(final[name][mine], after_first[name][mine]), name
        assert (final[f"owner_{i}"] == 2).any()  # the last task found free weights
    for name in ("trunk.0.bias", "trunk.2.bias", "heads.layers.0.weight", "heads.layers.0.bias"):
        assert torch.equal(final[name], after_first[name]), name
    evals = pd.read_csv(tmp_path / "run" / "evals.csv")
    task0 = evals[(evals.eval_task == 0) & (evals.after_task >= 0)]
    assert len(task0) == 3 and task0.accuracy.nunique() == 1 and task0.loss.nunique() == 1  # bit-identical
    assert (record.R[0, 0] == record.R[1:, 0]).all() and record.R[0, 0] > 0.8
    stats = pd.read_csv(tmp_path / "run" / "model_stats.csv")
    assert stats.free_weights_l0.tolist() == [0.5, 0.375, 0.0]  # 32 x 16 weights: 0.5 of task 0, 0.75 of task 1
    assert stats.pruned_l0.tolist() == [256, 192, 0] and stats.task_weights_l0.tolist() == [0.5, 0.125, 0.375]


def test_packnet_serves_only_its_model_and_the_task_scenario(tmp_path):
    with pytest.raises(ConfigError, match="strategy=packnet cannot train model=mlp; it supports model=packnet"):
        run_in_process(tmp_path / "a", *RUN, "model=mlp")
    with pytest.raises(ConfigError, match="model=packnet cannot use strategy=naive: its weights are owned by tasks"):
        run_in_process(tmp_path / "b", *RUN, "strategy=naive")
    with pytest.raises(ConfigError, match="model=packnet cannot serve stream.scenario=class; it supports task"):
        run_in_process(tmp_path / "c", *RUN, "stream.scenario=class")
    with pytest.raises(ConfigError, match=r"strategy.prune_fraction=1.5: must be at most 1"):
        run_in_process(tmp_path / "d", *RUN, "strategy.prune_fraction=[0.5,1.5]")
