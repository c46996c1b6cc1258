"""The side-by-side scripts (scripts/peers/) without any peer installed: every row's clrelu keys compose, clrelu's side
runs on the synthetic stream, and the table is built right from a small fixture (no timing asserted)."""

import json
import math
import sys
from pathlib import Path

import pytest

from clrelu.config import compose

PEERS = Path(__file__).resolve().parents[1] / "scripts" / "peers"
sys.path.insert(0, str(PEERS))

import clrelu_side  # noqa: E402
import methods  # noqa: E402
import table  # noqa: E402


@pytest.mark.parametrize("row", methods.ROWS, ids=lambda r: r.key)
def test_every_row_composes_with_its_shared_settings(row):
    cfg, names = compose(row.clrelu_overrides(seed=3))
    assert names["strategy"] == row.method and names["model"] == row.model
    assert cfg.optimizer.lr == row.lr and cfg.optimizer.momentum == 0
    assert cfg.trainer.batch_size == row.batch_size and cfg.trainer.epochs == row.epochs
    assert list(cfg.model.hidden) == [100, 100] and cfg.stream.scenario == row.scenario and cfg.seed == 3
    assert cfg.threads == 1 and cfg.eval.tasks == "seen"
    for key, value in row.strategy.items():
        assert cfg.strategy[key] == value
    assert row.peer in methods.PEERS and methods.row(row.label, row.scenario) is row


def test_an_unknown_row_is_named_with_the_rows_there_are():
    with pytest.raises(KeyError, match="no comparison agem/task; the rows are naive/domain, naive-mammoth/domain, naive/class, agem/class"):
        methods.row("agem", "task")


@pytest.mark.parametrize("key", ["agem/class", "der/domain"])
def test_clrelu_side_runs_a_row_on_the_synthetic_stream(tmp_path, key):
    row = methods.BY_KEY[key]
    result = clrelu_side.run(row, 0, tmp_path / "run", synthetic=True, extra=["stream.train_per_class=40"])
    assert (result["side"], result["method"], result["scenario"], result["seed"]) == ("clrelu", row.method,
                                                                                       row.scenario, 0)
    assert len(result["accuracies"]) == 5 and all(0 <= a <= 100 for a in result["accuracies"])
    assert result["final_accuracy"] == pytest.approx(sum(result["accuracies"]) / 5)
    assert result["seconds"] == pytest.approx(result["train_seconds"] + result["eval_seconds"])
    assert result["seconds"] > 0
    assert json.loads(json.dumps(result)) == result  # one JSON line
    assert (tmp_path / "run" / "summary.csv").is_file()


def fixture_line(side, method, scenario, seed, accuracy, seconds):
    return json.dumps({"side": side, "method": method, "scenario": scenario, "seed": seed,
                       "accuracies": [accuracy], "final_accuracy": accuracy, "seconds": seconds})


def test_table_from_a_fixture(tmp_path):
    lines = [fixture_line("clrelu", "agem", "class", 0, 50.0, 10.0),
             fixture_line("clrelu", "agem", "class", 1, 54.0, 20.0),
             fixture_line("avalanche", "agem", "class", 0, 47.0, 100.0),
             fixture_line("avalanche", "agem", "class", 1, 49.0, 200.0),
             fixture_line("clrelu", "agem", "class", 2, 90.0, 5.0),  # no peer result for seed 2: left out
             fixture_line("clrelu", "der", "class", 0, 80.0, 30.0),
             fixture_line("mammoth", "der", "class", 0, 79.0, 60.0),
             fixture_line("clrelu", "gem", "class", 0, 70.0, 1.0)]  # no peer at all: no line
    path = tmp_path / "peers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = table.table(table.read(path)).splitlines()
    assert rows[:2] == table.HEADER.splitlines()
    assert len(rows) == 4
    # agem: clrelu 52 +- sqrt(8) = 2.83, avalanche 48 +- sqrt(2) = 1.41, difference 4 (marked), ratio 30 / 300
    assert rows[2] == "| agem | class | avalanche | 2 | 52.00 ± 2.83 | 48.00 ± 1.41 | **+4.00** | 0.10 |"
    assert rows[3] == "| der | class | mammoth | 1 | 80.00 | 79.00 | +1.00 | 0.50 |"


def test_mean_std_by_hand():
    assert table.mean_std([1.0, 2.0, 6.0]) == pytest.approx((3.0, math.sqrt(7.0)))
    assert math.isnan(table.mean_std([4.0])[1])


def test_per_seed_lists_every_seed_of_either_side(tmp_path):
    lines = [fixture_line("clrelu", "agem", "class", 0, 50.0, 10.0),
             fixture_line("avalanche", "agem", "class", 0, 47.5, 100.0),
             fixture_line("clrelu", "agem", "class", 2, 90.0, 5.0),
             fixture_line("avalanche", "der", "class", 1, 60.0, 5.0)]  # der's peer is mammoth: not this row's
    path = tmp_path / "peers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = table.per_seed(table.read(path)).splitlines()
    assert rows[2:] == ["| agem | class | 0 | 50.00 | 47.50 |", "| agem | class | 2 | 90.00 | - |"]
