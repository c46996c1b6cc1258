"""The convolutional trunks: the small conv net, GEM's reduced ResNet-18, and how every model takes them."""

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from clrelu.errors import ConfigError
from clrelu.measure.diagnostics import ActivationMonitor
from clrelu.models.conv import BasicBlock, ReducedResNet18, SmallCNN
from clrelu.models.layers import TrunkSpec, hidden_outputs, linear_layers
from clrelu.models.mlp import MLP
from clrelu.models.multitask import HardSharedMultitask
from clrelu.models.pnn import ProgressiveNet
from clrelu.models.sparse import SparsePerceptron
from clrelu.models.transfer import TransferHead
from clrelu.streams.base import HeadLayout

LAYOUT = HeadLayout("task", n_tasks=2, classes_per_task=2)
MODELS = [MLP, SparsePerceptron, TransferHead, HardSharedMultitask, ProgressiveNet]


def spec(trunk, image_shape=(3, 32, 32), hidden=(16,), channels=(8, 16), activation="relu", **kw):
    return TrunkSpec.checked(int(torch.tensor(image_shape).prod()), hidden, activation, trunk=trunk,
                             channels=channels, image_shape=image_shape, **kw)


def test_cnn_is_conv_activation_pool_blocks_then_the_hidden_layers():
    trunk = spec("cnn", channels=(32, 64)).build()
    body = trunk[0]
    assert isinstance(body, SmallCNN) and body.out_features == 64 * 8 * 8
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    assert sum(isinstance(m, nn.MaxPool2d) for m in body.modules()) == 2
    assert [type(m) for m in trunk[1:]] == [nn.Linear, nn.ReLU] and trunk[1].in_features == 4096
    assert list(body.hidden_layers()) == ["net.1", "net.4"]  # one activation per block
    x = torch.randn(5, 3 * 32 * 32)
    assert trunk(x).shape == (5, 16)


def test_cnn_on_grey_28x28_images():
    body = spec("cnn", image_shape=(1, 28, 28), channels=(32, 64)).build()[0]
    assert body.out_features == 64 * 7 * 7 and body(torch.randn(2, 784)).shape == (2, 64 * 7 * 7)


def test_reduced_resnet18_is_gems():
    body = spec("resnet18", hidden=()).build()[0]
    assert isinstance(body, ReducedResNet18) and body.out_features == 160
    stem = body.net[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.bias) == (3, 20, (3, 3), (1, 1),
                                                                                                None)
    stages = [body.net[i] for i in range(3, 7)]
    assert [len(stage) for stage in stages] == [2, 2, 2, 2]
    assert [stage[0].conv1.out_channels for stage in stages] == [20, 40, 80, 160]
    assert [stage[0].conv1.stride for stage in stages] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert [len(stage[0].shortcut) for stage in stages] == [0, 2, 2, 2]  # 1x1 projections where the shape changes
    assert all(isinstance(m, BasicBlock) for stage in stages for m in stage)
    assert len(body.hidden_layers()) == 1 + 8 * 2  # the stem's activation and two per block
    # GEM pools the 4x4 maps of a 32x32 image with avg_pool2d(out, 4): the global average pool
    body.eval()
    x = torch.randn(3, 3 * 32 * 32)
    maps = nn.Sequential(*list(body.net)[:7])(x.view(3, 3, 32, 32))
    assert maps.shape[-2:] == (4, 4)
    torch.testing.assert_close(body(x), F.avg_pool2d(maps, 4).flatten(1))


def test_every_model_runs_on_every_conv_trunk():
    x = torch.randn(6, 3 * 32 * 32)
    for trunk in ("cnn", "resnet18"):
        for model_class in MODELS:
            torch.manual_seed(0)
            model = model_class(3 * 32 * 32, LAYOUT, hidden=[16], trunk=trunk, channels=[4, 8], image_shape=(3, 32, 32))
            model.begin_task(0)
            model.train()
            loss, _ = model.loss_and_logits(x, torch.tensor([0, 1, 0, 1, 0, 1]), 0)
            loss.backward()
            assert torch.isfinite(loss), (trunk, model_class.__name__)
            assert model(x, 0).shape == (6, 2)


def test_sparse_applies_k_winners_and_protection_to_the_fully_connected_layers_only():
    torch.manual_seed(0)
    model = SparsePerceptron(3 * 32 * 32, LAYOUT, hidden=[40, 20], k=0.1, trunk="cnn", channels=[4, 8],
                             image_shape=(3, 32, 32))
    assert [layer.out_features for layer in model.layers] == [40, 20]  # the protected layers: no conv among them
    assert model.layers == linear_layers(model.trunk)
    first, second = hidden_outputs(model.trunk, torch.randn(16, 3 * 32 * 32))
    assert ((first != 0).sum(1) == 4).all() and ((second != 0).sum(1) == 2).all()


def test_crelu_doubles_the_channels_the_next_conv_reads():
    trunk = spec("cnn", channels=(4, 8), activation="crelu").build()
    convs = [m for m in trunk[0].modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 4), (8, 8)]
    assert trunk[0].out_features == 16 * 8 * 8 and trunk[1].in_features == 16 * 8 * 8
    assert trunk(torch.randn(2, 3 * 32 * 32)).shape == (2, 32)  # 16 units, two outputs each
    with pytest.raises(ConfigError, match="model.activation=crelu: doubles the channels, which the residual sums"):
        spec("resnet18", activation="crelu")


def test_a_conv_trunk_needs_images():
    with pytest.raises(ConfigError, match="model.trunk=cnn: needs a stream of images"):
        MLP(32, LAYOUT, trunk="cnn", image_shape=None)
    with pytest.raises(ConfigError, match="model.trunk=vgg: unknown choice; valid choices are mlp, cnn, resnet18"):
        MLP(32, LAYOUT, trunk="vgg", image_shape=(2, 4, 4))
    with pytest.raises(ConfigError, match="model.channels=.8, 8, 8, 8.: 4 pooling blocks shrink a 8x8 image"):
        MLP(3 * 8 * 8, LAYOUT, trunk="cnn", channels=[8, 8, 8, 8], image_shape=(3, 8, 8))


def test_the_mlp_trunk_is_unchanged():
    torch.manual_seed(0)
    trunk = spec("mlp", image_shape=(1, 4, 4), hidden=(8,)).build()
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
    assert [type(m) for m in trunk] == [type(m) for m in plain]
    assert all(torch.equal(a, b) for a, b in zip(trunk.state_dict().values(), plain.state_dict().values()))


def test_the_spec_round_trips_through_a_checkpoint_dict():
    for trunk in ("mlp", "cnn", "resnet18"):
        original = spec(trunk)
        assert TrunkSpec.from_dict(original.as_dict()) == original
    old = {"in_features": 784, "hidden": [400], "activation": "relu", "k": 1.0}  # a model.pt from before conv trunks
    assert TrunkSpec.from_dict(old) == TrunkSpec(784, (400,), "relu", 1.0)


def test_frozen_batch_norm_statistics_do_not_move():
    torch.manual_seed(0)
    model = TransferHead(3 * 32 * 32, LAYOUT, backbone="random", hidden=[16], trunk="resnet18",
                         image_shape=(3, 32, 32))
    before = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    model.begin_task(0)
    model.train()
    model.loss_and_logits(torch.randn(8, 3 * 32 * 32), torch.zeros(8, dtype=torch.long), 0)[0].backward()
    assert all(torch.equal(v, model.trunk.state_dict()[k]) for k, v in before.items())


class MapsOnly(MLP):
    """A model whose one hidden layer is an identity fed hand-built conv maps."""

    def __init__(self):
        super().__init__(4, LAYOUT, hidden=[2])
        self.maps = nn.Identity()

    def hidden_layers(self):
        return {"maps": self.maps}

    def hidden_nonnegative(self):
        return False


def test_diagnostics_count_conv_channels_over_positions_and_samples():
    model = MapsOnly()
    monitor = ActivationMonitor(model, zero_tolerance=0.0, unit_threshold=0.05)
    task_0 = torch.zeros(2, 2, 2, 2)  # two samples, two channels, 2 x 2 positions
    task_0[0, 0, 0, 0] = 1.0  # channel 0: one nonzero output of eight; channel 1: zero everywhere
    task_1 = torch.zeros(1, 2, 2, 2)
    task_1[0, 0] = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # four nonzero outputs, three positive
    task_1[0, 1, 0, 1] = 2.0
    monitor.begin_pass()
    for task, maps in enumerate((task_0, task_1)):
        monitor.begin_task(task)
        model.maps(maps)
        monitor.end_task(len(maps))
    monitor.end_pass()
    rows = pd.DataFrame(monitor.activations).set_index("eval_task")
    assert rows.n_units.tolist() == [2, 2]  # the channels
    assert rows.sparsity.tolist() == pytest.approx([1 - 1 / 16, 1 - 5 / 8])
    assert rows.nonpositive_fraction.tolist() == pytest.approx([1 - 1 / 16, 1 - 4 / 8])
    assert rows.dead_fraction.tolist() == pytest.approx([1 / 2, 0])  # channel 1 is zero everywhere in task 0
    # task-active channels (nonzero on >= 5% of (sample, position) pairs): {0} and {0, 1}
    assert monitor.overlap == [{"layer": "maps", "task_a": 0, "task_b": 1, "jaccard": 0.5}]


def test_conv_layers_are_hidden_layers_of_every_model():
    for model_class in MODELS:
        model = model_class(3 * 32 * 32, LAYOUT, hidden=[16], trunk="cnn", channels=[4, 8], image_shape=(3, 32, 32))
        model.begin_task(0)
        names = list(model.hidden_layers())
        prefix = "columns.0.body" if model_class is ProgressiveNet else "trunk.0"
        assert names[:2] == [f"{prefix}.net.1", f"{prefix}.net.4"], model_class.__name__
        assert len(names) == 3
