"""Any Hydra sweeper and launcher keeps clrelu's guarantees: Optuna tunes on validation data and its job folders are
claimed like any run's; the joblib, submitit and ray launchers run a sweep whose relaunch skips the finished runs
(leaving their files as they were) and resumes the unfinished one. Each needs its plugin (a clrelu extra)."""

import hashlib
import importlib.util
import shutil

import pandas as pd
import pytest
import yaml
from conftest import crash_during_task, run_cli
from omegaconf import OmegaConf

TINY = ["stream=synthetic", "stream.n_tasks=2", "model.hidden=[8]", "stream.train_per_class=20",
        "stream.test_per_class=10", "diagnostics.enabled=false", "plasticity.enabled=false"]


def needs(plugin: str, extra: str):
    return pytest.mark.skipif(importlib.util.find_spec(f"hydra_plugins.{plugin}") is None,
                              reason=f"needs clrelu's '{extra}' extra: pip install 'clrelu[{extra}]'")


def hashes(folders) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file()}


def job_folders(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))  # not .submitit


@needs("hydra_optuna_sweeper", "optuna")
def test_optuna_tunes_on_validation_data_and_its_jobs_are_claimed_like_any_run(tmp_path):
    args = ["run", "-m", "hydra/sweeper=optuna", *TINY, "strategy=ewc", "stream.validation=0.25",
            "strategy.ewc_lambda=tag(log,interval(0.1,1000))", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=0", "hydra.sweep.dir=sweep"]
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "sweep"
    folders = job_folders(sweep)
    summaries = pd.concat([pd.read_csv(f / "summary.csv") for f in folders])
    assert len(folders) == 4 and (summaries.evaluated_on == "validation").all()
    assert (summaries.status == "finished").all()
    for folder in folders:  # evaluated on a quarter of each task's 40 training samples, never on the 20 test ones
        assert set(pd.read_csv(folder / "evals.csv").n_samples) == {10}
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(summaries.avg_accuracy.max())
    runs = hashes(folders)
    refused = run_cli(*args, cwd=tmp_path)  # the same trials again: their folders hold runs
    assert refused.returncode == 2 and "already holds a run; add skip_finished=true" in refused.stderr
    again = run_cli(*args, "skip_finished=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert hashes(folders) == runs and job_folders(sweep) == folders  # skipped, untouched, each returned its value
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == best["best_value"]


LAUNCHERS = {
    "joblib": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "hydra_joblib_launcher", "joblib"),
    "submitit_local": (["hydra/launcher=submitit_local"], "hydra_submitit_launcher", "submitit"),
    "ray": (["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
             "+hydra.launcher.ray.init.include_dashboard=false"], "hydra_ray_launcher", "ray"),
}


@pytest.mark.parametrize("launcher", [pytest.param(name, marks=[needs(plugin, extra)] + ([pytest.mark.ray] if name == "ray" else []))
                                      for name, (_, plugin, extra) in LAUNCHERS.items()])
def test_each_launcher_runs_a_sweep_whose_relaunch_skips_and_resumes(tmp_path, launcher):
    args = ["run", "-m", *TINY, "seed=0,1,2,3", *LAUNCHERS[launcher][0], "hydra.sweep.dir=sweep"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    folders = job_folders(tmp_path / "sweep")
    assert len(folders) == 4
    gone, cut, *finished = folders
    shutil.rmtree(gone)
    overrides = list(OmegaConf.load(cut / ".hydra" / "overrides.yaml"))
    shutil.rmtree(cut)
    crash_during_task(cut, 1, *overrides)  # unfinished, with the checkpoint of its first task
    kept = hashes(finished)
    again = run_cli(*args, "skip_finished=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert hashes(finished) == kept
    assert "resuming after 1 of 2 tasks" in (cut / "run.log").read_text()
    for folder in folders:
        assert pd.read_csv(folder / "summary.csv").status.iloc[0] == "finished"
