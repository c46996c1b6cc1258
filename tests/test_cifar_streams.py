"""split_cifar10 and split_cifar100 on small datasets in CIFAR's own format (tests/cifar_files.py; see
tests/test_cifar_files.py for why the tests reach the real loading code): task partitions, scenarios,
per-channel normalisation, augmentation, every model on every trunk, and the refusal without torchvision."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from cifar_files import write_cifar
from conftest import read_accuracy, run_in_process
from test_models import run_spied

from clrelu.data import cifar
from clrelu.errors import ConfigError
from clrelu.models.mlp import MLP
from clrelu.streams.cifar import split_cifar_stream
from clrelu.streams.features import map_inputs

pytest.importorskip("torchvision", reason="the vision extra is not installed")

SMALL = ["trainer.batch_size=16", "model.hidden=[16]", "model.channels=[4,8]", "diagnostics.enabled=true"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_cifar(folder, "cifar10", n_train=200, n_test=100)
    write_cifar(folder, "cifar100", n_train=400, n_test=200)
    return folder


def stream(root, dataset="cifar10", **kw):
    args = {"dataset": dataset, "root": str(root), "scenario": "task", "n_tasks": None,
            "classes_per_task": 2 if dataset == "cifar10" else 10, "class_order": None, "seed": 0, "train_limit": None,
            "test_limit": None, "active_classes": "seen", "augment": "none"}
    return split_cifar_stream(**{**args, **kw})


def raw(split):
    """The uint8 rows a split reads, in order."""
    rows = torch.arange(len(split.pool.x)) if split.rows is None else split.rows.long()
    return split.pool.x[rows], split.pool.y[rows]


def test_cifar10_five_tasks_of_two_classes_partition_the_data(root):
    s = stream(root)
    assert s.n_tasks == 5 and s.image_shape == (3, 32, 32) and s.in_features == 3072
    seen = []
    for task in s.tasks:
        x, labels = raw(task.train)
        assert set(labels.tolist()) == {int(c.split("_")[1]) for c in task.classes} and len(task.train) == 40
        assert (x[torch.arange(len(x)), labels] == 255).all()  # the fixture marks class k at pixel k
        assert len(task.test) == 20
        seen += labels.unique().tolist()
    assert sorted(seen) == list(range(10))
    assert s.tasks[0].train.pool is s.tasks[4].train.pool  # one copy of the data, uint8
    assert s.tasks[0].train.pool.x.dtype == torch.uint8


def test_cifar100_ten_tasks_of_ten_by_default_and_any_divisor(root):
    assert stream(root, "cifar100").n_tasks == 10
    assert stream(root, "cifar100", classes_per_task=20).n_tasks == 5
    assert stream(root, "cifar100", classes_per_task=4).n_tasks == 25
    with pytest.raises(ConfigError, match="stream.classes_per_task=3: does not divide the 100 classes"):
        stream(root, "cifar100", classes_per_task=3)


def test_class_order_follows_the_seed(root):
    a, b, c = stream(root, seed=1), stream(root, seed=1), stream(root, seed=2)
    assert [t.classes for t in a.tasks] == [t.classes for t in b.tasks] != [t.classes for t in c.tasks]


@pytest.mark.parametrize("scenario, targets", [("task", [0, 1]), ("domain", [0, 1]), ("class", [6, 7])])
def test_scenarios(root, scenario, targets):
    s = stream(root, scenario=scenario, class_order=list(range(10)))
    assert sorted(s.tasks[3].train.targets().unique().tolist()) == targets
    assert s.layout.n_heads == (5 if scenario == "task" else 1)


def test_batches_are_normalised_per_channel_with_the_training_set_statistics(root):
    s = stream(root)
    data = cifar.load_cifar("cifar10", root)
    pixels = data.x_train.view(-1, 3, 1024).double() / 255
    mean = pixels.mean((0, 2))
    std = pixels.transpose(0, 1).reshape(3, -1).std(1, correction=0)
    assert np.allclose(s.normalisation[0], mean.numpy()) and np.allclose(s.normalisation[1], std.numpy())
    x = torch.cat([task.train.gather(torch.arange(len(task.train)))[0] for task in s.tasks])  # the whole train set
    per_channel = x.view(-1, 3, 1024).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, correction=0), torch.ones(3), atol=1e-5)
    rows, _ = raw(s.tasks[0].test)
    expected = ((rows.view(-1, 3, 1024).double() / 255 - mean.view(1, 3, 1)) / std.view(1, 3, 1)).view(-1, 3072)
    assert torch.allclose(s.tasks[0].test.gather(torch.arange(len(rows)))[0].double(), expected, atol=1e-5)


def test_crop_flip_augments_training_batches_drawn_from_the_run_generator(root, tmp_path, monkeypatch):
    seen = []
    loss_and_logits = MLP.loss_and_logits

    def spy(self, x, y, task):
        seen.append(x.detach().clone())
        return loss_and_logits(self, x, y, task)

    monkeypatch.setattr(MLP, "loss_and_logits", spy)
    args = ["stream=split_cifar10", f"data.root={root}", "stream.n_tasks=1", *SMALL, "model.trunk=cnn"]
    runs = {}
    for name, extra in (("plain", []), ("a", ["stream.augment=crop_flip"]), ("b", ["stream.augment=crop_flip"]),
                        ("c", ["stream.augment=crop_flip", "seed=1"])):
        seen.clear()
        run_in_process(tmp_path / name, *args, *extra)
        runs[name] = list(seen)
    plain, a, b, c = runs["plain"], runs["a"], runs["b"], runs["c"]
    assert [x.shape for x in a] == [x.shape for x in plain] and a[0].shape == (16, 3072)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same seed, same augmented batches
    assert not torch.equal(a[0], plain[0]) and not torch.equal(a[0], c[0])
    # the first batch: the same samples as without augmentation (the run's generator drew their order first),
    # then cropped and flipped with the generator's next draws
    generator = torch.Generator().manual_seed(0)
    torch.randperm(40, generator=generator)
    augment = stream(root, n_tasks=1, augment="crop_flip").augment
    assert torch.equal(a[0], augment(plain[0], generator))


MODELS = ["mlp", "sparse", "transfer", "multitask", "pnn"]


@pytest.mark.parametrize("trunk", ["cnn", "resnet18"])
@pytest.mark.parametrize("model", MODELS)
def test_every_model_on_every_trunk(root, tmp_path, model, trunk):
    record = run_in_process(tmp_path, f"model={model}", f"model.trunk={trunk}", "stream=split_cifar10",
                            f"data.root={root}", "stream.n_tasks=3", *SMALL)
    assert record.status == "finished"
    evals = pd.read_csv(tmp_path / "evals.csv")
    assert np.isfinite(evals.loss.dropna()).all() and len(evals) == 4 * 3
    R = read_accuracy(tmp_path)
    if model == "pnn":  # old columns (with their batch norm, on resnet18) never change
        for j in range(3):
            assert (R.loc[j:, str(j)] == R.loc[j, str(j)]).all()
    activations = pd.read_csv(tmp_path / "activations.csv")
    assert activations.layer.str.contains(r"\.net\.").any()  # conv layers are measured too
    plasticity = pd.read_csv(tmp_path / "plasticity.csv")
    assert plasticity.layer.str.contains(r"\.net\.").any() and plasticity.layer.str.contains(r"\.net\.").mean() < 1


@pytest.mark.parametrize("trunk", ["cnn", "resnet18"])
def test_a_frozen_conv_trunk_is_bit_identical(root, tmp_path, trunk):
    _, _, taken = run_spied(tmp_path, "model=transfer", "model.backbone=random", f"model.trunk={trunk}",
                            "stream=split_cifar10", f"data.root={root}", "stream.n_tasks=3", *SMALL)
    trunk_state = {k: v for k, v in taken[2].items() if k.startswith("trunk.")}
    assert any("running_mean" in k for k in trunk_state) == (trunk == "resnet18")  # batch norm statistics too
    assert all(torch.equal(v, taken[0][k]) for k, v in trunk_state.items())
    assert not torch.equal(taken[2]["heads.layers.1.weight"], taken[0]["heads.layers.1.weight"])


def test_sparse_protects_the_fully_connected_units_of_a_conv_trunk(root, tmp_path):
    _, _, taken = run_spied(tmp_path, "model=sparse", "model.trunk=cnn", "model.k=0.25",
                            "model.protect_threshold=0.3", "stream=split_cifar10", f"data.root={root}",
                            "stream.n_tasks=3", *SMALL, "trainer.epochs=2")
    mine = taken[0]["owner_0"] == 0
    assert mine.any() and (taken[2]["owner_0"] >= 0).sum() >= mine.sum()
    assert torch.equal(taken[2]["trunk.1.weight"][mine], taken[0]["trunk.1.weight"][mine])
    assert not torch.equal(taken[2]["trunk.0.net.0.weight"], taken[0]["trunk.0.net.0.weight"])  # the conv body learns


def test_the_torchvision_backbone_reads_features_computed_once(root, tmp_path):
    record = run_in_process(tmp_path, "model=transfer", "model.backbone=torchvision", "model.backbone_size=32",
                            "stream=split_cifar10", f"data.root={root}", "stream.n_tasks=2", "trainer.batch_size=16")
    assert record.status == "finished"
    s = stream(root)
    module = torch.nn.Linear(3072, 5)
    before = s.tasks[1].train.gather(torch.tensor([3, 0, 7]))[0]
    assert map_inputs(s, module, chunk=64)
    after = s.tasks[1].train.gather(torch.tensor([3, 0, 7]))[0]
    torch.testing.assert_close(after, module(before).detach())
    assert s.tasks[1].train.pool.x.shape == (200, 5)
    assert not map_inputs(stream(root, augment="crop_flip"), module, chunk=64)  # augmented batches: per batch


def test_without_torchvision_the_stream_is_refused_in_one_line(root, tmp_path, monkeypatch):
    cifar._decode.cache_clear()
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ConfigError) as caught:
        run_in_process(tmp_path, "stream=split_cifar10", f"data.root={root}")
    assert "\n" not in str(caught.value) and "needs torchvision, which is not installed" in str(caught.value)
