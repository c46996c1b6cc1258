"""MAS: the importance of every parameter on a hand-sized network against gradients written out in numpy, its
accumulation over tasks, and its penalty."""

import numpy as np
import pytest
import torch

from clrelu.models.mlp import MLP
from clrelu.strategies.mas import MAS, _one_sample_any, output_importance
from clrelu.streams.base import HeadLayout, Split

W = np.array([[1.0, -1.0], [0.5, 2.0]])
B = np.array([0.5, -0.4])  # pre-activations: each sample has a unit off, none exactly 0
V = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7], [2.0, 1.0]])
C = np.array([0.1, -0.2, 0.4, 0.3])
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -2.0]])


def network(layout: HeadLayout) -> MLP:
    """f(x) = V relu(W x + b) + c, the rows of V and c the head's units (the first two in the domain scenario)."""
    model = MLP(2, layout, hidden=[2])
    width = layout.head_width
    with torch.no_grad():
        model.trunk[0].weight.copy_(torch.tensor(W))
        model.trunk[0].bias.copy_(torch.tensor(B))
        model.heads.layers[0].weight.copy_(torch.tensor(V[:width]))
        model.heads.layers[0].bias.copy_(torch.tensor(C[:width]))
    return model


def gradients(x: np.ndarray, units: int) -> dict[str, np.ndarray]:
    """d ||f(x)||^2 / d theta for one sample, f over the first `units` outputs, by the chain rule by hand."""
    z = W @ x + B
    h = np.maximum(z, 0)
    f = V[:units] @ h + C[:units]
    df = 2 * f
    dz = (V[:units].T @ df) * (z > 0)
    return {"trunk.0.weight": np.outer(dz, x), "trunk.0.bias": dz,
            "heads.layers.0.weight": np.outer(df, h), "heads.layers.0.bias": df}


def expected_omega(batch_size: int, units: int, width: int) -> dict[str, np.ndarray]:
    """(1/N) sum over batches of |sum of the batch's gradients| (their MAS_Omega_update, dividing by N)."""
    total = None
    for start in range(0, len(X), batch_size):
        grads = [gradients(x, units) for x in X[start:start + batch_size]]
        batch = {name: sum(g[name] for g in grads) for name in grads[0]}
        total = {name: np.abs(g) if total is None else total[name] + np.abs(g) for name, g in batch.items()}
    omega = {name: value / len(X) for name, value in total.items()}
    for name in ("heads.layers.0.weight", "heads.layers.0.bias"):  # the units the head cannot answer: no gradient
        omega[name] = np.concatenate([omega[name], np.zeros((width - units, *omega[name].shape[1:]))])
    return omega


def data(y=(0, 1, 0)) -> Split:
    return Split.of(torch.tensor(X, dtype=torch.float32), torch.tensor(y))


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_importance_is_the_mean_absolute_gradient_of_the_squared_output_norm(batch_size):
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    omega = output_importance(network(layout), data(), 0, batch_size)
    for name, value in expected_omega(batch_size, 2, 2).items():
        np.testing.assert_allclose(omega[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_importance_reads_only_the_units_of_the_classes_seen_so_far():
    layout = HeadLayout("class", n_tasks=2, classes_per_task=2)  # four units; task 0's two are active
    model = network(layout)
    model.begin_task(0)
    omega = output_importance(model, data(), 0, 1)
    for name, value in expected_omega(1, 2, 4).items():
        np.testing.assert_allclose(omega[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)
    model.begin_task(1)  # all four units active now
    omega = output_importance(model, data(), 1, 2)
    for name, value in expected_omega(2, 4, 4).items():
        np.testing.assert_allclose(omega[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_importance_needs_no_labels_and_every_path_agrees():
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    model = network(layout)
    fast = output_importance(model, data((0, 1, 0)), 0, 1)
    relabelled = output_importance(model, data((1, 1, 1)), 0, 1)
    any_model = {name: s / len(X) for name, s in _one_sample_any(model, dict(model.named_parameters()), data(),
                                                                   0).items()}
    for name in fast:
        assert torch.equal(fast[name], relabelled[name]), name
        torch.testing.assert_close(fast[name], any_model[name], rtol=1e-5, atol=1e-6)
    assert model.training  # evaluation mode only while it measures


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_omega_accumulates_over_tasks_and_the_penalty_is_lambda_omega_squared_distance(alpha):
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    model = network(layout)
    mas = MAS(layout, mas_lambda=3.0, alpha=alpha, max_curvature=None)
    x = torch.zeros(1, 2)
    assert mas.penalty(model, x, 0) is None  # nothing to protect during the first task
    first = output_importance(model, data(), 0, 1)
    mas.after_task(model, 0, data())
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        model.trunk[0].weight.add_(0.5)
    second = output_importance(model, data(), 1, 1)
    mas.after_task(model, 1, data())
    for name in first:
        merged = first[name] + second[name] if alpha is None else alpha * first[name] + (1 - alpha) * second[name]
        torch.testing.assert_close(mas.omega[name], merged)
        assert torch.equal(mas.anchor[name], dict(model.named_parameters())[name].detach())
    assert not torch.equal(mas.anchor["trunk.0.weight"], anchor["trunk.0.weight"])  # the latest task's parameters
    with torch.no_grad():
        model.heads.layers[0].bias.add_(torch.tensor([1.0, -2.0]))
    expected = 3.0 * (mas.omega["heads.layers.0.bias"] * torch.tensor([1.0, 4.0])).sum()
    torch.testing.assert_close(mas.penalty(model, x, 1), expected)
