"""A strategy that cannot act within a run says so before training, naming the key and the run's steps, and
summary.csv counts what every strategy with actions did (`strategy_actions`, the sum of model_stats.csv)."""

import logging
import math

import pandas as pd
import pytest
from conftest import run_cli, run_in_process

from clrelu.strategies.cbp import ContinualBackprop
from clrelu.streams.base import HeadLayout

# 5 tasks of 40 training samples: one optimizer step per task
FAST = ["stream=synthetic", "model.hidden=[16]", "stream.train_per_class=20", "stream.test_per_class=10",
        "plasticity.probe_size=50"]


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def summary_and_stats(folder):
    return pd.read_csv(folder / "summary.csv").iloc[0], pd.read_csv(folder / "model_stats.csv")


@pytest.mark.parametrize("overrides, key, count_column", [
    (["strategy=redo"], "strategy.period=1000: it recycles dormant units every 1000 optimizer steps, and this run "
                        "has 5 steps (5 tasks x 1)", "recycled"),
    (["strategy=cbp"], "strategy.maturity_threshold=100: a unit can be replaced once it is older than 100 optimizer "
                       "steps, and this run has 5 steps (5 tasks x 1)", "replaced"),
    (["strategy=cbp", "strategy.maturity_threshold=0", "strategy.replacement_rate=0.01"],
     "strategy.replacement_rate=0.01: with 16 units in the widest layer, the first replacement comes after about 7 "
     "optimizer steps", "replaced"),
])
def test_a_strategy_that_cannot_act_warns_once(tmp_path, caplog, overrides, key, count_column):
    with caplog.at_level(logging.INFO, logger="clrelu"):
        run_in_process(tmp_path / "run", *FAST, *overrides)
    said = warnings_of(caplog)
    assert len(said) == 1 and said[0].startswith(f"strategy={overrides[0].split('=')[1]} cannot act in this run: {key}")
    summary, stats = summary_and_stats(tmp_path / "run")
    assert summary.strategy_actions == 0 and stats.filter(like=count_column).to_numpy().sum() == 0


def test_a_strategy_that_can_act_counts_its_actions(tmp_path, caplog):
    # 0.01 x 16 units a step: the first replacement after 7 steps (1 / 0.16 = 6.25), well inside 5 tasks x 2 steps
    with caplog.at_level(logging.INFO, logger="clrelu"):
        run_in_process(tmp_path / "cbp", *FAST, "trainer.iters=2", "strategy=cbp", "strategy.maturity_threshold=0",
                       "strategy.replacement_rate=0.01")
        run_in_process(tmp_path / "redo", *FAST, "strategy=redo", "strategy.period=task", "strategy.tau=0.5")
        run_in_process(tmp_path / "naive", *FAST)
    assert warnings_of(caplog) == []
    for run, column in (("cbp", "replaced"), ("redo", "recycled")):
        summary, stats = summary_and_stats(tmp_path / run)
        per_task = stats.filter(like=column).sum(axis=1)
        assert summary.strategy_actions == per_task.sum() >= 1, run
    assert math.isnan(pd.read_csv(tmp_path / "naive" / "summary.csv").strategy_actions.iloc[0])  # naive has no actions to count


def test_first_replacement_is_the_step_continual_backprop_replaces_at():
    cbp = ContinualBackprop(HeadLayout("task", 5, 2), replacement_rate=0.01, maturity_threshold=0)
    assert cbp.first_replacement(16, 100) == 7  # 0.16 a step: 0.96 after 6 steps, 1.12 after 7
    cbp = ContinualBackprop(HeadLayout("task", 5, 2), replacement_rate=0.1, maturity_threshold=2)
    assert cbp.first_replacement(16, 100) == 3  # mature after 2 steps; 1.6 at the third
    assert cbp.first_replacement(16, 2) is None


def test_the_warning_reaches_the_console_with_its_level(tmp_path):
    done = run_cli("run", *FAST, "strategy=redo", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "cannot act" in line]
    assert lines == [line for line in lines if line.startswith("clrelu: warning: strategy=redo cannot act in this "
                                                               "run: strategy.period=1000")] and len(lines) == 1
    assert "warning: strategy=redo cannot act" in (tmp_path / "run" / "run.log").read_text()
