"""The study scripts behind the README's tables and figure run end to end on small synthetic runs, in this process,
and print what those runs hold. (scripts/bench.py has its own tests, test_bench.py.)"""

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import run_in_process
from omegaconf import OmegaConf

from clrelu.config import compose
from clrelu.errors import RunError
from clrelu.models.layers import ACTIVATIONS

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ["stream=synthetic", "model.hidden=[8]", "stream.n_tasks=2", "stream.train_per_class=20",
        "stream.test_per_class=10", "trainer.batch_size=16", "plasticity.enabled=false"]


def script(name: str):
    """A script of scripts/ imported as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_job(folder: Path, *overrides: str) -> float:
    """A run of TINY and `overrides` into `folder`, with the overrides file Hydra writes for a sweep's job; its ACC."""
    try:
        accuracy = run_in_process(folder, *TINY, *overrides).summary()["avg_accuracy"]
    except RunError:
        accuracy = float("nan")  # the run is marked failed in its summary.csv
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*TINY, *overrides]))
    cfg, _ = compose([*TINY, *overrides])  # the composed config, which results.load reads
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return accuracy


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the markdown table in `text`, without the header and rule."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[1:]
            if not line.startswith("| ---")]


def test_activation_figure_of_any_activations_and_seeds(tmp_path, capsys):
    # elu and the sparse model's softplus are outside the sweep's colour map; one group has one seed, the others two
    for scenario in ("task", "domain"):
        for activation in ("relu", "elu"):
            for seed in (0, 1):
                sweep_job(tmp_path / f"{scenario}_{activation}_{seed}", f"stream.scenario={scenario}",
                          f"model.activation={activation}", f"seed={seed}")
    sweep_job(tmp_path / "sparse", "model=sparse", "model.activation=softplus", "seed=0")
    figure = tmp_path / "figure.png"
    script("activation_figure").main(str(tmp_path), str(figure))
    rows = table_rows(capsys.readouterr().out)
    assert [row[:4] for row in rows] == [["synthetic", "domain", "mlp", "elu"], ["synthetic", "domain", "mlp", "relu"],
                                         ["synthetic", "task", "mlp", "elu"], ["synthetic", "task", "mlp", "relu"],
                                         ["synthetic", "task", "sparse", "softplus"]]
    assert [row[-1] for row in rows] == ["2", "2", "2", "2", "1"]
    assert figure.read_bytes().startswith(b"\x89PNG")
    import matplotlib.pyplot as plt

    title = plt.gcf()._suptitle.get_text()
    plt.close("all")
    assert title == "Forgetting against hidden-layer sparsity, mean ± std over 1-2 seeds"  # the data's, no finding


def test_defaults_table_of_finished_and_failed_runs(tmp_path, capsys):
    accuracy = {(strategy, scenario): sweep_job(tmp_path / f"{strategy}_{scenario}", f"strategy={strategy}",
                                                f"stream.scenario={scenario}")
                for strategy in ("naive", "ewc") for scenario in ("task", "class")}
    sweep_job(tmp_path / "diverged", "strategy=si", "stream.scenario=task", "optimizer.lr=3e38")
    script("defaults_table").main(str(tmp_path))
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| strategy | synthetic, task | synthetic, class |"
    rows = {row[0]: row[1:] for row in table_rows(out)}
    for strategy in ("naive", "ewc"):
        assert rows[strategy] == [f"{accuracy[(strategy, s)]:.3f}" for s in ("task", "class")]
    assert re.match(r"\*\*failed\*\* after 0 tasks: task 0, step \d+: the loss became nan", rows["si"][0])
    assert rows["si"][1] == "not run"
    assert "4 of 5 runs finished" in out


def test_strategy_table_beside_the_papers_numbers(tmp_path, capsys):
    naive = [sweep_job(tmp_path / f"naive_{seed}", "seed=" + str(seed)) for seed in (0, 1)]
    ewc = sweep_job(tmp_path / "ewc", "strategy=ewc", "stream.scenario=class")
    joint = sweep_job(tmp_path / "joint", "trainer.regime=joint", "stream.scenario=domain")
    script("strategy_table").main("hsu", [str(tmp_path)])
    rows = {row[0]: row[1:] for row in table_rows(capsys.readouterr().out)}
    mean, std = pd.Series(naive).mean(), pd.Series(naive).std()
    assert rows["`naive`"] == [f"{100 * mean:.2f} ± {100 * std:.2f}", "not run", "not run", "2",
                               "Adam: 93.46 ± 2.01 / 55.16 ± 1.38 / 19.71 ± 0.08"]
    assert rows["`ewc`"][:4] == ["not run", "not run", f"{100 * ewc:.2f} (1 seed)", "1"]
    assert rows["`trainer.regime=joint`"][:4] == ["not run", f"{100 * joint:.2f} (1 seed)", "not run", "1"]
    assert rows["`si`"][:4] == ["not run", "not run", "not run", "0"]


def test_activation_cost_times_every_activation(monkeypatch, capsys):
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", ["activation_cost.py", "--stream", "synthetic", "--rounds", "1", "--hidden", "16"])
    try:
        script("activation_cost").main()
    finally:
        torch.set_num_threads(threads)  # the script sets one thread for itself
    out = capsys.readouterr().out
    assert re.search(r"MLP 32-16, synthetic task 0: one epoch of 400 samples \(batch 128\), evaluation of 200", out)
    rows = {row[0]: row for row in table_rows(out)}
    assert set(rows) == set(ACTIVATIONS)
    assert rows["relu"][2] == rows["relu"][4] == "1.00"  # the ratios are to relu
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows.values())


@pytest.fixture(autouse=True)
def _no_figures_left():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
