"""iCaRL's class means: as the paper (the exemplars' normalised features) by default, and with `strategy.flip_means`
as srebuffi/iCaRL's Theano code (also their left-to-right mirror images), checked against numpy by hand; the refusal
of the flip for a stream that has no images."""

import numpy as np
import torch
from conftest import fake_dataset, refusal, run_in_process

from clrelu.models.mlp import MLP
from clrelu.strategies.icarl import ICaRL
from clrelu.streams.base import HeadLayout, Split

SHAPE = (2, 2, 3)  # channels, height, width: not square, so a flip of the wrong axis shows
TINY = ["model.hidden=[16]", "stream.n_tasks=2", "trainer.batch_size=16", "diagnostics.enabled=false",
        "plasticity.enabled=false", "threads=1", "strategy=icarl", "stream.scenario=class"]


def numpy_features(model: MLP, x: np.ndarray) -> np.ndarray:
    """The trunk of a one-hidden-layer ReLU MLP, in numpy: relu(x W^T + b)."""
    linear = model.trunk[0]
    w, b = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
    return np.maximum(x @ w.T + b, 0)


def numpy_mirror(x: np.ndarray, shape) -> np.ndarray:
    """Each flat image flipped left to right, pixel by pixel: column j of every row and channel from column w-1-j."""
    c, h, w = shape
    out = np.empty_like(x)
    for n in range(len(x)):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    out[n, ch * h * w + i * w + j] = x[n, ch * h * w + i * w + (w - 1 - j)]
    return out


def unit(v: np.ndarray, axis=-1) -> np.ndarray:
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


def hand_case(flip_means: bool):
    """Two classes of 4 random images of SHAPE, every one an exemplar; the strategy after that task, and the
    exemplars (inputs, labels) as numpy."""
    torch.manual_seed(0)
    layout = HeadLayout("class", n_tasks=1, classes_per_task=2)
    model = MLP(int(np.prod(SHAPE)), layout, hidden=[5])
    model.begin_task(0)
    icarl = ICaRL(layout, memory_size=8, flip_means=flip_means, image_shape=SHAPE)
    icarl.before_task(model, 0)
    x = torch.rand(8, int(np.prod(SHAPE)))
    icarl.after_task(model, 0, Split.of(x, torch.arange(8) % 2))
    x, y, _ = icarl.memory.gather(torch.arange(len(icarl.memory)))
    return icarl, model, x.double().numpy(), y.numpy()


def test_flip_means_averages_the_exemplars_and_their_mirror_images_as_their_code():
    icarl, model, x, y = hand_case(flip_means=True)
    assert sorted(y.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    for c in (0, 1):
        d = unit(numpy_features(model, x[y == c]))  # each exemplar's features normalised (their D)
        d2 = unit(numpy_features(model, numpy_mirror(x[y == c], SHAPE)))  # and its mirror image's (their D2)
        expected = unit((d.mean(0) + d2.mean(0)) / 2)  # (D alph + D2 alph) / 2, normalised
        np.testing.assert_allclose(icarl.means[c].double().numpy(), expected, rtol=1e-5, atol=1e-6)
        unflipped = unit(d.mean(0))
        assert np.abs(expected - unflipped).max() > 1e-3  # the case tells the two apart


def test_without_flip_means_the_class_mean_is_the_exemplars_alone():
    icarl, model, x, y = hand_case(flip_means=False)
    for c in (0, 1):
        expected = unit(unit(numpy_features(model, x[y == c])).mean(0))
        np.testing.assert_allclose(icarl.means[c].double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_flip_means_is_refused_in_one_line_for_a_stream_without_images(tmp_path):
    line, code = refusal(tmp_path / "run", "stream=synthetic", "stream.train_per_class=20", *TINY, "strategy.flip_means=true")
    assert line == ("strategy.flip_means=true: this stream's inputs are not images (it has no image shape), so they "
                    "have no mirror image; use strategy.flip_means=false")
    assert code == 2


def test_flip_means_runs_on_an_image_stream(tmp_path):
    fake_dataset(tmp_path / "data", n_train=200, n_test=100, side=6)
    record = run_in_process(tmp_path / "run", "stream=split_mnist", f"data.root={tmp_path / 'data'}", *TINY,
                            "strategy.flip_means=true", "strategy.memory_size=20")
    assert record.status == "finished"
