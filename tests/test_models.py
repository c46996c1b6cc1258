"""Each model's defining property: sparse winners, frozen units, progressive columns, frozen trunks, multitask loss."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import read_accuracy, refusal, run_in_process
from torch.nn import functional as F

from clrelu.errors import ConfigError
from clrelu.models.layers import hidden_outputs
from clrelu.models.mlp import MLP
from clrelu.models.multitask import HardSharedMultitask
from clrelu.models.pnn import ProgressiveNet
from clrelu.models.sparse import SparsePerceptron
from clrelu.models.transfer import TransferHead
from clrelu.streams.base import HeadLayout

FAST = ["stream=synthetic", "stream.train_per_class=100", "stream.test_per_class=50", "trainer.batch_size=16"]
TASK3 = HeadLayout("task", n_tasks=3, classes_per_task=2)


def snapshots_at_task_end(model):
    """Record a copy of every parameter and buffer each time a task ends."""
    taken = {}
    end_task = model.end_task

    def spy(task_id, train):
        end_task(task_id, train)
        taken[task_id] = {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}

    model.end_task = spy
    return taken


def run_spied(folder, *overrides):
    """Run in-process, keeping the model and a snapshot of its state at the end of every task."""
    import clrelu.training.experiment as experiment

    snapshots = {}
    build = experiment.build

    def build_and_spy(make, group, **runtime):
        built = build(make, group, **runtime)
        if group == "model":
            snapshots.update(model=built, taken=snapshots_at_task_end(built))
        return built

    experiment.build = build_and_spy
    try:
        record = run_in_process(folder, *overrides)
    finally:
        experiment.build = build
    return record, snapshots["model"], snapshots["taken"]


def run_model(tmp_path, model_name, *overrides):
    """Run a model in-process on the small synthetic stream (FAST), with run_spied's snapshots."""
    return run_spied(tmp_path, f"model={model_name}", *FAST, *overrides)


# --- sparse -------------------------------------------------------------------------------------

def test_sparse_with_k_1_and_no_protection_is_the_mlp():
    mlp = MLP(20, TASK3, hidden=[16, 8])
    sparse = SparsePerceptron(20, TASK3, hidden=[16, 8], k=1.0, protect=False)
    missing, unexpected = sparse.load_state_dict(mlp.state_dict(), strict=False)
    assert missing == ["owner_0", "owner_1"] and unexpected == []  # the same weights; only the unit owners are extra
    x = torch.randn(32, 20)
    for task in range(3):
        assert torch.equal(sparse(x, task), mlp(x, task))


def test_sparse_keeps_exactly_k_of_each_layer():
    torch.manual_seed(0)
    model = SparsePerceptron(30, TASK3, hidden=[100, 50], k=0.1, protect=False)
    x = torch.rand(64, 30)
    with torch.no_grad():
        first, second = hidden_outputs(model.trunk, x)
        pre_first = model.trunk[1](model.trunk[0](x))
    assert ((pre_first > 0).sum(1) >= 10).all()  # ReLU leaves at least 10% positive, so exactly 10% survive
    assert ((first != 0).sum(1) == 10).all()
    assert ((second != 0).sum(1) == 5).all()


def test_sparse_gradient_reaches_only_the_winners():
    torch.manual_seed(0)
    model = SparsePerceptron(10, TASK3, hidden=[40], k=0.1, protect=False)
    x = torch.rand(1, 10)
    model(x, 0).sum().backward()
    winners = hidden_outputs(model.trunk, x)[0][0] != 0
    rows_with_gradient = model.trunk[0].weight.grad.abs().sum(1) != 0
    assert torch.equal(rows_with_gradient, winners)


def test_sparse_protected_units_are_bit_identical_after_later_tasks(tmp_path):
    # SGD with momentum and weight decay: only the gradient mask plus the restore keep units exactly still.
    record, model, taken = run_model(tmp_path, "sparse", "model.hidden=[64,32]", "model.k=0.25",
                                     "model.protect_threshold=0.3", "optimizer.weight_decay=0.01", "trainer.epochs=3")
    assert record.status == "finished"
    final = model.state_dict()
    for i, layer_name in enumerate(["trunk.0", "trunk.3"]):
        owner = taken[0][f"owner_{i}"]
        mine = owner == 0
        assert mine.any(), f"task 0 allocated no units in layer {i}"
        assert torch.equal(final[f"{layer_name}.weight"][mine], taken[0][f"{layer_name}.weight"][mine])
        assert torch.equal(final[f"{layer_name}.bias"][mine], taken[0][f"{layer_name}.bias"][mine])
        free = owner < 0
        assert free.any() and not torch.equal(final[f"{layer_name}.weight"][free],
                                              taken[0][f"{layer_name}.weight"][free])  # the free units did learn
    stats = pd.read_csv(tmp_path / "model_stats.csv")
    assert list(stats.columns) == ["after_task", "allocated_l0", "free_l0", "allocated_l1", "free_l1"]
    assert (stats.allocated_l0.cumsum() + stats.free_l0 == 64).all()


def test_sparse_trains_on_with_a_warning_when_a_layer_has_no_free_unit(tmp_path, caplog):
    # 8 units, 4 winners a sample: on task 0 every unit wins on more than 1% of the samples, so all are allocated
    with caplog.at_level(logging.WARNING, logger="clrelu.models.sparse"):
        record, model, taken = run_model(tmp_path, "sparse", "stream.n_tasks=3", "model.hidden=[8]", "model.k=0.5",
                                         "model.protect_threshold=0.01")
    assert caplog.messages == ["sparse: hidden layer 0 has no free units left after task 0; later tasks train the "
                               "rest of the network only"]
    stats = pd.read_csv(tmp_path / "model_stats.csv")
    assert stats.allocated_l0.tolist() == [8, 0, 0] and stats.free_l0.tolist() == [0, 0, 0]
    for name in ("trunk.0.weight", "trunk.0.bias"):  # the full layer stays as task 0 left it
        assert torch.equal(model.state_dict()[name], taken[0][name])
    assert record.status == "finished"
    assert all(record.R[t][t] >= 0.7 for t in (1, 2))  # the later tasks learn on their heads (chance is 0.5)


# --- progressive net ----------------------------------------------------------------------------

def test_pnn_never_changes_old_predictions(tmp_path):
    record, model, taken = run_model(tmp_path, "pnn", "stream.n_tasks=3", "model.hidden=[32,16]", "trainer.epochs=2")
    R = read_accuracy(tmp_path)
    for j in range(2):
        for i in range(j + 1, 3):
            assert R.loc[i, str(j)] == R.loc[j, str(j)]  # exactly, not approximately
    forgetting = pd.read_csv(tmp_path / "forgetting.csv", index_col="after_task")
    assert (forgetting.stack().dropna() == 0).all() and forgetting.stack().dropna().size == 3
    assert R.loc[0, "1"] != R.loc[0, "1"]  # NaN: no column for a task before it begins
    final = model.state_dict()
    for t in range(2):
        for name, value in taken[t].items():
            if name.startswith(f"columns.{t}."):
                assert torch.equal(final[name], value), name


def test_pnn_mlp_adapters_have_the_shape_of_eq_2_of_the_paper():
    model = ProgressiveNet(12, TASK3, hidden=[8, 6])
    for t in range(3):
        model.begin_task(t)
    for k, column in enumerate(model.columns):
        assert len(column.layers) == 3  # two hidden layers and the output layer
        assert len(column.laterals) == (2 if k else 0)  # into hidden layer 2 and the output layer
        for i, adapter in enumerate(column.laterals, start=1):
            n_before, n_into = [8, 6][i - 1], [6, 2][i - 1]  # widths of layers i-1 and i
            assert adapter.alpha.shape == () and 0 <= adapter.alpha.item() < 0.1  # a learned scalar, small
            assert adapter.projection().shape == (n_before, n_before * k)  # V: the k earlier columns
            assert adapter.project_bias.shape == (n_before,)
            assert adapter.lateral.weight.shape == (n_into, n_before) and adapter.lateral.bias is None  # U
    assert not any(p.requires_grad for p in model.columns[0].parameters())
    assert all(p.requires_grad for p in model.columns[2].parameters())
    # eq. 2 by hand, with weights set by hand: U relu(V alpha [h0, h1] + b), V = [V0 V1] reading columns 0 and 1
    rng = np.random.default_rng(0)
    h = [rng.uniform(0, 1, (5, 8)) for _ in range(2)]  # layer 1 of columns 0 and 1
    alpha, blocks, b, u = 0.7, [rng.normal(size=(8, 8)) for _ in range(2)], rng.normal(size=8), rng.normal(size=(6, 8))
    adapter = model.columns[2].laterals[0]
    with torch.no_grad():
        adapter.alpha.fill_(alpha)
        for block, value in zip(adapter.project, blocks):
            block.weight.copy_(torch.tensor(value))
        adapter.project_bias.copy_(torch.tensor(b))
        adapter.lateral.weight.copy_(torch.tensor(u))
    expected = np.maximum(alpha * np.concatenate(h, 1) @ np.concatenate(blocks, 1).T + b, 0) @ u.T
    got = adapter([torch.tensor(x, dtype=torch.float32) for x in h]).detach().double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_pnn_linear_adapters_map_every_earlier_column():
    model = ProgressiveNet(12, TASK3, hidden=[8, 6], adapter="linear")
    for t in range(3):
        model.begin_task(t)
    for k, column in enumerate(model.columns):
        for i, adapter in enumerate(column.laterals, start=1):
            assert [m.weight.shape for m in adapter.maps] == [([6, 2][i - 1], [8, 6][i - 1])] * k
    no_lateral = ProgressiveNet(12, TASK3, hidden=[8], lateral=False)
    no_lateral.begin_task(0), no_lateral.begin_task(1)
    assert len(no_lateral.columns[1].laterals) == 0


@pytest.mark.parametrize("adapter, lateral", [("mlp", 1 + 32 * 32 + 32 + 32 * 2), ("linear", 32 * 2)])
def test_pnn_parameter_count_grows_per_task(tmp_path, adapter, lateral):
    run_model(tmp_path, "pnn", "stream.n_tasks=3", "model.hidden=[32]", f"model.adapter={adapter}")
    evals = pd.read_csv(tmp_path / "evals.csv").groupby("after_task").n_params.first()
    assert evals.loc[-1] == 0 and evals.loc[0] < evals.loc[1] < evals.loc[2]
    column = 32 * 32 + 32 + 32 * 2 + 2  # synthetic inputs have 32 features
    assert evals.loc[0] == column and evals.loc[1] == 2 * column + lateral  # + the adapter into the output layer


def test_pnn_refuses_other_scenarios_and_regimes(tmp_path):
    assert refusal(tmp_path / "run", "model=pnn", "stream=synthetic", "stream.scenario=class") == (
        "model=pnn cannot serve stream.scenario=class; it supports task", 2)
    assert refusal(tmp_path / "run", "model=pnn", "stream=synthetic", "trainer.regime=joint") == (
        "model=pnn cannot train with trainer.regime=joint; it supports sequential", 2)


# --- transfer -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["first_task", "random"])
def test_transfer_trunk_is_bit_identical_after_every_task(tmp_path, backbone):
    record, model, taken = run_model(tmp_path, "transfer", f"model.backbone={backbone}", "model.hidden=[32,16]")
    trunk_keys = [k for k in taken[0] if k.startswith("trunk.")]
    for t in range(1, 5):
        for key in trunk_keys:
            assert torch.equal(taken[t][key], taken[0][key]), (t, key)
    assert not any(p.requires_grad for p in model.trunk.parameters())


def test_transfer_finetune_last_keeps_the_last_layers_learning(tmp_path):
    record, model, taken = run_model(tmp_path, "transfer", "model.hidden=[32,16]", "model.finetune_last=1")
    assert torch.equal(taken[4]["trunk.0.weight"], taken[0]["trunk.0.weight"])
    assert not torch.equal(taken[4]["trunk.2.weight"], taken[0]["trunk.2.weight"])


def test_a_saved_trunk_loads_into_another_run(tmp_path):
    run_in_process(tmp_path / "source", "model=mlp", *FAST, "model.hidden=[24]", "stream.seed=7")
    saved = torch.load(tmp_path / "source" / "model.pt", weights_only=True)
    record, model, taken = run_model(tmp_path / "target", "transfer", "model.backbone=checkpoint",
                                     f"model.backbone_path={tmp_path / 'source' / 'model.pt'}", "model.hidden=[24]")
    assert record.status == "finished"
    for key, value in saved["trunk"]["state_dict"].items():
        assert torch.equal(model.trunk.state_dict()[key], value)


def test_mismatched_checkpoints_are_refused(tmp_path):
    run_in_process(tmp_path / "source", "model=mlp", *FAST, "model.hidden=[24]")
    path = tmp_path / "source" / "model.pt"
    with pytest.raises(ConfigError, match="its trunk takes 32 inputs, this stream has 10"):
        run_in_process(tmp_path / "a", "model=transfer", *FAST, "stream.n_features=10", "model.backbone=checkpoint",
                       f"model.backbone_path={path}", "model.hidden=[24]")
    with pytest.raises(ConfigError,
                       match=r"its trunk is hidden=\[24\] activation=relu, the config asks for hidden=\[400\]"):
        run_in_process(tmp_path / "b", "model=transfer", *FAST, "model.backbone=checkpoint",
                       f"model.backbone_path={path}")
    with pytest.raises(ConfigError, match="no such file"):
        run_in_process(tmp_path / "c", "model=transfer", *FAST, "model.backbone=checkpoint",
                       f"model.backbone_path={tmp_path / 'missing.pt'}")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read as a clrelu model.pt"):
        TransferHead(32, TASK3, backbone="checkpoint", backbone_path=str(tmp_path / "junk.pt"))


# --- multitask ----------------------------------------------------------------------------------

def test_multitask_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    model = HardSharedMultitask(6, TASK3, hidden=[5], tower_hidden=4, lambda_task=[0.5, 2.0, 1.0], lambda_rec=0.3)
    x = torch.rand(5, 6)
    y = torch.tensor([0, 1, 1, 0, 1])
    task = torch.tensor([0, 1, 0, 2, 1])
    features = model.trunk(x)
    ce = [F.cross_entropy(model.heads.layers[t](features[task == t]), y[task == t]) for t in range(3)]
    expected = 0.5 * ce[0] + 2.0 * ce[1] + 1.0 * ce[2] + 0.3 * F.mse_loss(model.reconstruction(features), x)
    loss, logits = model.loss_and_logits(x, y, task)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, model(x, task))
    single, _ = model.loss_and_logits(x, y, 1)
    torch.testing.assert_close(single, 2.0 * F.cross_entropy(model.heads.layers[1](features), y)
                               + 0.3 * F.mse_loss(model.reconstruction(features), x))


def test_multitask_without_reconstruction_has_no_reconstruction_head():
    model = HardSharedMultitask(6, TASK3, hidden=[5], lambda_rec=0.0)
    assert model.reconstruction is None
    assert not any("reconstruction" in name for name, _ in model.named_parameters())
    with pytest.raises(ConfigError,
                       match=r"model.lambda_task=\[1.0, 2.0\]: give one weight, or a list of one weight per task"):
        HardSharedMultitask(6, TASK3, lambda_task=[1.0, 2.0])
