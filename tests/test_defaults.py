"""Defaults never diverge: every strategy of conf/strategy, in every scenario, with its defaults and the default
optimizer, finishes short runs of split and permuted MNIST and Fashion-MNIST (skipped without the data)."""

import math

import pytest
from conftest import has_dataset, run_in_process

from clrelu.config import config_dir
from clrelu.streams.base import SCENARIOS

STRATEGIES = sorted(path.stem for path in (config_dir() / "strategy").glob("*.yaml"))
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
    record = run_in_process(tmp_path, f"stream={stream}", f"stream.scenario={scenario}", f"strategy={strategy}", *SHORT)
    assert record.status == "finished" and all(math.isfinite(a) for a in record.R[-1])
