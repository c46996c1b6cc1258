"""The replay and gradient-memory methods (A-GEM, GEM, DER, DER++, ER-ACE, iCaRL, GDumb) and their shared memory: each
method's defining property on a hand-sized case, resume, refusals, and every method in every scenario it declares."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import crash_during_task, fake_dataset, run_in_process
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch.nn import functional as F

from clrelu.config import compose
from clrelu.errors import ConfigError
from clrelu.models.mlp import MLP
from clrelu.strategies import gem as gem_module
from clrelu.strategies.agem import AGEM, agem_projection
from clrelu.strategies.buffer import Buffer, greedy_balanced_picks, herding, reservoir_picks
from clrelu.strategies.der import DER
from clrelu.strategies.derpp import DERpp
from clrelu.strategies.er_ace import ERACE, MASKED, ace_mask
from clrelu.strategies.gdumb import GDumb
from clrelu.strategies.gem import GEM, gem_projection
from clrelu.strategies.icarl import ICaRL
from clrelu.streams.base import HeadLayout, Split, Stream, Task
from clrelu.training.experiment import run_experiment
from clrelu.training.trainer import Trainer, TrainSettings

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ["stream=synthetic", "model.hidden=[16]", "stream.n_tasks=3", "stream.train_per_class=40",
        "stream.test_per_class=20", "trainer.batch_size=16", "diagnostics.enabled=false", "plasticity.enabled=false", "threads=1"]


# --- the replay strategy on the shared memory -------------------------------------------------------------------

# evals.csv of these runs before the replay memory moved to strategies/buffer.py (commit 10a4e3a): accuracy and loss
# of every evaluation, in order, NaN rows left out
BEFORE = {
    "synthetic": ([0.7833333333333333, 0.13333333333333333, 0.6333333333333333, 0.13333333333333333,
                   0.11666666666666667, 0.6666666666666666],
                  [0.5283993085225424, 1.565880584716797, 0.9729007085164388, 1.8988450368245442, 1.882995351155599,
                   1.2524860382080079]),
    "mnist": ([0.5, 0.0, 0.5, 0.0, 0.5, 0.35],
              [0.695291805267334, 1.394991683959961, 1.3625033378601075, 1.8195972442626953, 1.775326919555664,
               1.721751594543457]),
}


@pytest.mark.parametrize("stream", ["synthetic", "mnist"])  # float rows, and uint8 pixels kept as uint8
def test_replay_gives_the_same_results_as_before_the_shared_memory(tmp_path, stream):
    common = ["stream.scenario=class", "stream.n_tasks=3", "model.hidden=[16]", "trainer.batch_size=16",
              "strategy=replay", "strategy.replay_batch_size=8", "diagnostics.enabled=false",
              "plasticity.enabled=false", "threads=1"]
    if stream == "synthetic":
        args = ["stream=synthetic", "stream.noise=3.0", "stream.train_per_class=60", "stream.test_per_class=30",
                "strategy.memory_size=30"]
    else:
        fake_dataset(tmp_path / "data", n_train=600, n_test=200, side=8)
        args = ["stream=split_mnist", f"data.root={tmp_path / 'data'}", "strategy.memory_size=40",
                "strategy.class_budget=5"]
    run_in_process(tmp_path / "run", *common, *args)
    evals = pd.read_csv(tmp_path / "run" / "evals.csv").dropna()
    accuracy, loss = BEFORE[stream]
    assert evals["accuracy"].tolist() == accuracy
    assert evals["loss"].tolist() == pytest.approx(loss, rel=1e-12, abs=0)


def test_the_memory_keeps_uint8_pixels_and_reads_them_as_the_stream_does():
    x = torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8)
    split = Split.of(x, torch.tensor([0, 1]))
    memory = Buffer()
    memory.keep(torch.tensor([1, 0]), lambda idx: {"x": split.gather_stored(idx)[0], "y": split.targets()[idx],
                                                   "task": torch.zeros(len(idx), dtype=torch.long)})
    assert memory["x"].dtype == torch.uint8
    got, y, _ = memory.gather(torch.tensor([0, 1]))
    expected, _ = split.gather(torch.tensor([1, 0]))
    assert torch.equal(got, expected) and y.tolist() == [1, 0]


def algorithm_r(n_old, seen, n_new, capacity, uniforms):
    """Vitter's algorithm R, one sample after another, with the uniform draws given (explicit loop)."""
    slots = list(range(n_old))
    draws = iter(uniforms.tolist())
    for k in range(n_new):
        offered = seen + k + 1
        if len(slots) < capacity:
            slots.append(n_old + k)
        else:
            r = min(int(next(draws) * offered), offered - 1)
            if r < capacity:
                slots[r] = n_old + k
    return slots


@pytest.mark.parametrize("n_old, seen, n_new, capacity", [(0, 0, 30, 10), (4, 4, 20, 10), (10, 57, 40, 10),
                                                          (3, 3, 2, 10)])
def test_reservoir_picks_are_algorithm_r(n_old, seen, n_new, capacity):
    torch.manual_seed(3)
    picks = reservoir_picks(n_old, seen, n_new, capacity)
    torch.manual_seed(3)
    uniforms = torch.rand(max(n_new - (capacity - n_old), 0), dtype=torch.float64)
    assert picks.tolist() == algorithm_r(n_old, seen, n_new, capacity, uniforms)


def test_reservoir_offered_batch_by_batch_gives_every_sample_the_same_chance():
    torch.manual_seed(0)
    trials, capacity, n = 600, 10, 50
    counts = torch.zeros(n)
    for _ in range(trials):
        memory = Buffer()
        for start in range(0, n, 7):  # batches of 7 as DER offers them, the last one shorter
            ids = torch.arange(start, min(start + 7, n))
            memory.reservoir(len(ids), {"x": ids.float()[:, None], "y": ids, "task": ids}, capacity)
        assert len(memory) == capacity and memory.seen == n
        counts[memory["y"]] += 1
    expected = trials * capacity / n
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 85.4, chi_square  # 49 degrees of freedom: the 99.9% quantile of chi-square is 85.4


# --- A-GEM ---------------------------------------------------------------------------------------------------------

def test_agem_projection_on_hand_vectors():
    g, g_ref = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])
    # g.g_ref = -2, g_ref.g_ref = 4: g - (-2/4) g_ref = (1, 0)
    assert agem_projection(g, g_ref).tolist() == [1.0, 0.0]
    kept = torch.tensor([1.0, 1.0])
    assert agem_projection(kept, g_ref) is kept  # no conflict: the gradient stays


def tiny_class_model(seed=0, hidden=4, features=3):
    torch.manual_seed(seed)
    layout = HeadLayout("class", n_tasks=2, classes_per_task=2)
    model = MLP(features, layout, hidden=[hidden])
    model.begin_task(0), model.begin_task(1)
    return layout, model


def test_agem_step_follows_the_projected_gradient_with_a_nonnegative_dot_product():
    layout, model = tiny_class_model()
    agem = AGEM(layout, memory_size=6, sample_size=4)
    torch.manual_seed(1)
    agem.after_task(model, 0, Split.of(torch.randn(20, 3), torch.arange(20) % 2))
    x, y = torch.randn(8, 3), torch.full((8,), 3)
    params = list(model.parameters())
    violated = 0
    for seed in range(6):
        model.zero_grad()
        F.cross_entropy(model(x, 1), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        torch.manual_seed(seed)
        agem.after_backward(model)
        projected = torch.cat([p.grad.reshape(-1) for p in params])
        # the reference gradient, computed again on the same memory sample
        torch.manual_seed(seed)
        mx, my, mt = agem.memory.gather(agem.memory.draw_distinct(4))
        g_ref = torch.cat([t.reshape(-1) for t in torch.autograd.grad(F.cross_entropy(model(mx, mt), my), params)])
        assert torch.dot(projected, g_ref) >= -1e-6
        dot = torch.dot(g, g_ref)
        if dot < 0:
            violated += 1
            expected = g.numpy().astype(np.float64) - (dot.item() / g_ref.pow(2).sum().item()) * g_ref.numpy()
            np.testing.assert_allclose(projected.numpy(), expected, rtol=1e-5, atol=1e-7)
        else:
            assert torch.equal(projected, g)
    assert violated  # the case was meant to conflict


def test_agem_memory_is_a_share_of_each_class_of_each_task():
    layout = HeadLayout("domain", n_tasks=3, classes_per_task=2)
    agem = AGEM(layout, memory_size=5)
    for t in range(2):
        agem.after_task(None, t, Split.of(torch.randn(30, 2), torch.arange(30) % 2))
    counts = pd.Series(list(zip(agem.memory["task"].tolist(), agem.memory["y"].tolist()))).value_counts()
    assert counts.to_dict() == {(0, 0): 3, (0, 1): 2, (1, 0): 3, (1, 1): 2}


# --- GEM -----------------------------------------------------------------------------------------------------------

def dual_by_active_sets(G, g, margin, eps):
    """GEM's dual, min_v 1/2 v'(G G' + eps I) v + (G g)' v subject to v >= margin, by trying every set of
    multipliers held at the bound and keeping the one that meets the KKT conditions (numpy, no QP solver)."""
    t = G.shape[0]
    P = G @ G.T + eps * np.eye(t)
    q = G @ g
    for mask in range(2 ** t):
        at_bound = np.array([(mask >> i) & 1 == 1 for i in range(t)])
        v = np.full(t, margin, dtype=float)
        free = ~at_bound
        if free.any():
            rhs = -(q[free] + P[np.ix_(free, at_bound)] @ v[at_bound])
            v[free] = np.linalg.solve(P[np.ix_(free, free)], rhs)
        gradient = P @ v + q
        if (v >= margin - 1e-12).all() and (gradient[at_bound] >= -1e-12).all():
            return v
    raise AssertionError("no active set meets the KKT conditions")


@pytest.mark.parametrize("g, G", [
    ([1.0, -1.0], [[0.0, 1.0]]),  # one violated constraint: the multiplier is free (above the margin)
    ([1.0, -0.2], [[0.0, 1.0]]),  # the margin binds: the step goes past the constraint, towards backward transfer
    ([1.0, -1.0, 0.5], [[0.0, 1.0, 0.0], [-1.0, 0.2, 1.0]]),
    ([-1.0, -1.0, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
])
def test_gem_projection_solves_the_qp_and_meets_every_constraint(g, G):
    g, G = np.array(g), np.array(G)
    x = gem_projection(torch.tensor(g, dtype=torch.float64), torch.tensor(G, dtype=torch.float64), margin=0.5)
    v = dual_by_active_sets(G, g, 0.5, 1e-3)
    np.testing.assert_allclose(x.numpy(), g + G.T @ v, rtol=1e-9, atol=1e-12)
    # every earlier task's gradient has a non-negative dot product with the step, up to eps times its multiplier
    assert (G @ x.numpy() >= -1e-3 * v - 1e-12).all()


def test_gem_step_keeps_every_earlier_task_gradient_nonnegative():
    torch.manual_seed(0)
    layout = HeadLayout("domain", n_tasks=4, classes_per_task=2)
    model = MLP(3, layout, hidden=[4])
    gem = GEM(layout, memory_size=10, memory_strength=0.5)
    for t in range(3):
        gem.after_task(model, t, Split.of(torch.randn(20, 3) + t, torch.arange(20) % 2))
    x, y = torch.randn(8, 3) * 3, torch.randint(0, 2, (8,))
    params = list(model.parameters())
    model.zero_grad()
    F.cross_entropy(model(x, 3), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    memories = []
    for t in range(3):  # each earlier task's memory gradient, computed here again
        rows = gem.memory["task"] == t
        loss = F.cross_entropy(model(gem.memory["x"][rows], t), gem.memory["y"][rows])
        memories.append(torch.cat([d.reshape(-1) for d in torch.autograd.grad(loss, params)]))
    memories = torch.stack(memories)
    assert (memories @ g < 0).any()  # the case was meant to conflict
    gem.after_backward(model)
    step = torch.cat([p.grad.reshape(-1) for p in params])
    v = dual_by_active_sets(memories.double().numpy(), g.double().numpy(), 0.5, 1e-3)
    assert (memories.double() @ step.double() >= torch.tensor(-1e-3 * v - 1e-5)).all()
    np.testing.assert_allclose(step.numpy(), (g.double() + memories.double().T @ torch.tensor(v)).numpy(),
                               rtol=1e-4, atol=1e-6)


def test_gem_without_quadprog_names_the_extra(monkeypatch):
    monkeypatch.setattr(gem_module, "quadprog", None)
    with pytest.raises(ConfigError, match=r"^strategy=gem needs the quadprog package: pip install 'clrelu\[gem\]'$"):
        GEM(HeadLayout("task", n_tasks=2, classes_per_task=2))


# --- DER and DER++ -------------------------------------------------------------------------------------------------

def filled(strategy, model, task=0, n=12):
    """Offer `n` samples of `task` with their logits to a DER memory, as after a step."""
    x, y = torch.randn(n, 3), torch.arange(n) % 2
    strategy.pending = {"x": x, "y": y, "task": torch.full((n,), task), "logits": model(x, task).detach() + 0.5}
    strategy.after_step(model)


@pytest.mark.parametrize("cls", [DER, DERpp])
def test_der_losses_on_a_hand_batch(cls):
    torch.manual_seed(0)
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    model = MLP(3, layout, hidden=[4])
    der = cls(layout, memory_size=8, alpha=0.3, replay_batch_size=3) if cls is DER else \
        cls(layout, memory_size=8, alpha=0.3, beta=0.7, replay_batch_size=3)
    filled(der, model)
    assert len(der.memory) == 8
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    xb, yb, tb = der.batch(x, y, 1)
    assert len(der.draws) == (2 if cls is DERpp else 1)
    for idx in der.draws:  # each draw is without replacement
        assert len(idx) == 3 and len(set(idx.tolist())) == 3
    loss, logits = der.loss_and_logits(model, xb, yb, tb)
    mem = der.memory
    first = der.draws[0]
    expected = F.cross_entropy(model(x, 1), y) + 0.3 * ((model(mem["x"][first], 0) - mem["logits"][first]) ** 2).mean()
    if cls is DERpp:
        second = der.draws[1]
        expected = expected + 0.7 * F.cross_entropy(model(mem["x"][second], 0), mem["y"][second])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(logits, model(x, 1))
    der.after_step(model)  # the batch is offered with the logits of its forward pass
    assert der.memory.seen == 16


def test_der_in_the_class_scenario_needs_every_unit():
    with pytest.raises(ConfigError, match="^stream.active_classes=seen: DER matches the logits of every output unit"):
        DER(HeadLayout("class", n_tasks=2, classes_per_task=2))
    DER(HeadLayout("class", n_tasks=2, classes_per_task=2, active_classes="all"))


# --- ER-ACE --------------------------------------------------------------------------------------------------------

def test_er_ace_masks_the_earlier_classes_of_the_incoming_batch():
    logits = torch.arange(12.0).view(2, 6)
    masked = ace_mask(logits, present=torch.tensor([3]), seen_max=4)
    # kept: the class present (3) and the units from the largest class seen on (4, 5); masked: 0, 1, 2
    assert masked[:, :3].eq(MASKED).all() and torch.equal(masked[:, 3:], logits[:, 3:])


def test_er_ace_loss_is_the_masked_incoming_and_the_full_replay_cross_entropy():
    layout, model = tiny_class_model()
    ace = ERACE(layout, memory_size=10, replay_batch_size=4)
    ace.before_task(model, 0)
    first = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    ace.batch(*first, 0)
    ace.loss_and_logits(model, *first, 0)
    ace.after_step(model)
    ace.before_task(model, 1)
    x, y = torch.randn(5, 3), torch.tensor([2, 2, 2, 2, 2])  # only class 2 present; class 3 not seen yet
    xb, yb, tb = ace.batch(x, y, 1)
    assert len(xb) == 9
    loss, logits = ace.loss_and_logits(model, xb, yb, tb)
    out = model(x, 1)
    masked = out.clone()
    masked[:, [0, 1]] = MASKED  # classes 0 and 1, seen before and absent from the batch
    expected = F.cross_entropy(masked, y) + F.cross_entropy(model(xb[5:], tb[5:]), yb[5:])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(logits, out)  # the online accuracy reads the unmasked outputs


# --- iCaRL ---------------------------------------------------------------------------------------------------------

def hand_model():
    """Two inputs through an identity ReLU layer into a head that prefers class 1 whatever the input."""
    layout = HeadLayout("class", n_tasks=1, classes_per_task=2)
    model = MLP(2, layout, hidden=[2])
    with torch.no_grad():
        model.trunk[0].weight.copy_(torch.eye(2))
        model.trunk[0].bias.zero_()
        model.heads.layers[0].weight.zero_()
        model.heads.layers[0].bias.copy_(torch.tensor([0.0, 1.0]))
    model.begin_task(0)
    return layout, model


def test_icarl_accuracy_is_the_nearest_mean_of_exemplars_not_the_linear_head():
    layout, model = hand_model()
    icarl = ICaRL(layout, memory_size=4)
    # exemplars of class 0 near (1, 0) and of class 1 near (0, 1); the test samples are class 0, near (1, 0)
    train = Split.of(torch.tensor([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]), torch.tensor([0, 0, 1, 1]))
    test = Split.of(torch.tensor([[2.0, 0.3], [1.0, 0.2]]), torch.tensor([0, 0]))
    icarl.after_task(model, 0, train)
    stream = Stream([Task(0, ("a", "b"), train, test)], "class", 2)
    trainer = Trainer(model, icarl, stream, None, TrainSettings(), None, torch.Generator())
    assert trainer.evaluate()[0].accuracy == 1.0
    assert model(test.pool.x, 0).argmax(1).tolist() == [1, 1]  # the linear head gets both wrong
    feats = F.normalize(test.pool.x, dim=1)
    means = F.normalize(torch.stack([F.normalize(train.pool.x[:2], dim=1).mean(0),
                                     F.normalize(train.pool.x[2:], dim=1).mean(0)]), dim=1)
    expected = -((feats[:, None] - means[None]) ** 2).sum(2)
    torch.testing.assert_close(icarl.eval_logits(model, test.pool.x, 0), expected)


def test_herding_picks_the_hand_computed_exemplars():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.28, 0.96]])
    # mu = (0.52, 0.64). welling: w = mu: <w, f> = .52, .64, .8, .76 -> 2; w = 2 mu - f2 = (.24, .68):
    # .24, .68, .6, .72 -> 3; w = 3 mu - f2 - f3 = (.48, .36): .48, .36, .6, .48 -> 2 again (not counted);
    # w = 4 mu - 2 f2 - f3 = (.2, .4): .2, .4, .4, .44 -> 3 again; w = 5 mu - 2 f2 - 2 f3 = (.44, .08): .44 -> 0
    assert herding(f, 3, "welling").tolist() == [2, 3, 0]
    # exclusive: the distance to mu of the mean of the chosen and one candidate, over the candidates not chosen yet:
    # k=1: .800, .632, .283, .400 -> 2; k=2: (f2 + f) / 2: .510, .200, -, .141 -> 3; k=3: (f2 + f3 + f) / 3: .211 for
    # f0, .267 for f1 -> 0
    assert herding(f, 3, "exclusive").tolist() == [2, 3, 0]


def reference_herding_welling(D, m, cap):
    """srebuffi/iCaRL's loop, transcribed (numpy)."""
    mu = D.mean(0)
    w, order, picked, it = mu.copy(), [], np.zeros(len(D), bool), 0
    while len(order) < m and it < cap:
        i = int(np.argmax(D @ w))
        it += 1
        if not picked[i]:
            picked[i] = True
            order.append(i)
        w = w + mu - D[i]
    return order


def reference_herding_mammoth(D, m):
    """Mammoth's fill_buffer loop, transcribed (numpy)."""
    D = D.copy()
    mu, total, order = D.mean(0), np.zeros(D.shape[1]), []
    for i in range(m):
        cost = np.linalg.norm(mu - (D + total) / (i + 1), axis=1)
        k = int(cost.argmin())
        order.append(k)
        total += D[k]
        D[k] += 1e6
    return order


def test_herding_follows_the_reference_loops_on_random_features():
    torch.manual_seed(0)
    f = F.normalize(torch.randn(60, 5, dtype=torch.float64), dim=1)
    assert herding(f, 20, "welling", max_iterations=40).tolist() == reference_herding_welling(f.numpy(), 20, 40)
    assert herding(f, 20, "exclusive").tolist() == reference_herding_mammoth(f.numpy(), 20)


def test_icarl_memory_keeps_ceil_k_over_classes_per_class_in_herding_order():
    torch.manual_seed(0)
    layout = HeadLayout("class", n_tasks=3, classes_per_task=2)
    model = MLP(3, layout, hidden=[4])
    icarl = ICaRL(layout, memory_size=10)
    for t in range(2):
        model.begin_task(t)
        icarl.before_task(model, t)
        icarl.after_task(model, t, Split.of(torch.randn(30, 3), torch.arange(30) % 2 + 2 * t))
        if t == 0:
            first = icarl.memory["x"][icarl.memory["y"] == 0].clone()
    counts = pd.Series(icarl.memory["y"].tolist()).value_counts().to_dict()
    assert counts == {0: 3, 1: 3, 2: 3, 3: 3}  # ceil(10 / 4), their nb_protos_cl
    assert torch.equal(icarl.memory["x"][icarl.memory["y"] == 0], first[:3])  # the first three of the herding order


# --- GDumb ---------------------------------------------------------------------------------------------------------

def test_gdumb_sampler_on_a_hand_sequence():
    torch.manual_seed(0)
    # capacity 4; classes 0 0 0 1 fill it; the next 1 (1 < 4/2) replaces a 0; 2 (0 < 4/3) replaces one of the
    # largest class, 0 (first seen among the tied 0 and 1)
    picks = greedy_balanced_picks(torch.tensor([], dtype=torch.long), torch.tensor([0, 0, 0, 1, 1, 2]), 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])[picks]
    assert sorted(labels.tolist()) == [0, 1, 1, 2]


def test_gdumb_memory_is_class_balanced():
    torch.manual_seed(0)
    layout = HeadLayout("class", n_tasks=3, classes_per_task=2)
    gdumb = GDumb(layout, memory_size=12, epochs=1)
    model = MLP(3, layout, hidden=[4])
    available = {}
    for t in range(3):
        model.begin_task(t)
        y = torch.cat([torch.full((40,), 2 * t), torch.full((5 + 10 * t,), 2 * t + 1)])  # imbalanced classes
        gdumb.after_task(model, t, Split.of(torch.randn(len(y), 3), y))
        available.update({2 * t: 40, 2 * t + 1: 5 + 10 * t})
        counts = pd.Series(gdumb.memory["y"].tolist()).value_counts().to_dict()
        assert len(gdumb.memory) == 12 and set(counts) == set(available)
        fair = 12 // len(available)
        for c, n in counts.items():  # every class holds its fair share, or every sample it had
            assert n >= min(available[c], fair), counts


def test_gdumb_domain_memory_balances_each_task_label():
    torch.manual_seed(0)
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    gdumb = GDumb(layout, memory_size=8, epochs=1)
    model = MLP(3, layout, hidden=[4])
    for t in range(2):
        gdumb.after_task(model, t, Split.of(torch.randn(20, 3), torch.arange(20) % 2))
    # the same two labels in both tasks are four classes: 8 / 4 = 2 samples of each (task, label)
    counts = pd.Series(list(zip(gdumb.memory["task"].tolist(), gdumb.memory["y"].tolist()))).value_counts()
    assert counts.to_dict() == {(0, 0): 2, (0, 1): 2, (1, 0): 2, (1, 1): 2}


def test_gdumb_trains_from_scratch_whatever_the_weights_before():
    layout = HeadLayout("domain", n_tasks=2, classes_per_task=2)
    data = Split.of(torch.randn(30, 3), torch.arange(30) % 2)
    results = []
    for shift in (0.0, 5.0):
        torch.manual_seed(0)
        model = MLP(3, layout, hidden=[4])
        with torch.no_grad():
            for p in model.parameters():
                p.add_(shift)
        torch.manual_seed(1)
        GDumb(layout, memory_size=10, epochs=3).after_task(model, 0, data)
        results.append(torch.cat([p.reshape(-1) for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


# --- runs: refusals, resume, every method in every scenario it declares -----------------------------------------

@pytest.mark.parametrize("args, message", [
    (["strategy=icarl", "stream.scenario=task"], "strategy=icarl cannot serve stream.scenario=task; it supports class"),
    (["strategy=er_ace", "stream.scenario=domain"], "strategy=er_ace cannot serve stream.scenario=domain"),
    (["strategy=gdumb", "model=sparse"], "strategy=gdumb cannot train model=sparse; it supports model=mlp"),
    (["strategy=agem", "trainer.regime=cumulative"], "strategy=agem cannot train with trainer.regime=cumulative"),
])
def test_a_method_refuses_what_it_does_not_serve_before_anything_is_built(tmp_path, args, message):
    cfg, names = compose([*TINY, *args])
    with pytest.raises(ConfigError, match=f"^{message}"):
        run_experiment(cfg, tmp_path / "run", names)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("strategy", ["der stream.scenario=class stream.active_classes=all", "icarl",
                                      "gdumb strategy.epochs=2", "gem stream.scenario=domain"])
def test_a_buffer_method_resumes_to_the_same_csvs(tmp_path, strategy):
    name, *more = strategy.split()
    args = [*TINY, f"strategy={name}", "stream.scenario=class", *more]
    run_in_process(tmp_path / "whole", *args)
    crash_during_task(tmp_path / "cut", 2, *args)
    run_in_process(tmp_path / "cut", *args, "resume=true")
    for csv in ("accuracy.csv", "evals.csv", "model_stats.csv"):
        if not (tmp_path / "whole" / csv).exists():
            continue
        assert (tmp_path / "cut" / csv).read_bytes() == (tmp_path / "whole" / csv).read_bytes(), csv


MATRIX = [(method, scenario) for method in ("agem", "gem", "der", "derpp", "gdumb") for scenario in ("task", "domain",
                                                                                                     "class")]
MATRIX += [("er_ace", "class"), ("icarl", "class")]


@pytest.mark.parametrize("method, scenario", MATRIX)
def test_every_method_learns_in_every_scenario_it_declares(tmp_path, method, scenario):
    args = [*TINY, f"strategy={method}", f"stream.scenario={scenario}", "trainer.epochs=2"]
    if method in ("der", "derpp") and scenario == "class":
        args.append("stream.active_classes=all")
    summary = run_in_process(tmp_path / "run", *args).summary()
    chance = 1 / 6 if scenario == "class" else 1 / 2
    assert summary["avg_accuracy"] > chance + 0.15, summary["avg_accuracy"]
    assert not math.isnan(summary["avg_accuracy"])


def test_the_methods_declared_scenarios_are_those_the_matrix_runs():
    declared = set()
    for method in ("agem", "gem", "der", "derpp", "gdumb", "er_ace", "icarl"):
        node = OmegaConf.load(CONF / "strategy" / f"{method}.yaml")
        declared |= {(method, s) for s in get_class(node._target_).scenarios}
    assert declared == set(MATRIX)

