"""`clrelu run` end to end in a fresh process: the files a run writes, repeatability, and one-line errors."""

import re
import sys

import pandas as pd
import pytest
import torch
import yaml
from conftest import fake_dataset, read_accuracy, refusal, run_cli
from omegaconf import OmegaConf

from clrelu.cli import main
from clrelu.config import compose, config_dir
from clrelu.training.experiment import choose_device

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


def only_run(tmp_path):
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_run_writes_the_four_csvs(tmp_path):
    done = run_cli("run", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = only_run(tmp_path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_mlp_synthetic_naive_seed0_[0-9a-f]{6}", run.name), run.name
    accuracy = read_accuracy(run)
    forgetting = pd.read_csv(run / "forgetting.csv", index_col="after_task")
    evals = pd.read_csv(run / "evals.csv")
    summary = pd.read_csv(run / "summary.csv")
    assert accuracy.shape == (5, 5) and list(accuracy.index) == [0, 1, 2, 3, 4]
    assert list(accuracy.columns) == ["0", "1", "2", "3", "4"]
    assert forgetting.shape == (5, 5)
    assert list(evals.columns[:5]) == ["after_task", "eval_task", "accuracy", "loss", "n_samples"]
    assert len(evals) == 6 * 5 and evals.after_task.min() == -1
    assert len(summary) == 1
    row = summary.iloc[0]
    assert row.avg_accuracy == pytest.approx(accuracy.iloc[-1].mean())
    assert (row.model, row.stream, row.scenario, row.seed, row.status) == ("mlp", "synthetic", "task", 0, "finished")
    assert (run / ".hydra" / "config.yaml").is_file()
    assert "ACC" in done.stdout


def test_same_seed_same_accuracy_csv(tmp_path):
    first = run_cli("run", *FAST, "seed=3", "hydra.run.dir=a", cwd=tmp_path)
    second = run_cli("run", *FAST, "seed=3", "hydra.run.dir=b", cwd=tmp_path)
    other = run_cli("run", *FAST, "seed=4", "hydra.run.dir=c", cwd=tmp_path)
    assert first.returncode == second.returncode == other.returncode == 0
    assert (tmp_path / "a" / "accuracy.csv").read_bytes() == (tmp_path / "b" / "accuracy.csv").read_bytes()
    assert (tmp_path / "a" / "evals.csv").read_bytes() == (tmp_path / "b" / "evals.csv").read_bytes()
    assert (tmp_path / "a" / "accuracy.csv").read_bytes() != (tmp_path / "c" / "accuracy.csv").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["model=nope"], "model=nope: unknown choice; valid choices are hat, mlp, multitask, packnet, pnn, sparse, transfer"),
    (["stream=nope"], "stream=nope: unknown choice; valid choices are "),
    (["trainer.batch_size=0"], "trainer.batch_size=0: must be at least 1"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be greater than 0"),
    (["trainer.regime=online"],
     "trainer.regime=online: unknown choice; valid choices are sequential, joint, cumulative"),
    (["stream.scenario=instance"], "stream.scenario=instance: unknown choice; valid choices are task, domain, class"),
    (["trainer.bogus=1"], "trainer.bogus: unknown config key; valid keys here are regime, epochs"),
    (["+trainer.epoch=3"], "trainer.epoch: unknown config key; valid keys here are regime, epochs"),
    (["stream=synthetic", "model.activation=mish"], "model.activation=mish: unknown choice; valid choices are relu"),
    (["stream=synthetic", "model.hidden=[0]"], "model.hidden=[0]: every entry must be an integer of at least 1"),
    (["stream=synthetic", "+model.width=3"], "model.width: not a key of this model; its keys are hidden, activation"),
    (["stream=split_mnist", "stream.classes_per_task=3"], "stream.classes_per_task=3: does not divide the 10 classes"),
    (["stream=rotated_mnist", "stream.interpolation=cubic"],
     "stream.interpolation=cubic: unknown choice; valid choices are nearest, bilinear"),
    (["seed=4294967296"], "seed=4294967296: must be an integer in [0, 2**32), that is 0 to 4294967295"),
])
def test_config_errors_name_the_key_and_what_it_can_be(tmp_path, args, message):
    fake_dataset(tmp_path / "data", side=28)
    said, code = refusal(tmp_path / "run", *args, f"data.root={tmp_path / 'data'}")
    assert code == 2 and said.startswith(message) and "\n" not in said, said


@pytest.mark.parametrize("args, message", [
    (["model=nope"], "model=nope: unknown choice; valid choices are hat, mlp, multitask, packnet, pnn, sparse, transfer"),  # Hydra's
    (["+trainer.epoch=3"], "trainer.epoch: unknown config key; valid keys here are regime, epochs"),  # clrelu's guard
])
def test_a_config_error_is_one_line_with_exit_code_2(tmp_path, args, message):
    # the command's side of the cases above: `clrelu: error: <line>`, no trace, exit 2, no run folder
    done = run_cli("run", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"clrelu: error: {message}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_prints_the_composed_config_without_running(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv)  # `clrelu run` hands Hydra its arguments through sys.argv
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # and sets this for its own error handling
    overrides = ["stream=synthetic", "model.hidden=[7]", "strategy=ewc"]
    assert main(["run", "--cfg", "job", *overrides]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    cfg, _ = compose(overrides)
    assert printed == OmegaConf.to_container(cfg)  # as composed, interpolations unresolved (seed: ${seed})
    assert printed["model"]["hidden"] == [7] and printed["stream"]["seed"] == "${seed}"
    assert list(tmp_path.iterdir()) == []  # nothing ran: no run folder, no outputs/


def test_run_help_lists_every_group_and_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", sys.argv)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    assert main(["run", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for group in ("model", "stream", "optimizer", "strategy", "experiment"):
        options = sorted(path.stem for path in (config_dir() / group).glob("*.yaml"))
        assert f"{group}: {', '.join(options)}" in lines
    cfg, _ = compose([])
    def shown(key):
        return any(line.startswith(f"{key}:") for line in lines)

    assert all(shown(key) for key in cfg)  # every top-level key, with its keys below it
    assert all(shown(f"  {key}") for key in cfg.trainer)
    assert list(tmp_path.iterdir()) == []


def test_device_cuda_insists_and_auto_takes_a_gpu_when_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert refusal(tmp_path / "run", "stream=synthetic", "device=cuda") == (
        "device=cuda: no CUDA device is available here; use device=cpu or device=auto", 2)
    assert choose_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto") == choose_device("cuda") == torch.device("cuda")
    assert choose_device("cpu") == torch.device("cpu")


def test_missing_data_is_one_line_with_exit_code_1(tmp_path):
    done = run_cli("run", "stream=split_fmnist", f"data.root={tmp_path / 'empty'}", cwd=tmp_path)
    assert done.returncode == 1
    assert "FashionMNIST is not in" in done.stderr and "train-images-idx3-ubyte.gz" in done.stderr
    assert done.stderr.count("\n") == 1


def test_nan_loss_stops_naming_task_and_step_and_keeps_finished_csvs(tmp_path):
    # A learning rate at float32's limit sends the weights to inf during task 0; task 1's first loss is NaN.
    done = run_cli("run", *FAST, "optimizer.lr=3e38", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("clrelu: error: task 1, step 0: the loss became nan")
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").iloc[0]
    assert summary.status == "failed" and "loss became nan" in summary.error
    accuracy = read_accuracy(tmp_path / "run")
    assert summary.tasks_done == 1 and list(accuracy.index) == [0]  # task 0's complete row, nothing more
    assert not accuracy.iloc[0].isna().any()


def test_run_folder_of_an_earlier_run_is_refused(tmp_path):
    assert run_cli("run", *FAST, "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    before = (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()
    again = run_cli("run", *FAST, "seed=1", "hydra.run.dir=run", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text() == before


def test_help_and_unknown_command(tmp_path):
    assert "usage: clrelu" in run_cli("--help", cwd=tmp_path).stdout
    done = run_cli("fly", cwd=tmp_path)
    assert done.returncode == 2 and "unknown command 'fly'" in done.stderr
    help_text = run_cli("run", "--help", cwd=tmp_path).stdout
    assert "model: " in help_text and "stream: " in help_text
