"""Sweeps: compare, plot, the joblib and submitit launchers, kill and resume, and relaunching a sweep."""

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import read_accuracy, run_cli, run_in_process, start_and_kill_after
from omegaconf import OmegaConf

from clrelu.cli import main
from clrelu.errors import ConfigError
from clrelu.launch.job import job_threads
from clrelu.launch.plan import check_launcher
from clrelu.rundir.guard import check_sweep_folder

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 models x 2 seeds on the synthetic stream."""
    root = tmp_path_factory.mktemp("sweep")
    done = run_cli("run", "-m", *FAST, "model=mlp,sparse", "seed=0,1", "hydra.sweep.dir=sweep", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "sweep"


def test_sweep_folders_say_what_each_run_is(sweep):
    assert (sweep / "multirun.yaml").is_file()
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(names) == 4
    assert ("model.hidden=[32],model=sparse,seed=1,stream.test_per_class=20,stream.train_per_class=50,"
            "stream=synthetic") in names


def test_compare_equals_a_pandas_groupby_of_the_summaries(sweep):
    done = run_cli("compare", str(sweep), "--format", "csv", cwd=sweep.parent)
    assert done.returncode == 0, done.stderr
    shown = pd.read_csv(io.StringIO(done.stdout)).set_index("model")
    summaries = pd.concat([pd.read_csv(p) for p in sweep.rglob("summary.csv")])
    expected = summaries.groupby("model")
    for metric in ("avg_accuracy", "avg_forgetting", "bwt", "fwt", "train_seconds"):
        pd.testing.assert_series_equal(shown[f"{metric}_mean"], expected[metric].mean(), check_names=False)
        pd.testing.assert_series_equal(shown[f"{metric}_std"], expected[metric].std(), check_names=False)
    assert (shown.n_seeds == 2).all()
    assert list(shown.index) == ["mlp", "sparse"]  # seed is not a grouping key; model is the only one that varies
    assert pd.read_csv(sweep.parent / "compare.csv").equals(pd.read_csv(io.StringIO(done.stdout)))
    assert not (sweep / "compare.csv").exists()  # compare never writes into what it reads
    table = run_cli("compare", str(sweep), cwd=sweep.parent).stdout
    assert "±" in table and "sparse" in table


def test_compare_reports_and_leaves_out_unfinished_runs(sweep, tmp_path):
    killed = tmp_path / "killed"
    start_and_kill_after(killed, 0, *FAST, "model=sparse", "trainer.epochs=300", "trainer.batch_size=10")
    done = run_cli("compare", str(sweep), str(killed), "--format", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"left out, not finished: {killed}: interrupted after " in done.stderr  # killed: nobody holds its lock
    shown = pd.read_csv(io.StringIO(done.stdout)).set_index("model")
    assert shown.loc["sparse", "n_runs"] == 2  # the killed sparse run is not in the mean


def test_compare_errors_are_one_line(sweep, tmp_path):
    for args, message in ((["nowhere"], "nowhere: no such file or folder"),
                          ([str(tmp_path)], "no runs under"),
                          ([str(sweep), "--by", "colour"], "--by colour: not a column of these runs"),
                          ([str(sweep), "--format", "xml"], "argument --format: invalid choice")):
        done = run_cli("compare", *args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_plot_of_a_run_and_of_a_sweep(sweep, tmp_path):
    import matplotlib.image

    from clrelu.report.plot import run_figure, sweep_figure

    run = next(p for p in sweep.iterdir() if p.is_dir())
    done = run_cli("plot", str(run), "--out", str(tmp_path / "run.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    image = matplotlib.image.imread(tmp_path / "run.png")
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.shape[0] > 300 and image.shape[1] > 600
    # heatmap, its colour bar, accuracy curves; the diagnostics: sparsity and overlap over tasks; the plasticity
    # measures: online accuracy, dead and dormant units, ranks, weight magnitude
    assert len(run_figure(run).axes) == 9
    done = run_cli("plot", str(sweep), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    image = matplotlib.image.imread(tmp_path / "sweep.png")  # in the working directory, named after the folder
    assert image.shape[0] > 300 and image.shape[1] > 600
    figure = sweep_figure(sweep)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:3] == ["mean accuracy on the tasks seen so far", "mean hidden-layer sparsity",
                          "mean Jaccard of task-active units"]
    assert {"dead units (mean over layers)", "effective rank (mean over layers)"} <= set(titles)
    assert all(len(ax.get_lines()) == 2 for ax in figure.axes if ax.get_title())  # one curve per model


def test_job_threads_share_the_cores():
    cores = __import__("os").cpu_count()
    joblib = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"})
    assert job_threads(OmegaConf.merge(joblib, {"n_jobs": 2})) == max(1, cores // 2)
    assert job_threads(OmegaConf.merge(joblib, {"n_jobs": -1})) == 1
    submitit = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"})
    assert job_threads(OmegaConf.merge(submitit, {"cpus_per_task": None})) == 1
    assert job_threads(OmegaConf.merge(submitit, {"cpus_per_task": 4})) == 4
    assert job_threads(OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})) == 0


SLOW_3 = [*FAST, "model=sparse", "stream.n_tasks=3", "trainer.epochs=150", "trainer.batch_size=10"]


def test_a_killed_run_resumes_to_the_same_csvs(tmp_path):
    whole = run_cli("run", *SLOW_3, "hydra.run.dir=whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    start_and_kill_after(tmp_path / "cut", 1, *SLOW_3)
    assert read_accuracy(tmp_path / "cut").index.max() < 2
    refused = run_cli("run", *SLOW_3, "hydra.run.dir=cut", cwd=tmp_path)
    assert refused.returncode == 2 and "already holds a run; add resume=true" in refused.stderr
    other = run_cli("run", *SLOW_3, "seed=5", "hydra.run.dir=cut", "resume=true", cwd=tmp_path)
    assert other.returncode == 2 and "resume=true: seed was 0 in that run and is 5 now" in other.stderr
    resumed = run_cli("run", *SLOW_3, "hydra.run.dir=cut", "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after" in resumed.stdout
    for name in ("accuracy.csv", "forgetting.csv", "evals.csv", "model_stats.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    again = run_cli("run", *SLOW_3, "hydra.run.dir=cut", "resume=true", cwd=tmp_path)
    assert again.returncode == 2 and "has finished; there is nothing to resume" in again.stderr


def test_a_relaunched_sweep_skips_finished_runs_and_resumes_the_others(tmp_path):
    args = [*SLOW_3, "seed=0,1", "hydra.sweep.dir=sweep"]
    first = run_cli("run", "-m", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    folders = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    finished, cut = folders
    overrides = OmegaConf.load(cut / ".hydra" / "overrides.yaml")
    shutil.rmtree(cut)
    start_and_kill_after(cut, 0, *overrides)  # the seed=1 run again, killed after its first task
    kept = {p.name: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}

    refused = run_cli("run", "-m", *args, cwd=tmp_path)
    assert refused.returncode == 2 and "already holds a run; add skip_finished=true" in refused.stderr
    relaunched = run_cli("run", "-m", *args, "skip_finished=true", cwd=tmp_path)
    assert relaunched.returncode == 0, relaunched.stderr
    assert "skipping 1 finished run(s) of 2" in relaunched.stdout + relaunched.stderr
    assert {p.name: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == kept  # not touched
    assert pd.read_csv(cut / "summary.csv").status.iloc[0] == "finished"
    assert "resuming after" in (cut / "run.log").read_text()


def copy_of(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    return copy


def test_compare_leaves_out_damaged_runs_naming_the_file(sweep, tmp_path, capsys, monkeypatch):
    copy = copy_of(sweep, tmp_path)
    runs = sorted(p for p in copy.iterdir() if p.is_dir())
    (runs[0] / "summary.csv").write_bytes(b"\x00\xff binary")
    (runs[1] / ".hydra" / "config.yaml").write_text("model: mlp\n  seed: [unclosed\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compare.csv").mkdir()  # cannot be written
    assert main(["compare", str(copy), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert pd.read_csv(io.StringIO(out)).n_runs.sum() == 2  # the two intact runs
    lines = err.splitlines()
    assert lines[0].startswith(f"left out: {runs[0] / 'summary.csv'}: cannot be read (")
    assert lines[1].startswith(f"left out: {runs[1] / '.hydra' / 'config.yaml'}: cannot be read as YAML")
    assert lines[2].startswith("clrelu: warning: compare.csv (the default output of this command): exists, and is "
                               "not a comparison table clrelu wrote")
    assert len(lines) == 3 and "Traceback" not in err


def test_plot_output_errors_are_one_line_and_the_path_printed_is_the_path_written(sweep, tmp_path, capsys):
    run = next(p for p in sweep.iterdir() if p.is_dir())
    for out, message in ((tmp_path / "missing" / "a.png", f"--out {tmp_path / 'missing' / 'a.png'}: no such folder"),
                         (tmp_path / "a.xyz", (f"--out {tmp_path / 'a.xyz'}: cannot write the format 'xyz'; use one "
                                               "of avif, eps, gif, jpeg"))):
        assert main(["plot", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"clrelu: error: {message}") and err.count("\n") == 1, err
    assert main(["plot", str(run), "--out", str(tmp_path / "figure")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'figure.png'}\n"
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG") and not (tmp_path / "figure").exists()
    copy = copy_of(sweep, tmp_path)
    damaged = min(p for p in copy.iterdir() if p.is_dir())
    (damaged / "accuracy.csv").write_text("nonsense\n")
    assert main(["plot", str(copy), "--out", str(tmp_path / "sweep.svg")]) == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'sweep.svg'}\n" and (tmp_path / "sweep.svg").is_file()
    assert err.startswith(f"left out: {damaged / 'accuracy.csv'}: cannot be read as CSV (")
    assert err.count("\n") == 1


def test_the_sweeper_refuses_other_folders_and_a_launcher_without_jobs(tmp_path):
    run_in_process(tmp_path / "run", *FAST)
    with pytest.raises(ConfigError, match=f"^hydra.sweep.dir={tmp_path / 'run'}: holds a single run, not a sweep"):
        check_sweep_folder(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^hydra.sweep.dir=.*mine: holds files that are not a clrelu run's \(notes"):
        check_sweep_folder(tmp_path / "mine")
    launcher = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                                 "n_jobs": 0})
    with pytest.raises(ConfigError, match=r"^hydra.launcher.n_jobs=0: must be the number of jobs to run at once"):
        check_launcher(launcher)


def test_job_numbers_as_folder_names_survive_skipping(tmp_path):
    args = ["run", "-m", *FAST, "seed=0,1", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=${hydra.job.num}"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    shutil.rmtree(tmp_path / "sweep" / "1")
    kept = {p: p.read_bytes() for p in (tmp_path / "sweep" / "0").rglob("*") if p.is_file()}
    relaunched = run_cli(*args, "skip_finished=true", cwd=tmp_path)
    assert relaunched.returncode == 0, relaunched.stderr
    assert "skipping 1 finished run(s) of 2" in relaunched.stdout + relaunched.stderr
    assert pd.read_csv(tmp_path / "sweep" / "1" / "summary.csv").seed.iloc[0] == 1  # the second job, in its folder
    assert {p: p.read_bytes() for p in (tmp_path / "sweep" / "0").rglob("*") if p.is_file()} == kept
    (tmp_path / "sweep" / "0" / "summary.csv").write_text("avg_accuracy\n")
    damaged = run_cli(*args, "skip_finished=true", cwd=tmp_path)
    assert damaged.returncode == 2 and damaged.stderr == (
        "clrelu: error: sweep/0/summary.csv: not a clrelu summary (it must hold a header and one row, as every run "
        "writes)\n")


def test_group_labels_leave_out_keys_a_run_does_not_set():
    from clrelu.report.compare import group_runs

    # two sweeps loaded together: one over strategies, one over activations (the other key absent, NaN)
    frame = pd.DataFrame({"strategy": ["naive", "cbp", "naive"], "model.activation": [None, None, "crelu"],
                          "seed": [0, 0, 0]})
    assert [label for label, _ in group_runs(frame, None)[0]] == [
        "strategy=cbp", "strategy=naive, model.activation=crelu", "strategy=naive"]


def test_group_labels_name_what_sets_a_group_apart():
    from clrelu.report.compare import group_runs, varying_keys

    # the plasticity study's shape: a sweep over strategies (each with keys of its own), one over activations, one
    # run of another width; strategy._target_ and a strategy's own key follow from the strategy, so they group nothing
    frame = pd.DataFrame({
        "strategy": ["naive", "cbp", "redo", "naive", "naive", "naive"],
        "model.hidden": ["[100, 100]"] * 5 + ["[91, 91]"],
        "model.activation": ["relu", "relu", "relu", "tanh", "crelu", "crelu"],
        "strategy._target_": ["Naive", "CBP", "ReDo", "Naive", "Naive", "Naive"],
        "strategy.tau": [None, None, 0.025, None, None, None],
        "seed": [0] * 6})
    assert varying_keys(frame) == ["strategy", "model.hidden", "model.activation"]
    assert [label for label, _ in group_runs(frame, None)[0]] == [
        "strategy=cbp", "strategy=naive, model.activation=crelu", "strategy=naive",
        "strategy=naive, model.activation=tanh", "strategy=naive, model.hidden=[91, 91], model.activation=crelu",
        "strategy=redo"]
    # keys chosen with --by are named in every label; two values as common as each other are both named
    assert [label for label, _ in group_runs(frame, ["model.hidden"])[0]] == [
        "model.hidden=[100, 100]", "model.hidden=[91, 91]"]
    pair = pd.DataFrame({"strategy": ["naive", "naive"], "model.activation": ["relu", "tanh"], "seed": [0, 1]})
    assert [label for label, _ in group_runs(pair, None)[0]] == ["model.activation=relu", "model.activation=tanh"]


def test_long_curves_are_drawn_as_the_means_of_equal_bins():
    from clrelu.report.plot import binned

    curve = pd.Series([float(t % 5) for t in range(500)], index=range(500))
    drawn = binned(curve)
    assert len(drawn) == 100 and drawn.index[0] == 2.0 and drawn.index[-1] == 497.0
    assert (drawn == 2.0).all()  # every bin holds 0, 1, 2, 3, 4
    assert binned(curve.iloc[:80]).equals(curve.iloc[:80])


def test_a_sweep_plot_draws_the_tasks_a_thinned_schedule_evaluated(tmp_path):
    from clrelu.report.plot import sweep_figure

    for seed in (0, 1):
        run_in_process(tmp_path / f"seed={seed}", *FAST, f"seed={seed}", "eval.every=2", "eval.tasks=current")
    panels = {ax.get_title(): ax for ax in sweep_figure(tmp_path).axes}
    (line,) = panels["accuracy on the task just learned (R[i, i])"].get_lines()
    assert list(line.get_xdata()) == [1, 3, 4]  # after tasks 1 and 3 (every 2nd), and after the last
    assert not np.isnan(line.get_ydata()).any()
    (line,) = panels["mean accuracy on the tasks seen so far"].get_lines()
    assert list(line.get_xdata()) == [4]  # the only evaluation of every task seen
