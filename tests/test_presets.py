"""Experiment presets: each paper's settings for whichever strategy and scenario is picked, and its class order."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from clrelu.config import compose, config_dir, vandeven_class_order
from clrelu.training.experiment import factory

STRATEGIES = ("naive", "ewc", "online_ewc", "si", "lwf", "replay")


def strategy_of(*overrides):
    cfg, _ = compose(list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def preset_strategy(experiment: str, strategy: str, scenario: str) -> dict:
    """The strategy's config under a preset, from the YAML files read one by one: the strategy's own file, overlaid
    with the `strategy` keys of conf/experiment_strategy/<experiment>/<strategy>.yaml when it exists, each
    `${per_scenario.<key>.${stream.scenario}}` looked up by hand in that file's table."""
    node = OmegaConf.to_container(OmegaConf.load(config_dir() / "strategy" / f"{strategy}.yaml"))
    path = config_dir() / "experiment_strategy" / experiment / f"{strategy}.yaml"
    if path.is_file():
        preset = OmegaConf.to_container(OmegaConf.load(path))  # unresolved: interpolations stay strings
        for key, value in preset["strategy"].items():
            if isinstance(value, str) and value.startswith("${"):
                assert value == f"${{per_scenario.{key}.${{stream.scenario}}}}"
                value = preset["per_scenario"][key][scenario]
            node[key] = value
    return node


@pytest.mark.parametrize("experiment", ["hsu_split_mnist", "vandeven_split_mnist"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_preset_sets_only_keys_the_picked_strategy_takes(experiment, strategy):
    cfg, _ = compose([f"experiment={experiment}", f"strategy={strategy}", "stream.scenario=class"])
    assert OmegaConf.to_container(cfg.strategy, resolve=True) == preset_strategy(experiment, strategy, "class")
    factory("strategy", cfg.strategy)  # refuses a key the strategy does not take


@pytest.mark.parametrize("scenario, vandeven, hsu", [("task", 1e5, 200.0), ("domain", 1e10, 200.0),
                                                     ("class", 1e9, 1200.0)])
def test_ewc_coefficients_follow_the_scenario(scenario, vandeven, hsu):
    run = strategy_of("experiment=vandeven_split_mnist", "strategy=ewc", f"stream.scenario={scenario}")
    assert run["strategy"]["ewc_lambda"] == vandeven and run["strategy"]["fisher_labels"] == "expected"
    run = strategy_of("experiment=hsu_split_mnist", "strategy=ewc", f"stream.scenario={scenario}")
    assert run["strategy"]["ewc_lambda"] == hsu and run["strategy"]["fisher_labels"] == "predicted"


def test_presets_set_the_papers_choices_and_the_command_line_wins():
    vdv = strategy_of("experiment=vandeven_split_mnist", "strategy=si", "stream.scenario=domain")
    assert vdv["strategy"]["c"] == 50000.0 and vdv["strategy"]["path_gradient"] == "total_loss"
    assert vdv["stream"]["active_classes"] == "all" and vdv["trainer"]["reset_optimizer"] is False
    hsu = strategy_of("experiment=hsu_split_mnist", "strategy=si", "stream.scenario=class", "strategy.c=7")
    assert hsu["strategy"]["c"] == 7 and hsu["strategy"]["clip_importance"] is False
    assert hsu["stream"]["active_classes"] == "seen_in_training" and hsu["trainer"]["epochs"] == 4
    replay = strategy_of("experiment=vandeven_split_mnist", "strategy=replay")["strategy"]
    assert replay["class_budget"] == 100
    assert strategy_of("strategy=si")["strategy"]["max_curvature"] == "auto"  # no preset: the strategy's defaults


def test_vandeven_class_order_is_the_one_their_code_draws_from_the_seed():
    assert vandeven_class_order(0) == list(range(10))
    for seed in (1, 2, 7):
        np.random.seed(seed)  # data/load.py: np.random.seed(args.seed), then the permutation of the labels
        relabel = np.random.permutation(list(range(10)))
        order = vandeven_class_order(seed)
        for t in range(5):  # task t holds the digits relabelled 2t and 2t+1, in that order
            assert [relabel[d] for d in order[2 * t:2 * t + 2]] == [2 * t, 2 * t + 1]
    run = strategy_of("experiment=vandeven_split_mnist", "seed=2")
    assert run["stream"]["class_order"] == vandeven_class_order(2) != list(range(10))


def test_plasticity_permuted_is_kumar_et_al_s_protocol_on_fashion_mnist():
    run = strategy_of("experiment=plasticity_permuted", "strategy=cbp")
    assert run["model"]["_target_"] == "clrelu.models.mlp.MLP"
    assert (run["model"]["hidden"], run["model"]["activation"], run["model"]["norm"]) == ([100, 100], "relu", "none")
    stream = run["stream"]
    assert stream["_target_"] == "clrelu.streams.permuted.permuted_stream" and stream["dataset"] == "fmnist"
    assert (stream["scenario"], stream["n_tasks"], stream["train_limit"], stream["test_limit"]) == (
        "domain", 500, 10000, 2000)
    assert run["optimizer"]["_target_"] == "torch.optim.Adam" and run["optimizer"]["lr"] == 0.001
    assert (run["trainer"]["epochs"], run["trainer"]["iters"], run["trainer"]["batch_size"],
            run["trainer"]["reset_optimizer"]) == (1, None, 16, False)
    assert run["eval"] == {"every": 50, "tasks": "current"}
    assert run["strategy"]["_target_"] == "clrelu.strategies.cbp.ContinualBackprop"  # any strategy, its defaults


def test_activation_sweep_is_144_runs_of_five_tasks():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=activation_sweep"], return_hydra_config=True)
    params = {key: value.split(",") for key, value in cfg.hydra.sweeper.params.items()}
    assert params == {"model": ["mlp", "sparse"], "stream": ["split_fmnist", "permuted_fmnist"],
                      "stream.scenario": ["task", "domain"],
                      "model.activation": ["relu", "leaky_relu", "gelu", "tanh", "swish", "softplus"],
                      "seed": ["0", "1", "2"]}
    assert np.prod([len(values) for values in params.values()]) == 144
    # one of its jobs: the sweep's choices on top of the preset, five tasks whichever stream
    job = strategy_of("experiment=activation_sweep", "model=sparse", "stream=permuted_fmnist",
                      "stream.scenario=domain", "model.activation=softplus", "seed=2")
    assert job["model"]["_target_"] == "clrelu.models.sparse.SparsePerceptron"
    assert job["model"]["activation"] == "softplus" and job["stream"]["dataset"] == "fmnist"
    assert (job["stream"]["n_tasks"], job["stream"]["scenario"], job["seed"], job["threads"]) == (5, "domain", 2, 1)
    assert job["trainer"]["epochs"] == 1
