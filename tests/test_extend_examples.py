"""The worked examples of docs/extend/ (examples/extend/: a model, a stream and a strategy, each one Python file and
one YAML file) do what their docstrings say, on hand-made cases; tests/test_docs.py runs each through the CLI."""

from pathlib import Path

import numpy as np
import pytest
import torch

from clrelu.streams.base import HeadLayout, Pool, Split

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def examples_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples" / "extend"))


# --8<-- [start:model]
def test_dropout_mlp_is_the_mlp_in_evaluation_and_drops_outputs_in_training():
    from dropout_mlp import DropoutMLP

    from clrelu.models.mlp import MLP

    layout = HeadLayout("task", n_tasks=2, classes_per_task=2)
    torch.manual_seed(0)
    model = DropoutMLP(6, layout, hidden=[5], p=0.5)
    plain = MLP(6, layout, hidden=[5])
    plain.load_state_dict(model.state_dict())
    for net in (model, plain):
        net.begin_task(0)
    x = torch.randn(8, 6)
    model.eval(), plain.eval()
    assert torch.equal(model(x, 0), plain(x, 0))  # evaluation: no dropout at all

    model.train()
    torch.manual_seed(1)
    hidden = model.trunk(x)  # the hook drops (and rescales) the hidden outputs themselves
    kept = plain.trunk(x)
    zeroed = (hidden == 0) & (kept != 0)
    assert zeroed.any() and torch.allclose(hidden[~zeroed & (kept != 0)], 2 * kept[~zeroed & (kept != 0)])

    model.p = 0.999999  # nearly every output dropped: what is left is the head's bias
    head = model.heads.layers[0]
    assert torch.allclose(model(x, 0), head.bias.expand(8, -1), atol=1e-3)
# --8<-- [end:model]


def test_dropout_mlp_refuses_a_rate_of_one():
    from dropout_mlp import DropoutMLP

    from clrelu.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.p=1"):
        DropoutMLP(6, HeadLayout("task", n_tasks=2, classes_per_task=2), p=1)


# --8<-- [start:stream]
def test_label_permuted_tasks_relabel_the_same_images(monkeypatch):
    import label_permuted
    from label_permuted import label_permuted_stream

    from clrelu.data.datasets import ImageData

    images = torch.arange(4 * 3, dtype=torch.uint8).reshape(4, 3)  # four images of three pixels, classes 0-3
    labels = torch.tensor([0, 1, 2, 3])
    data = ImageData(images, labels, images.clone(), labels.clone(), ["a", "b", "c", "d"], (1, 1, 3))
    monkeypatch.setattr(label_permuted, "load_dataset", lambda name, root: data)
    stream = label_permuted_stream("toy", "unused", "domain", n_tasks=3, seed=7)

    generator = torch.Generator().manual_seed(7)  # the draws the docstring names, in its order
    for task in stream.tasks:
        order = torch.randperm(4, generator=generator)
        x, y = task.train.gather(torch.arange(4))
        assert torch.equal(x, images.float() / 255)  # the same pixels in every task
        assert y.tolist() == order.tolist()  # image of class c has label order[c]
        assert [task.classes[k] for k in y.tolist()] == ["a", "b", "c", "d"]
    assert len({tuple(t.train.gather(torch.arange(4))[1].tolist()) for t in stream.tasks}) > 1
    assert stream.tasks[0].train.pool is stream.tasks[2].train.pool  # one copy of the data for every task
# --8<-- [end:stream]


# --8<-- [start:strategy]
def test_l2_previous_pulls_toward_the_weights_the_last_task_ended_with():
    from l2_previous import L2Previous

    layout = HeadLayout("task", n_tasks=2, classes_per_task=2)
    model = torch.nn.Linear(3, 2)
    strategy = L2Previous(layout, l2_lambda=0.5)
    x = torch.zeros(1, 3)
    assert strategy.penalty(model, x, 0) is None  # nothing to keep during the first task

    strategy.after_task(model, 0, Split(Pool(x, torch.zeros(1, dtype=torch.long)), torch.arange(2)))
    before = [p.detach().numpy().copy() for p in model.parameters()]
    with torch.no_grad():
        model.weight += 1.0
        model.bias -= 2.0
    after = [p.detach().numpy() for p in model.parameters()]
    expected = 0.5 * sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before))  # 0.5 * (6 * 1 + 2 * 4)
    assert expected == pytest.approx(7.0)
    assert strategy.penalty(model, x, 1).item() == pytest.approx(expected)

    model.bias.requires_grad_(False)  # only what learns is pulled back
    assert strategy.penalty(model, x, 1).item() == pytest.approx(3.0)
# --8<-- [end:strategy]
