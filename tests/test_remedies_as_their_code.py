"""The plasticity remedies as their reference code runs them: cbp's AdamGnT steps and adaptable utility,
shrink-and-perturb before the first task with a fresh optimizer, and the plasticity probe before end-of-task actions."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_in_process
from torch.nn import functional as F

from clrelu.models.mlp import MLP
from clrelu.strategies.adam_gnt import AdamGnT
from clrelu.strategies.cbp import ContinualBackprop
from clrelu.strategies.shrink_perturb import ShrinkPerturb, fresh_parameters
from clrelu.streams.base import HeadLayout

DOMAIN = HeadLayout("domain", n_tasks=2, classes_per_task=3)
FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "trainer.batch_size=16", "optimizer=adam", "stream.n_tasks=3", "threads=1"]


def their_adamgnt(theta, grads, resets, lr, betas, eps, weight_decay, variant):
    """lop/utils/AdamGnT.py step by step in float64, with generate-and-test's resets (update_optim_params: the
    moments and the step of the entries in resets[k] zeroed before step k)."""
    beta1, beta2 = betas
    theta = theta.astype(np.float64).copy()
    m, v, step = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for k, g in enumerate(grads):
        for index in resets.get(k, []):
            m[index] = v[index] = step[index] = 0
        step += 1
        g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        denom = np.sqrt(v) + eps
        if variant == "gnt":
            bias_correction = 1 - beta2 ** step  # their bias_correction.sqrt().div_(...) result is dropped
            theta = theta - lr * bias_correction / (denom / m)
        else:
            theta = theta - lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step) * m / denom
    return theta


@pytest.mark.parametrize("variant", ["gnt", "adam"])
def test_adamgnt_steps_as_their_code_with_a_step_count_per_element(variant):
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(6)]
    resets = {3: [(1, slice(None))], 5: [(slice(None), 2)]}  # a replaced unit's row, then a column
    param = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float32))
    optimizer = AdamGnT([param], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, bias_correction=variant)
    for k, g in enumerate(grads):
        for index in resets.get(k, []):
            for value in optimizer.state[param].values():
                value[index] = 0
        param.grad = torch.tensor(g, dtype=torch.float32)
        optimizer.step()
    expected = their_adamgnt(theta0, grads, resets, 0.01, (0.9, 0.999), 1e-8, 0.1, variant)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    steps = optimizer.state[param]["step"]
    assert steps[0].tolist() == [6.0, 6.0, 1.0, 6.0] and steps[1].tolist() == [3.0, 3.0, 1.0, 3.0]


def test_adamgnt_first_step_on_hand_numbers():
    param = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    for variant, scale in (("gnt", 0.001), ("adam", 0.001 ** 0.5 / 0.1)):
        p = torch.nn.Parameter(param.detach().clone())
        p.grad = torch.tensor([2.0, -0.5])
        AdamGnT([p], lr=0.1, bias_correction=variant).step()
        # m = 0.1 g, sqrt(v) = sqrt(0.001) |g|: the step is lr * scale * 0.1 g / (sqrt(0.001) |g|)
        expected = 1.0 - 0.1 * scale * 0.1 * np.sign([2.0, -0.5]) / 0.001 ** 0.5
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-5)


def test_cbp_trains_adam_as_adamgnt_and_restarts_a_replaced_units_steps():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[6])
    cbp = ContinualBackprop(DOMAIN, replacement_rate=1 / 6, maturity_threshold=0)
    assert isinstance(ContinualBackprop(DOMAIN, adam_variant="torch").adapt_optimizer(
        torch.optim.Adam(model.parameters())), torch.optim.Adam)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    assert cbp.adapt_optimizer(sgd) is sgd
    optimizer = cbp.adapt_optimizer(torch.optim.Adam(model.parameters(), lr=0.01))
    assert isinstance(optimizer, AdamGnT) and optimizer.param_groups[0]["lr"] == 0.01
    cbp.before_task(model, 0)
    cbp.use_optimizer(optimizer)
    x, y = torch.rand(16, 4) + 0.1, torch.randint(0, 3, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x, 0), y).backward()
        optimizer.step()
    cbp.after_step(model)  # 6 mature units x 1/6: one replacement
    unit = int(cbp.age[0].eq(0).nonzero())
    steps = optimizer.state[model.trunk[0].weight]["step"]
    assert steps[unit].eq(0).all() and steps[torch.arange(6) != unit].eq(2).all()
    assert optimizer.state[model.heads.layers[0].weight]["step"][:, unit].eq(0).all()
    fresh_row = model.trunk[0].weight[unit].detach().clone()
    optimizer.zero_grad()
    F.cross_entropy(model(x, 0), y).backward()
    g = model.trunk[0].weight.grad[unit].clone()
    optimizer.step()
    # the replaced unit's first step is a fresh element's first step: lr (1 - beta2) m / (sqrt(v) + eps)
    m, root_v = 0.1 * g, (0.001 * g * g).sqrt()
    torch.testing.assert_close(model.trunk[0].weight[unit].detach(), fresh_row - 0.01 * 0.001 * m / (root_v + 1e-8))


def test_adaptable_contribution_as_their_update_utility():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[5])
    cbp = ContinualBackprop(DOMAIN, decay=0.9, maturity_threshold=1000, utility="adaptable_contribution")
    cbp.before_task(model, 0)
    outputs = []
    for _ in range(3):
        x = torch.randn(8, 4)
        outputs.append(torch.relu(model.trunk[0](x)).detach().numpy().astype(np.float64))
        model(x, 0)
        cbp.after_step(model)
    incoming = model.trunk[0].weight.detach().abs().mean(1).numpy()
    outgoing = model.heads.layers[0].weight.detach().abs().mean(0).numpy()
    f, u = np.zeros(5), np.zeros(5)
    for age, h in enumerate(outputs, start=1):  # gnt.py update_utility, util_type adaptable_contribution
        f = 0.9 * f + 0.1 * h.mean(0)
        corrected = f / (1 - 0.9 ** age)
        u = 0.9 * u + 0.1 * np.abs(h - corrected).mean(0) * outgoing / incoming
    np.testing.assert_allclose(cbp.utility[0].numpy(), u, rtol=1e-5)
    np.testing.assert_allclose(cbp.mean_output[0].numpy(), f, rtol=1e-5)
    ranked = cbp.utility[0] / (1 - 0.9 ** cbp.age[0].double()).float()  # their bias-corrected ranking: the default
    np.testing.assert_allclose(ranked.numpy(), u / (1 - 0.9 ** 3), rtol=1e-5)


def test_shrink_and_perturb_shrinks_before_the_first_task_too():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[5])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    state = torch.get_rng_state()
    ShrinkPerturb(DOMAIN).before_task(model, 0)
    torch.set_rng_state(state)
    fresh = fresh_parameters(model)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), 0.4 * before[name] + 0.1 * fresh[name], rtol=0, atol=1e-7)


@pytest.mark.parametrize("fresh", [True, False])
def test_shrink_and_perturb_starts_a_new_optimizer_each_task(fresh):
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[5])
    strategy = ShrinkPerturb(DOMAIN, fresh_optimizer=fresh)
    optimizer = torch.optim.Adam(model.parameters())
    strategy.before_task(model, 0)
    strategy.use_optimizer(optimizer)
    F.cross_entropy(model(torch.rand(8, 4), 0), torch.zeros(8, dtype=torch.long)).backward()
    optimizer.step()
    assert len(optimizer.state) == len(list(model.parameters()))
    strategy.before_task(model, 1)  # one optimizer for the stream (trainer.reset_optimizer=false)
    assert len(optimizer.state) == (0 if fresh else len(list(model.parameters())))


def test_a_stream_long_adam_restarts_at_every_shrink(tmp_path, monkeypatch):
    steps = []
    original = ShrinkPerturb.before_task

    def spy(self, model, task_id):
        original(self, model, task_id)
        if self.optimizer is not None:
            steps.append(len(self.optimizer.state))
    monkeypatch.setattr(ShrinkPerturb, "before_task", spy)
    run_in_process(tmp_path / "run", *FAST, "strategy=shrink_perturb", "trainer.reset_optimizer=false")
    assert steps == [0, 0]  # tasks 1 and 2 begin with an empty Adam


def test_the_probe_sees_the_network_before_the_strategys_end_of_task_action(tmp_path):
    naive = run_in_process(tmp_path / "naive", *FAST, "stream.n_tasks=2")
    redo = run_in_process(tmp_path / "redo", *FAST, "stream.n_tasks=2", "strategy=redo", "strategy.period=task",
                          "strategy.tau=0.5")
    stats = pd.read_csv(tmp_path / "redo" / "model_stats.csv")
    assert stats.recycled_l0[0] > 0  # ReDo recycled units at the end of task 0 ...
    probed = [pd.read_csv(tmp_path / name / "plasticity.csv") for name in ("naive", "redo")]
    # ... and the probe of task 0 saw the network training left, identical to naive's (same training so far)
    pd.testing.assert_frame_equal(probed[0][probed[0].task == 0], probed[1][probed[1].task == 0])
    assert naive.status == redo.status == "finished"


def test_the_plasticity_experiment_runs_cbp_with_their_permuted_mnist_choices():
    from omegaconf import OmegaConf

    from clrelu.config import compose
    from clrelu.training.experiment import factory

    cfg, _ = compose(["experiment=plasticity_permuted", "strategy=cbp"])
    factory("strategy", cfg.strategy)  # every key is one the strategy takes
    chosen = OmegaConf.to_container(cfg.strategy)
    assert chosen["utility"] == "adaptable_contribution" and chosen["bias_correction"] is True
    assert (chosen["replacement_rate"], chosen["decay"], chosen["maturity_threshold"]) == (1e-4, 0.99, 100)
    assert chosen["adam_variant"] == "gnt" and cfg.optimizer._target_ == "torch.optim.Adam"
    assert OmegaConf.to_container(compose(["strategy=cbp"])[0].strategy)["utility"] == "contribution"
