"""Every method of this family finishes in every scenario it declares with its defaults and learns above chance, and a
run with it resumes to the same files."""

import pytest
from conftest import crash_during_task, run_in_process

from clrelu.models.hat import HatNet
from clrelu.models.mlp import MLP
from clrelu.models.packnet import PackNetNet
from clrelu.strategies.hat import HAT
from clrelu.strategies.mas import MAS
from clrelu.strategies.packnet import PackNet

METHODS = {"mas": ("mlp", MLP, MAS), "packnet": ("packnet", PackNetNet, PackNet), "hat": ("hat", HatNet, HAT)}
STREAM = ["stream=synthetic", "stream.n_tasks=3", "stream.classes_per_task=2", "stream.train_per_class=60",
          "stream.test_per_class=30", "model.hidden=[32]", "trainer.batch_size=16", "trainer.epochs=2",
          "optimizer=adam", "optimizer.lr=0.01", "plasticity.enabled=false", "diagnostics.enabled=false", "threads=1"]
CASES = [(name, scenario) for name, (_, model, strategy) in METHODS.items()
         for scenario in strategy.scenarios if scenario in model.scenarios]


def test_the_matrix_covers_what_each_method_declares():
    assert CASES == [("mas", "task"), ("mas", "domain"), ("mas", "class"), ("packnet", "task"), ("hat", "task")]


@pytest.mark.parametrize("name, scenario", CASES)
def test_every_method_finishes_every_scenario_it_declares_and_learns(tmp_path, name, scenario):
    model = METHODS[name][0]
    record = run_in_process(tmp_path / "run", *STREAM, f"model={model}", f"strategy={name}",
                            f"stream.scenario={scenario}")
    chance = 1 / 2  # two classes a task: the accuracy on a task just learned, were nothing learned
    assert record.status == "finished" and record.tasks_done == 3
    assert record.summary()["learning_accuracy"] > chance + 0.25


@pytest.mark.parametrize("method", [["model=mlp", "strategy=mas", "stream.scenario=class"],
                                    ["model=packnet", "strategy=packnet"],
                                    ["model=hat", "strategy=hat"],
                                    ["strategy=cbp", "strategy.replacement_rate=0.05", "strategy.maturity_threshold=3",
                                     "strategy.utility=adaptable_contribution", "trainer.reset_optimizer=false"]])
def test_a_run_with_the_method_resumes_to_the_same_files(tmp_path, method):
    args = [*STREAM, *method]
    run_in_process(tmp_path / "whole", *args)
    crash_during_task(tmp_path / "cut", 2, *args)
    run_in_process(tmp_path / "cut", *args, "resume=true")
    for name in ("accuracy.csv", "evals.csv", "online.csv", "model_stats.csv"):
        if (tmp_path / "whole" / name).is_file():
            assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
