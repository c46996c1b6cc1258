"""The remedies for loss of plasticity on tiny nets: L2 Init, shrink and perturb, ReDo, continual backprop,
crelu and layer norm; their refusals, and resuming runs that use them."""

import copy
import math

import pytest
import torch
from conftest import crash_during_task, run_in_process
from torch.nn import functional as F

from clrelu.errors import ConfigError
from clrelu.models.layers import CReLU
from clrelu.models.mlp import MLP
from clrelu.strategies.cbp import ContinualBackprop
from clrelu.strategies.l2_init import L2Init
from clrelu.strategies.redo import ReDo
from clrelu.strategies.shrink_perturb import ShrinkPerturb
from clrelu.streams.base import HeadLayout

DOMAIN = HeadLayout("domain", n_tasks=2, classes_per_task=3)
FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "trainer.batch_size=16", "optimizer=adam", "stream.n_tasks=3"]


def snapshot(model, optimizer=None):
    """Copies of every parameter and of the optimizer's per-parameter state."""
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    state = {}
    if optimizer is not None:
        names = {id(p): name for name, p in model.named_parameters()}
        for p, values in optimizer.state.items():
            for key, value in values.items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    state[(names[id(p)], key)] = value.clone()
    return params, state


def trained(activation="relu", hidden=(6, 5), steps=3, seed=0):
    """A tiny MLP after a few Adam steps on random data in [0, 1] (so that its optimizer state is not zero),
    with biases large enough that every unit is active on every such input."""
    torch.manual_seed(seed)
    model = MLP(4, DOMAIN, hidden=list(hidden), activation=activation)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
        optimizer.zero_grad()
        F.cross_entropy(model(x, 0), y).backward()
        optimizer.step()
    with torch.no_grad():
        model.trunk[0].bias.fill_(3.0)  # |weights| < 0.6 on 4 inputs: pre-activations above 0.6
        if len(hidden) > 1:
            model.trunk[2].bias.fill_(20.0)
    return model, optimizer


def assert_only_units_changed(before, after, layer, units, reader, outputs):
    """Rows `units` of `layer` and columns `outputs` of `reader` may differ; every other entry is bit-identical."""
    for name in before:
        changed = torch.zeros_like(before[name], dtype=torch.bool)
        if name in (f"trunk.{layer}.weight", f"trunk.{layer}.bias"):
            changed[units] = True
        if name == f"{reader}.weight":
            changed[:, outputs] = True
        assert torch.equal(before[name][~changed], after[name][~changed]), name


def test_l2_init_penalty_is_zero_at_initialisation_and_the_formula_after_a_step():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[5])
    strategy = L2Init(DOMAIN, l2_lambda=0.3)
    strategy.before_task(model, 0)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    x = torch.rand(8, 4)
    assert strategy.penalty(model, x, 0).item() == 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x, 0), torch.randint(0, 3, (8,))).backward()
    optimizer.step()
    expected = 0.3 * sum(((p.detach() - initial[name]) ** 2).sum() for name, p in model.named_parameters())
    assert expected > 0
    assert strategy.penalty(model, x, 0).item() == pytest.approx(expected.item(), rel=1e-6)
    model.trunk[0].weight.requires_grad_(False)  # parameters that do not learn are left out
    frozen = 0.3 * ((model.trunk[0].weight.detach() - initial["trunk.0.weight"]) ** 2).sum()
    assert strategy.penalty(model, x, 0).item() == pytest.approx((expected - frozen).item(), rel=1e-6)


def test_shrink_and_perturb_at_a_task_boundary():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[5])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    ShrinkPerturb(DOMAIN, shrink=0.4, perturb=0.0, shrink_first=False).before_task(model, 0)  # untouched
    ShrinkPerturb(DOMAIN, shrink=0.4, perturb=0.0).before_task(model, 1)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name] * 0.4), name  # no noise: pure shrinkage
    shrunk = {name: p.detach().clone() for name, p in model.named_parameters()}
    state = torch.get_rng_state()
    ShrinkPerturb(DOMAIN, shrink=0.5, perturb=0.1).before_task(model, 2)
    torch.set_rng_state(state)
    # the new initialisation it drew, by hand: PyTorch's default for nn.Linear draws the weight, then the bias, each
    # uniform in +-1/sqrt(fan_in), layer after layer (4 inputs -> 5 units -> 3 outputs)
    fresh = {}
    for layer, (fan_out, fan_in) in (("trunk.0", (5, 4)), ("heads.layers.0", (3, 5))):
        bound = 1 / math.sqrt(fan_in)
        fresh[f"{layer}.weight"] = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
        fresh[f"{layer}.bias"] = torch.empty(fan_out).uniform_(-bound, bound)
    assert list(fresh) == [name for name, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), 0.5 * shrunk[name] + 0.1 * fresh[name], rtol=0, atol=1e-7)


def test_shrink_perturb_with_zero_noise_equals_weight_decay(tmp_path):
    decayed = run_in_process(tmp_path / "decay", *FAST, "strategy=naive", "optimizer.weight_decay=0.01")
    shrunk = run_in_process(tmp_path / "snp", *FAST, "strategy=shrink_perturb_step", "strategy.weight_decay=0.01",
                            "strategy.noise_std=0.0")
    noisy = run_in_process(tmp_path / "noisy", *FAST, "strategy=shrink_perturb_step", "strategy.weight_decay=0.01",
                           "strategy.noise_std=0.01")
    plain = run_in_process(tmp_path / "plain", *FAST, "strategy=naive")
    weights = {name: torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]
               for name in ("decay", "snp", "noisy", "plain")}
    for key, value in weights["decay"].items():
        assert torch.equal(value, weights["snp"][key]), key
    assert not torch.equal(weights["decay"]["trunk.0.weight"], weights["plain"]["trunk.0.weight"])
    assert not torch.equal(weights["decay"]["trunk.0.weight"], weights["noisy"]["trunk.0.weight"])
    assert (decayed.R == shrunk.R).all() and plain.status == noisy.status == "finished"


@pytest.mark.parametrize("activation", ["relu", "crelu"])
def test_redo_recycles_exactly_the_dormant_units(activation):
    model, optimizer = trained(activation)
    with torch.no_grad():
        model.trunk[0].weight[[1, 4]] = 0  # pre-activation 0 on every input: both crelu outputs are 0 too
        model.trunk[0].bias[[1, 4]] = 0
    redo = ReDo(DOMAIN, tau=0.025, period=2, score_samples=32)
    redo.before_task(model, 0)
    redo.use_optimizer(optimizer)
    for _ in range(2):
        redo.batch(torch.rand(16, 4), torch.zeros(16, dtype=torch.long), 0)
    dormant = redo.dormant_units(model)
    assert dormant[0].tolist() == [1, 4] and dormant[1].tolist() == []
    before, state_before = snapshot(model, optimizer)
    rng = torch.get_rng_state()
    redo.after_step(model)
    assert redo.steps == 1 and torch.equal(model.trunk[0].bias, before["trunk.0.bias"])  # not at step 1
    redo.after_step(model)  # step 2: recycles
    after, state_after = snapshot(model, optimizer)
    units = torch.tensor([1, 4])
    outputs = units if activation == "relu" else torch.tensor([1, 4, 7, 10])  # crelu: unit i owns i and 6 + i
    torch.set_rng_state(rng)
    fresh = copy.deepcopy(model.trunk[0])
    fresh.reset_parameters()
    assert torch.equal(after["trunk.0.weight"][units], fresh.weight[units])  # drawn as the layer initialises them
    assert after["trunk.0.bias"][units].eq(0).all()
    assert after["trunk.2.weight"][:, outputs].eq(0).all()
    assert_only_units_changed(before, after, 0, units, "trunk.2", outputs)
    for (name, key), value in state_before.items():
        if name == "trunk.0.weight" or name == "trunk.0.bias":
            assert state_after[(name, key)][units].eq(0).all() and value[units].ne(0).any()
        if name == "trunk.2.weight":
            assert value[:, outputs].ne(0).any()
            assert state_after[(name, key)][:, outputs].eq(0).all()
    assert_only_units_changed({k: v for (k, key), v in state_before.items() if key == "exp_avg"},
                              {k: v for (k, key), v in state_after.items() if key == "exp_avg"},
                              0, units, "trunk.2", outputs)
    assert redo.stats() == {"recycled_l0": 2, "recycled_l1": 0}


def test_cbp_replaces_exactly_the_least_useful_mature_units():
    model, optimizer = trained(hidden=(6,))
    cbp = ContinualBackprop(DOMAIN, replacement_rate=1 / 3, decay=0.99, maturity_threshold=0)
    cbp.before_task(model, 0)
    cbp.use_optimizer(optimizer)
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    h = torch.relu(model.trunk[0](x)).detach()  # the outputs before the step, which the utility reads
    optimizer.zero_grad()
    F.cross_entropy(model(x, 0), y).backward()
    optimizer.step()
    with torch.no_grad():
        model.heads.layers[0].weight[:, [2, 5]] = 0  # no outgoing weight: zero contribution
    expected_utility = 0.01 * h.mean(0) * model.heads.layers[0].weight.detach().abs().mean(0)
    before, state_before = snapshot(model, optimizer)
    rng = torch.get_rng_state()
    cbp.after_step(model)  # 6 mature units x 1/3: two replacements
    after, state_after = snapshot(model, optimizer)
    units = torch.tensor([2, 5])
    torch.set_rng_state(rng)
    fresh = copy.deepcopy(model.trunk[0])
    fresh.reset_parameters()
    assert torch.equal(after["trunk.0.weight"][units], fresh.weight[units])
    assert after["trunk.0.bias"][units].eq(0).all()
    assert after["heads.layers.0.weight"][:, units].eq(0).all()
    assert_only_units_changed(before, after, 0, units, "heads.layers.0", units)
    for (name, key), value in state_before.items():
        if name in ("trunk.0.weight", "trunk.0.bias"):
            assert state_after[(name, key)][units].eq(0).all() and value[units].ne(0).any()
            kept = torch.ones(6, dtype=torch.bool)
            kept[units] = False
            assert torch.equal(state_after[(name, key)][kept], value[kept])
    keep = torch.tensor([0, 1, 3, 4])
    torch.testing.assert_close(cbp.utility[0][keep], expected_utility[keep])
    assert cbp.utility[0][units].eq(0).all() and cbp.age[0].tolist() == [1, 1, 0, 1, 1, 0]
    assert cbp.accumulated == [0.0] and cbp.stats() == {"replaced_l0": 2}


def test_cbp_waits_for_maturity_and_accumulates_fractions():
    model, optimizer = trained(hidden=(6,))
    cbp = ContinualBackprop(DOMAIN, replacement_rate=0.05, maturity_threshold=2)
    cbp.before_task(model, 0)
    cbp.use_optimizer(optimizer)
    replaced = []
    for _ in range(7):
        model(torch.rand(8, 4), 0)
        cbp.after_step(model)
        replaced.append(cbp.stats()["replaced_l0"])
    # 6 units mature from step 3 (age > 2): 0.3 a step reaches 1.2 at step 6, one replacement leaves 0.2;
    # at step 7 the new unit is young, so 5 mature units add 0.25
    assert replaced == [0, 0, 0, 0, 0, 1, 1]
    assert cbp.accumulated[0] == pytest.approx(0.45)


def test_crelu_doubles_the_width_and_keeps_both_signs():
    model = MLP(4, DOMAIN, hidden=[5, 3], activation="crelu")
    assert model.trunk[0].out_features == 5 and model.trunk[2].in_features == 10
    assert model.heads.layers[0].in_features == 6
    x = torch.tensor([[1.5, -2.0, 0.0]])
    assert CReLU()(x).tolist() == [[1.5, 0.0, 0.0, 0.0, 2.0, 0.0]]
    assert model(torch.rand(2, 4), 0).shape == (2, 3)


def test_crelu_at_equal_parameter_count_is_the_documented_narrower_network():
    # docs: 2 x 100 relu on 784 inputs and 10 outputs has 89,610 parameters, 2 x 91 crelu 89,918
    ten = HeadLayout("domain", n_tasks=2, classes_per_task=10)
    assert MLP(784, ten, hidden=[100, 100]).n_params() == (784 + 1) * 100 + (100 + 1) * 100 + (100 + 1) * 10 == 89610
    assert MLP(784, ten, hidden=[91, 91], activation="crelu").n_params() == (
        (784 + 1) * 91 + (182 + 1) * 91 + (182 + 1) * 10) == 89918


@pytest.mark.parametrize("model", ["sparse", "pnn", "transfer", "multitask"])
def test_every_model_takes_crelu(model):
    from clrelu.config import compose
    from clrelu.training.experiment import build, factory

    cfg, _ = compose([f"model={model}", "model.hidden=[5,3]", "model.activation=crelu"])
    layout = HeadLayout("task", n_tasks=2, classes_per_task=3)
    net = build(factory("model", cfg.model), "model", in_features=4, layout=layout)
    net.begin_task(0), net.begin_task(1)
    assert net(torch.rand(2, 4), 1).shape == (2, 3)
    assert {layer.outputs_per_unit for layer in net.unit_layers()} == {2}  # pnn: two columns of two layers


def test_layer_norm_normalises_each_hidden_layer_before_its_activation():
    torch.manual_seed(0)
    model = MLP(4, DOMAIN, hidden=[6, 5], norm="layer")
    assert [type(m).__name__ for m in model.trunk] == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU"]
    z = model.trunk[1](model.trunk[0](torch.rand(3, 4) * 10))
    torch.testing.assert_close(z.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="model.norm=batch: unknown choice; valid choices are none, layer"):
        MLP(4, DOMAIN, norm="batch")


def test_strategies_that_change_units_refuse_the_models_whose_units_are_frozen(tmp_path):
    with pytest.raises(ConfigError, match="strategy=cbp cannot train model=sparse: it would replace the units "
                                          r"model.protect=true freezes \(model.protect=false frees them\)"):
        run_in_process(tmp_path / "a", *FAST, "model=sparse", "strategy=cbp")
    with pytest.raises(ConfigError, match="strategy=shrink_perturb cannot train model=transfer: it would shrink "
                                          "and perturb the units of its frozen trunk"):
        run_in_process(tmp_path / "b", *FAST, "model=transfer", "strategy=shrink_perturb")
    record = run_in_process(tmp_path / "c", *FAST, "model=sparse", "model.protect=false", "strategy=redo",
                            "strategy.period=3")
    assert record.status == "finished"


@pytest.mark.parametrize("strategy", [
    ["strategy=l2_init"], ["strategy=shrink_perturb"], ["strategy=shrink_perturb_step", "strategy.noise_std=0.01"],
    ["strategy=redo", "strategy.period=7", "model.activation=crelu"],
    ["strategy=cbp", "strategy.replacement_rate=0.05", "strategy.maturity_threshold=3", "model.norm=layer"]])
def test_a_run_with_a_remedy_resumes_to_the_same_csvs(tmp_path, strategy):
    args = [*FAST, *strategy]
    run_in_process(tmp_path / "whole", *args)
    crash_during_task(tmp_path / "cut", 2, *args)
    run_in_process(tmp_path / "cut", *args, "resume=true")
    for name in ("accuracy.csv", "evals.csv", "model_stats.csv"):
        if (tmp_path / "whole" / name).is_file():
            assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
