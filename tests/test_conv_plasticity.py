"""Plasticity measures of conv layers: a channel is a unit, its statistics taken over positions and samples; and
the refusal of the strategies that re-initialise units (ReDo, CBP) on conv trunks."""

import numpy as np
import pytest
import torch
from test_plasticity import numpy_measures

from clrelu.measure.plasticity import PlasticityProbe, channel_summary
from clrelu.models.conv import ReducedResNet18
from clrelu.models.mlp import MLP
from clrelu.strategies.cbp import ContinualBackprop
from clrelu.strategies.redo import ReDo
from clrelu.streams.base import HeadLayout

LAYOUT = HeadLayout("task", n_tasks=2, classes_per_task=2)
SHAPE = (3, 8, 8)


def sample_position_rows(maps: torch.Tensor) -> torch.Tensor:
    """The (samples * positions) x channels matrix of conv maps, one row per position of each sample."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def test_channel_summary_is_the_matrix_of_sample_position_rows():
    torch.manual_seed(0)
    maps = torch.randn(5, 3, 4, 4).relu()
    maps[:, 2] = 0  # a dead channel
    activity, sigma = channel_summary(maps, chunk=2)  # chunks of two samples: the Gram matrix is summed over them
    assert torch.equal(activity, maps.abs().sum((2, 3)))
    expected = torch.linalg.svdvals(sample_position_rows(maps).double())
    torch.testing.assert_close(sigma, expected, rtol=1e-9, atol=1e-6)
    assert sigma[-1] == 0 and (sigma[:-1] > 0).all()


def cnn(activation="relu"):
    """A cnn trunk (channels 4 and 8 on 3 x 8 x 8 images) whose channel 1 of the first conv layer is dead on
    inputs in [0, 1] (a bias of -1e4)."""
    torch.manual_seed(0)
    model = MLP(192, LAYOUT, hidden=[5], activation=activation, trunk="cnn", channels=[4, 8], image_shape=SHAPE)
    with torch.no_grad():
        model.trunk[0].net[0].bias[1] = -1e4
    return model


def test_the_probe_measures_every_conv_layer_a_channel_a_unit():
    model = cnn()
    x = torch.rand(20, 192)
    rows = PlasticityProbe(model, tau=0.1).measure(x, 0)
    assert [r["layer"] for r in rows] == ["trunk.0.net.1", "trunk.0.net.4", "trunk.2"] == list(model.hidden_layers())
    first = rows[0]
    maps = torch.relu(model.trunk[0].net[0](x.view(20, *SHAPE))).detach().double().numpy()
    activity = np.abs(maps).sum((2, 3))  # per sample and channel, over positions
    rows_of_positions = maps.transpose(0, 2, 3, 1).reshape(-1, maps.shape[1])  # (sample, position) x channel
    expected = numpy_measures(rows_of_positions, activity, tau=0.1, delta=0.01)
    for key in ("dead_fraction", "dormant_fraction", "effective_rank"):
        assert first[key] == pytest.approx(expected[key], rel=1e-6), key
    assert first["srank"] == expected["srank"] <= 3  # three live channels
    assert first["dead_fraction"] == 1 / 4  # one channel of four is zero at every position of every sample
    assert first["weight_magnitude"] == pytest.approx(model.trunk[0].net[0].weight.abs().mean().item())
    assert rows[1]["weight_magnitude"] == pytest.approx(model.trunk[0].net[3].weight.abs().mean().item())


def test_a_crelu_channel_is_dead_only_when_both_of_its_maps_are():
    rows = PlasticityProbe(cnn("crelu")).measure(torch.rand(20, 192), 0)
    assert rows[0]["dead_fraction"] == 0.0  # relu(-x) of the -1e4-biased channel fires everywhere
    assert rows[0]["srank"] <= 8  # four units, eight maps


def test_a_residual_sum_is_measured_with_the_second_convolution_of_its_block():
    body = ReducedResNet18((3, 32, 32), torch.nn.ReLU)
    layers = {layer.name: layer for layer in body.channel_layers("body")}
    assert len(layers) == 17  # the stem and two per basic block
    block = body.net[4][0]  # the first block of the second stage, which has a projection shortcut
    assert layers["body.net.4.0.act1"].incoming is block.conv1
    assert layers["body.net.4.0.act2"].incoming is block.conv2 and layers["body.net.2"].incoming is body.net[0]


@pytest.mark.parametrize("strategy", [ReDo, ContinualBackprop])
def test_unit_reinitialising_strategies_refuse_conv_trunks(strategy):
    problem = strategy(LAYOUT).model_problem(cnn())
    assert "does not re-initialise the channels of a conv trunk; use model.trunk=mlp" in problem
    assert "\n" not in problem
    assert strategy(LAYOUT).model_problem(MLP(192, LAYOUT, hidden=[5])) is None
