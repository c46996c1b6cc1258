"""Strategies: EWC's Fisher and penalty, online EWC, SI's path integral, LwF, the replay memory, and resume."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

import clrelu.trainer
from clrelu.models.mlp import MLP
from clrelu.strategies.ewc import EWC, fisher_diagonal
from clrelu.strategies.lwf import LwF
from clrelu.strategies.replay import Replay
from clrelu.strategies.si import SI
from clrelu.streams.base import HeadLayout
from conftest import needs_fmnist, run_cli, run_in_process

TASK2 = HeadLayout("task", n_tasks=2, classes_per_task=2)
CLASS3 = HeadLayout("class", n_tasks=3, classes_per_task=2)
FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "trainer.batch_size=16"]


def manual_fisher(model, x, y, task):
    """Mean over samples of the squared gradient of log p(y|x), one backward pass per sample."""
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        torch.log_softmax(model(x[i:i + 1], task), 1)[0, y[i]].backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] += p.grad.pow(2)
    return {name: t / len(x) for name, t in total.items()}


@pytest.mark.parametrize("activation", ["relu", "prelu"])  # prelu takes the generic per-sample (torch.func) path
def test_fisher_is_the_mean_of_squared_log_likelihood_gradients(activation):
    torch.manual_seed(0)
    model = MLP(6, CLASS3, hidden=[5, 4], activation=activation)
    model.heads.add_task(0), model.heads.add_task(1)
    x, y = torch.rand(40, 6), torch.randint(0, 4, (40,))
    fisher, expected = fisher_diagonal(model, x, y, 1), manual_fisher(model, x, y, 1)
    assert set(fisher) == set(expected)
    for name in fisher:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-4, atol=1e-7)


class Scalar(nn.Module):
    """A model with the parameters a penalty sees, and nothing else."""

    def __init__(self, *values):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(values))


def test_ewc_penalty_is_zero_at_the_anchor_and_follows_the_formula():
    ewc = EWC(TASK2, ewc_lambda=3.0)
    model = Scalar(1.0, 2.0)
    ewc.terms = [({"theta": torch.tensor([0.5, 2.0])}, {"theta": torch.tensor([1.0, 2.0])}),
                 ({"theta": torch.tensor([1.0, 0.1])}, {"theta": torch.tensor([0.0, 1.0])})]
    # lambda/2 * [0.5*(1-1)^2 + 2*(2-2)^2 + 1*(1-0)^2 + 0.1*(2-1)^2] = 1.5 * 1.1
    assert ewc.penalty(model, None, 0).item() == pytest.approx(1.5 * 1.1)
    ewc.terms = ewc.terms[:1]
    assert ewc.penalty(model, None, 0).item() == 0.0


def test_online_ewc_decays_and_merges_into_one_term():
    torch.manual_seed(0)
    model = MLP(6, TASK2, hidden=[5])
    x, y = torch.rand(30, 6), torch.randint(0, 2, (30,))
    ewc = EWC(TASK2, online=True, gamma=0.5)
    ewc.after_task(model, 0, x, y)
    first = {k: v.clone() for k, v in ewc.terms[0][0].items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    ewc.after_task(model, 1, x, y)
    assert len(ewc.terms) == 1
    fisher, anchor = ewc.terms[0]
    second = fisher_diagonal(model, x, y, 1)
    for name in fisher:
        torch.testing.assert_close(fisher[name], 0.5 * first[name] + second[name])
        assert torch.equal(anchor[name], dict(model.named_parameters())[name].detach())
    separate = EWC(TASK2, online=False)
    separate.after_task(model, 0, x, y), separate.after_task(model, 1, x, y)
    assert len(separate.terms) == 2


def test_si_importance_is_the_path_integral_of_a_quadratic():
    # loss = a/2 * theta^2, plain SGD with lr eta from theta0 = 1: theta_k = (1 - eta*a)^k,
    # omega = sum_k -g_k * (theta_k+1 - theta_k) = eta * a^2 * sum_k theta_k^2, Omega = omega / (Delta^2 + eps)
    a, eta, eps, steps = 2.0, 0.1, 0.1, 3
    model = Scalar(1.0)
    si = SI(TASK2, c=1.0, epsilon=eps)
    optimizer = torch.optim.SGD(model.parameters(), lr=eta)
    si.before_task(model, 0)
    for _ in range(steps):
        optimizer.zero_grad()
        (a / 2 * model.theta.pow(2).sum()).backward()
        optimizer.step()
        si.after_step(model)
    path = eta * a ** 2 * sum((1 - eta * a) ** (2 * k) for k in range(steps))
    assert si.path["theta"].item() == pytest.approx(path)
    si.after_task(model, 0, None, None)
    delta = (1 - eta * a) ** steps - 1
    assert si.omega["theta"].item() == pytest.approx(path / (delta ** 2 + eps))
    assert si.penalty(model, None, 0).item() == 0.0  # at the anchor
    with torch.no_grad():
        model.theta.add_(0.5)
    assert si.penalty(model, None, 0).item() == pytest.approx(path / (delta ** 2 + eps) * 0.25)


@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
def test_lwf_distillation_is_zero_when_the_model_has_not_changed(scenario):
    torch.manual_seed(0)
    layout = HeadLayout(scenario, n_tasks=3, classes_per_task=2)
    model = MLP(6, layout, hidden=[5])
    lwf = LwF(layout, alpha=1.0, temperature=2.0)
    for t in range(2):
        model.begin_task(t)
        lwf.before_task(model, t)
    x = torch.rand(16, 6)
    assert lwf.penalty(model, x, 1).item() == 0.0
    with torch.no_grad():
        model.trunk[0].weight.add_(0.3)
    assert lwf.penalty(model, x, 1).item() > 0


def feed(replay, task_sizes, offset=0):
    """Give the replay memory tasks of labelled samples whose input is their own number."""
    for task, size in enumerate(task_sizes):
        x = torch.arange(offset, offset + size, dtype=torch.float).view(-1, 1)
        replay.after_task(None, task, x, torch.arange(size) % 2)
        offset += size


def test_replay_memory_is_bounded_and_class_balanced():
    replay = Replay(CLASS3, memory_size=10, policy="class_balanced")
    feed(replay, [30])
    assert len(replay) == 10
    counts = pd.Series(list(zip(replay.task.tolist(), replay.y.tolist()))).value_counts()
    assert sorted(counts.tolist()) == [5, 5]
    feed(replay, [30, 30], offset=100)  # new samples of task 0 and of a task 1: four (task, label) classes
    assert len(replay) == 10
    counts = pd.Series(list(zip(replay.task.tolist(), replay.y.tolist()))).value_counts()
    assert counts.max() - counts.min() <= 1 and len(counts) == 4


def test_replay_batches_mix_in_the_memory():
    replay = Replay(TASK2, memory_size=6, replay_batch_size=4)
    x, y = torch.zeros(3, 1), torch.zeros(3, dtype=torch.long)
    assert replay.batch(x, y, 1) == (x, y, 1)  # nothing to replay yet
    feed(replay, [10])
    xb, yb, tb = replay.batch(x, y, 1)
    assert len(xb) == len(yb) == len(tb) == 7
    assert tb[:3].tolist() == [1, 1, 1] and tb[3:].tolist() == [0, 0, 0, 0]


def test_reservoir_gives_every_seen_sample_the_same_chance():
    torch.manual_seed(0)
    trials, memory, sizes = 3000, 10, [30, 20]
    counts = torch.zeros(sum(sizes))
    for _ in range(trials):
        replay = Replay(TASK2, memory_size=memory, policy="reservoir")
        feed(replay, sizes)
        assert len(replay) == memory
        counts[replay.x.view(-1).long()] += 1
    expected = trials * memory / sum(sizes)  # 600 for every sample, whichever task it came from
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    # 49 degrees of freedom: the 99.9% quantile of chi-square is 85.4
    assert chi_square < 85.4, chi_square
    assert abs(counts[:30].mean().item() - counts[30:].mean().item()) < 0.05 * expected


def test_pnn_and_the_joint_regime_refuse_strategies(tmp_path):
    done = run_cli("run", "model=pnn", "strategy=ewc", "stream=synthetic", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("clrelu: error: model=pnn cannot use strategy=ewc: its earlier columns are frozen")
    done = run_cli("run", "strategy=lwf", "trainer.regime=joint", "stream=synthetic", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("clrelu: error: strategy=lwf has nothing to protect with trainer.regime=joint")


@pytest.mark.parametrize("strategy", ["ewc", "si", "lwf", "replay"])
def test_a_run_with_a_strategy_resumes_to_the_same_csvs(tmp_path, monkeypatch, strategy):
    args = [*FAST, f"strategy={strategy}", "optimizer=adam", "stream.n_tasks=3"]
    run_in_process(tmp_path / "whole", *args)
    train = clrelu.trainer.Trainer._train

    def crash_on_the_last_task(self, phase):
        if phase.row == 2:
            raise RuntimeError("simulated crash")
        return train(self, phase)

    monkeypatch.setattr(clrelu.trainer.Trainer, "_train", crash_on_the_last_task)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_in_process(tmp_path / "cut", *args)
    monkeypatch.setattr(clrelu.trainer.Trainer, "_train", train)
    run_in_process(tmp_path / "cut", *args, "resume=true")
    for name in ("accuracy.csv", "evals.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


@needs_fmnist
def test_replay_beats_naive_in_the_class_scenario(tmp_path):
    # measured: naive 0.15, replay with 1,000 samples 0.73
    settings = ["stream=split_fmnist", "stream.scenario=class", "trainer.epochs=1"]
    naive = run_in_process(tmp_path / "naive", *settings, "strategy=naive").summary()["avg_accuracy"]
    replay = run_in_process(tmp_path / "replay", *settings, "strategy=replay",
                            "strategy.memory_size=1000").summary()["avg_accuracy"]
    assert replay >= naive + 0.25 and not math.isnan(naive)
