"""Defaults never diverge: every strategy of conf/strategy, in every scenario, with its defaults and the default
optimizer, finishes short runs of split and permuted MNIST and Fashion-MNIST (skipped without the data)."""

import math

import pytest
from conftest import has_dataset, run_in_process
from hydra.utils import get_class
from omegaconf import OmegaConf

from clrelu.config import config_dir
from clrelu.streams.base import SCENARIOS

STRATEGIES = sorted(path.stem for path in (config_dir() / "strategy").glob("*.yaml"))
# what a strategy needs in a scenario beyond the stream's defaults: DER's logit term covers every output unit
NEEDS = {("der", "class"): ["stream.active_classes=all"], ("derpp", "class"): ["stream.active_classes=all"]}
# GDumb trains 128 passes over its memory after every task whatever trainer.iters says: 4 passes keep this matrix short
SHORTER = {"gdumb": ["strategy.epochs=4"]}
STREAMS = {"split_mnist": "MNIST", "permuted_mnist": "MNIST", "split_fmnist": "FashionMNIST",
           "permuted_fmnist": "FashionMNIST"}
# Three tasks of 300 samples, 20 steps of 128 each: long enough for penalties and importances to build up over tasks,
# short enough for the whole matrix to take about a minute on one core.
SHORT = ["stream.n_tasks=3", "stream.train_limit=300", "stream.test_limit=100", "trainer.iters=20", "threads=1"]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_default_finishes_without_diverging(tmp_path, stream, scenario, strategy):
    if not has_dataset(STREAMS[stream]):
        pytest.skip(f"no {STREAMS[stream]} under $CLRELU_DATA (set CLRELU_DATA=../shared/data)")
    served = get_class(OmegaConf.load(config_dir() / "strategy" / f"{strategy}.yaml")._target_)
    if scenario not in served.scenarios:
        pytest.skip(f"strategy={strategy} does not serve the {scenario} scenario (its tests check that it refuses it)")
    model = (served.models or ("mlp",))[0]  # a strategy that changes the architecture trains its own model
    record = run_in_process(tmp_path, f"stream={stream}", f"stream.scenario={scenario}", f"strategy={strategy}",
                            f"model={model}", *SHORT, *NEEDS.get((strategy, scenario), []), *SHORTER.get(strategy, []))
    assert record.status == "finished" and all(math.isfinite(a) for a in record.R[-1])
