"""HAT: the annealed slope, the attention regulariser and the embedding compensation on hand numbers, gradients
blocked to the units earlier tasks use, the per-batch schedule in a real run, and the usage statistics."""

import math

import pandas as pd
import pytest
import torch
from conftest import run_in_process
from torch.nn import functional as F

from clrelu.errors import ConfigError
from clrelu.models.hat import HatNet
from clrelu.strategies.hat import HAT, annealed_s, attention_regulariser
from clrelu.streams.base import HeadLayout

TASK = HeadLayout("task", n_tasks=3, classes_per_task=2)
RUN = ["model=hat", "strategy=hat", "stream=synthetic", "stream.n_tasks=3", "model.hidden=[16,16]",
       "stream.train_per_class=50", "stream.test_per_class=20", "trainer.batch_size=25", "threads=1"]


def test_the_slope_anneals_from_one_over_s_max_to_s_max_within_every_epoch():
    assert annealed_s(400, 0.0) == 1 / 400
    assert annealed_s(400, 0.5) == pytest.approx((400 - 1 / 400) / 2 + 1 / 400)
    assert annealed_s(400, 0.75) == pytest.approx(300.000625)


def test_the_regulariser_on_hand_numbers():
    gates = [torch.tensor([0.2, 0.8]), torch.tensor([0.5])]
    assert attention_regulariser(gates, None).item() == pytest.approx((0.2 + 0.8 + 0.5) / 3)
    previous = [torch.tensor([0.0, 1.0]), torch.tensor([0.5])]
    # (0.2 * 1 + 0.8 * 0 + 0.5 * 0.5) / (1 + 0 + 0.5)
    assert attention_regulariser(gates, previous).item() == pytest.approx(0.45 / 1.5)
    assert attention_regulariser(gates, [torch.ones(2), torch.ones(1)]) is None  # every unit taken


def test_a_run_anneals_per_batch_and_evaluates_at_s_max(tmp_path, monkeypatch):
    seen = []
    gates = HatNet.gates

    def spy(self, task, s):
        seen.append((self.training, s))
        return gates(self, task, s)

    monkeypatch.setattr(HatNet, "gates", spy)
    run_in_process(tmp_path / "run", *RUN, "stream.n_tasks=1", "trainer.epochs=2", "plasticity.enabled=false")
    training = [s for is_training, s in seen if is_training]
    # 100 samples in batches of 25: each epoch's batches start 0, 1/4, 1/2, 3/4 of the way in; each step reads the
    # gates twice (the forward pass and the regulariser)
    expected = [annealed_s(400, k / 4) for k in range(4) for _ in range(2)] * 2
    assert training[:16] == pytest.approx(expected)
    assert set(training[16:]) == {400.0}  # after the task: its gates at s_max (HAT's a<, the usage statistics)
    evaluated = [s for is_training, s in seen if not is_training]
    assert len(evaluated) == 2 and set(evaluated) == {400.0}  # the evaluations before and after the task


def hat_with_task0_units() -> tuple[HatNet, HAT]:
    """A 3-4-3 HatNet whose task 0 uses units 0 and 2 of the first layer and unit 1 of the second (embeddings +-6),
    after task 0 ended."""
    torch.manual_seed(0)
    model = HatNet(3, TASK, hidden=[4, 3], dropout_input=0.0, dropout_hidden=0.0)
    with torch.no_grad():
        for layer in model.layers:  # positive weights and biases: every unit active on positive inputs
            layer.weight.uniform_(0.2, 0.8)
            layer.bias.fill_(0.1)
        model.embeddings[0].weight[0] = torch.tensor([6.0, -6.0, 6.0, -6.0])
        model.embeddings[1].weight[0] = torch.tensor([-6.0, 6.0, -6.0])
        model.embeddings[0].weight[1] = 0.5
        model.embeddings[1].weight[1] = 0.5
    strategy = HAT(TASK)
    model.begin_task(0)
    strategy.after_task(model, 0, None)
    return model, strategy


def test_masks_block_the_gradients_of_units_earlier_tasks_use():
    model, strategy = hat_with_task0_units()
    assert [p.tolist() for p in strategy.previous] == [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    model.begin_task(1)
    strategy.before_step(model, 0.5)
    x, y = torch.rand(8, 3) + 0.5, torch.randint(0, 2, (8,))
    loss = F.cross_entropy(model(x, 1), y) + strategy.penalty(model, x, 1)
    loss.backward()
    raw = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    strategy.after_backward(model)
    first, second = model.layers
    assert first.weight.grad[[0, 2]].eq(0).all() and first.bias.grad[[0, 2]].eq(0).all()
    assert torch.equal(first.weight.grad[[1, 3]], raw["layers.0.weight"][[1, 3]])
    assert raw["layers.0.weight"][[1, 3]].ne(0).all() and raw["layers.1.weight"].ne(0).all()
    # layer 2's weight (unit, input unit) is blocked when both ends are task 0's: min(post, pre) = 1
    blocked = torch.zeros(3, 4, dtype=torch.bool)
    blocked[1, [0, 2]] = True
    assert second.weight.grad[blocked].eq(0).all()
    assert torch.equal(second.weight.grad[~blocked], raw["layers.1.weight"][~blocked])
    assert second.bias.grad[1] == 0 and torch.equal(second.bias.grad[[0, 2]], raw["layers.1.bias"][[0, 2]])
    heads = model.heads.layers[1]
    assert torch.equal(heads.weight.grad, raw["heads.layers.1.weight"])  # the heads are not masked
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.equal(first.weight[[0, 2]], before["layers.0.weight"][[0, 2]])
    assert torch.equal(second.weight[blocked], before["layers.1.weight"][blocked])


def test_embedding_gradients_are_compensated_and_embeddings_clamped():
    model, strategy = hat_with_task0_units()
    model.begin_task(1)
    strategy.before_step(model, 0.25)
    s = annealed_s(400, 0.25)
    x = torch.rand(4, 3) + 0.5
    F.cross_entropy(model(x, 1), torch.tensor([0, 1, 0, 1])).backward()
    raw = model.embeddings[0].weight.grad.clone()
    strategy.after_backward(model)
    e = 0.5  # task 1's embedding entries
    factor = 400 / s * (math.cosh(min(s * e, 50)) + 1) / (math.cosh(e) + 1)
    torch.testing.assert_close(model.embeddings[0].weight.grad[1], raw[1] * factor)
    assert model.embeddings[0].weight.grad[0].eq(0).all()
    with torch.no_grad():
        model.embeddings[1].weight[1, 0] = 9.0
    strategy.after_step(model)
    assert model.embeddings[1].weight[1, 0] == 6.0 and model.embeddings[0].weight[0, 0] == 6.0


def test_usage_statistics_count_units_per_task_and_their_overlap():
    model, _ = hat_with_task0_units()
    assert model.stats() == {"units_l0": 2, "shared_l0": 0, "used_l0": 2, "jaccard_l0": pytest.approx(float("nan"),
                                                                                                       nan_ok=True),
                             "units_l1": 1, "shared_l1": 0, "used_l1": 1, "jaccard_l1": pytest.approx(
                                 float("nan"), nan_ok=True)}
    model.begin_task(1)
    with torch.no_grad():
        model.embeddings[0].weight[1] = torch.tensor([6.0, 6.0, -6.0, -6.0])  # units 0 and 1: shares unit 0
        model.embeddings[1].weight[1] = torch.tensor([-6.0, 6.0, 6.0])        # units 1 and 2: shares unit 1
    assert model.stats() == {"units_l0": 2, "shared_l0": 1, "used_l0": 3, "jaccard_l0": 1 / 3,
                             "units_l1": 2, "shared_l1": 1, "used_l1": 2, "jaccard_l1": 1 / 2}


def test_a_hat_run_writes_its_usage_beside_the_overlap_diagnostic(tmp_path):
    record = run_in_process(tmp_path / "run", *RUN, "trainer.epochs=3", "optimizer.lr=0.05", "optimizer.momentum=0")
    stats = pd.read_csv(tmp_path / "run" / "model_stats.csv")
    assert list(stats.columns) == ["after_task", *(f"{k}_l{i}" for i in range(2)
                                                   for k in ("units", "shared", "used", "jaccard"))]
    assert (stats.used_l0.diff().dropna() >= 0).all() and (stats.units_l0 > 0).all()
    assert set(pd.read_csv(tmp_path / "run" / "overlap.csv").layer) == {"gate_outputs.0", "gate_outputs.1"}
    assert record.status == "finished"


def test_hat_serves_only_its_model_and_the_task_scenario(tmp_path):
    with pytest.raises(ConfigError, match="strategy=hat cannot train model=mlp; it supports model=hat"):
        run_in_process(tmp_path / "a", *RUN, "model=mlp")
    with pytest.raises(ConfigError, match="model=hat cannot use strategy=ewc: its gates are learned"):
        run_in_process(tmp_path / "b", *RUN, "strategy=ewc")
    with pytest.raises(ConfigError, match="model=hat cannot serve stream.scenario=domain; it supports task"):
        run_in_process(tmp_path / "c", *RUN, "stream.scenario=domain")
    with pytest.raises(ConfigError, match="model.activation=crelu: gives two outputs per unit"):
        run_in_process(tmp_path / "d", *RUN, "model.activation=crelu")
