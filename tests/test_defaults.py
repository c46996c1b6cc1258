"""Defaults never diverge and learn: every strategy of conf/strategy, in every scenario it declares, with its
defaults, the model it declares and the default optimizer, finishes short runs of split and permuted MNIST and
Fashion-MNIST (skipped without the data), learns (learning accuracy well above chance) and leaves no NaN in
summary.csv where a value is defined."""

import math

import pandas as pd
import pytest
from conftest import has_dataset, run_in_process
from hydra.utils import get_class
from omegaconf import OmegaConf

from clrelu.config import config_dir
from clrelu.strategies.base import Strategy
from clrelu.streams.base import SCENARIOS

STRATEGIES = sorted(path.stem for path in (config_dir() / "strategy").glob("*.yaml"))
# what a strategy needs in a scenario beyond the stream's defaults: DER's logit term covers every output unit
NEEDS = {("der", "class"): ["stream.active_classes=all"], ("derpp", "class"): ["stream.active_classes=all"]}
# GDumb trains 128 passes over its memory after every task whatever trainer.iters says: 4 passes keep this matrix short
# Ash & Adams's shrink and perturb scales every task's start, the first included, to 40% plus noise: 30 steps learn
# it only 0.12-0.17 above chance on the permuted streams, 90 clear the margin
SHORTER = {"gdumb": ["strategy.epochs=4"], "shrink_perturb": ["trainer.iters=90"]}
# strategies that take no step on the stream (phase_data None: GDumb learns from its memory alone), so that no online
# accuracy is measured
NO_ONLINE = {"gdumb"}
STREAMS = {"split_mnist": "MNIST", "permuted_mnist": "MNIST", "split_fmnist": "FashionMNIST",
           "permuted_fmnist": "FashionMNIST"}
N_TASKS = 3
# Three tasks of 300 samples, 30 steps of 128 each: long enough for penalties and importances to build up over tasks
# and for every default to learn each task well above chance (shrink_perturb is the slowest: each task starts from
# weights shrunk to 40%, and on the permuted streams 20 steps left its learning accuracy only 0.14 above chance),
# short enough for the whole matrix to take a few minutes on one core.
SHORT = [f"stream.n_tasks={N_TASKS}", "stream.train_limit=300", "stream.test_limit=100", "trainer.iters=30",
         "threads=1"]
MARGIN = 0.2  # above chance; measured at seed 0, the smallest margin of the 200 runs is 0.27


def strategy_class(strategy: str) -> type:
    """The class conf/strategy/<strategy>.yaml builds: it declares the scenarios and models it serves."""
    return get_class(OmegaConf.load(config_dir() / "strategy" / f"{strategy}.yaml")._target_)


def serves(strategy: str, scenario: str) -> bool:
    """Whether the strategy declares the scenario (the others it refuses, as its own tests check)."""
    return scenario in strategy_class(strategy).scenarios


def chance(stream: str, scenario: str, every_unit: bool) -> float:
    """The learning accuracy of uniform guesses: R[j, j] answers task j among the classes of one task (2 for a split
    stream, 10 for a permuted one) in the task and domain scenarios; in the class scenario among every class seen so
    far (active_classes=seen, the default), j + 1 tasks' worth, or among every class of the stream (all)."""
    per_task = 2 if stream.startswith("split") else 10
    if scenario != "class":
        return 1 / per_task
    if every_unit:
        return 1 / (per_task * N_TASKS)
    return sum(1 / (per_task * (j + 1)) for j in range(N_TASKS)) / N_TASKS


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("strategy, scenario", [(strategy, scenario) for strategy in STRATEGIES
                                                for scenario in SCENARIOS if serves(strategy, scenario)])
def test_every_default_learns_without_diverging(tmp_path, stream, scenario, strategy):
    if not has_dataset(STREAMS[stream]):
        pytest.skip(f"no {STREAMS[stream]} under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")
    needs = NEEDS.get((strategy, scenario), [])
    model = (strategy_class(strategy).models or ("mlp",))[0]  # a strategy that changes the architecture trains its own
    record = run_in_process(tmp_path, f"stream={stream}", f"stream.scenario={scenario}", f"strategy={strategy}",
                            f"model={model}", *SHORT, *needs, *SHORTER.get(strategy, []))
    assert record.status == "finished" and all(math.isfinite(a) for a in record.R[-1])
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    every_unit = "stream.active_classes=all" in needs
    assert summary.learning_accuracy >= chance(stream, scenario, every_unit) + MARGIN, summary.learning_accuracy
    # every value is defined but the error (none); in the class scenario with active_classes=seen, FWT and
    # Chaudhry's forgetting (a task's classes have no active unit before it begins, so R[j-1, j] is undefined);
    # without steps on the stream, the online accuracy; for a strategy without counted actions, strategy_actions
    undefined = {"error"} | ({"fwt", "forgetting_chaudhry"} if scenario == "class" and not every_unit else set())
    undefined |= {"online_first_tenth", "online_last_tenth"} if strategy in NO_ONLINE else set()
    # (shrink_perturb_step: shrink 1 and no noise at the boundary, so nothing to count there)
    counts = strategy_class(strategy).actions is not Strategy.actions and strategy != "shrink_perturb_step"
    undefined |= set() if counts else {"strategy_actions"}
    assert set(summary.index[summary.isna()]) == undefined
