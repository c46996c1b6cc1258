"""Run folders: loading many runs with pandas, and complete CSVs after a kill mid-run."""

import pandas as pd
from conftest import read_accuracy, run_cli, start_and_kill_after

from clrelu.report.load import load

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


def test_load_a_sweep_into_one_frame(tmp_path):
    done = run_cli("run", "-m", *FAST, "seed=0,1", "trainer.epochs=1,2", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    frame = load(tmp_path / "sweep")
    assert len(frame) == 4
    assert sorted(zip(frame.seed, frame["trainer.epochs"])) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert set(frame.model) == {"mlp"} and set(frame.stream) == {"synthetic"} and set(frame.status) == {"finished"}
    assert frame["model.hidden"].iloc[0] == "[32]"
    for row in frame.itertuples():
        accuracy = read_accuracy(tmp_path / row.run_dir)
        assert row.avg_accuracy == accuracy.iloc[-1].mean()
    # the run folders say what they are
    assert {p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()} >= {
        "model.hidden=[32],seed=0,stream.test_per_class=20,stream.train_per_class=50,stream=synthetic,trainer.epochs=1"}


def test_a_killed_run_leaves_complete_csvs_for_finished_tasks(tmp_path):
    start_and_kill_after(tmp_path / "run", 1, *FAST, "trainer.epochs=300", "trainer.batch_size=10")
    accuracy = read_accuracy(tmp_path / "run")
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").iloc[0]
    assert summary.status == "running" and summary.tasks_done >= 2
    assert list(accuracy.index) == list(range(summary.tasks_done))
    assert accuracy.shape[1] == 5 and not accuracy.isna().any().any()
    evals = pd.read_csv(tmp_path / "run" / "evals.csv")
    assert len(evals) == 5 * (summary.tasks_done + 1)
