"""The Python API: clrelu.run goes through the command's own checks, folder guard, lock and files and returns the
run's result; clrelu.load reads runs with every key of their config; the example script runs; import stays light."""

import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import clrelu
from clrelu.errors import ConfigError
from clrelu.report import compare

FAST = ["stream=synthetic", "model.hidden=[16]", "stream.train_per_class=20", "stream.test_per_class=10",
        "plasticity.probe_size=50"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python_api.py"


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_writes_what_the_command_writes_and_never_overwrites_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handlers, argv = logging.getLogger().handlers[:], sys.argv[:]
    result = clrelu.run(FAST, folder="run")
    assert result.folder == tmp_path / "run" and result.summary["status"] == "finished"
    assert {"accuracy.csv", "evals.csv", "summary.csv", "run.log", "model.pt"} <= set(result.files)
    assert result.files["accuracy.csv"] == tmp_path / "run" / "accuracy.csv"
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file() and "ACC" in (tmp_path / "run" / "run.log").read_text()
    assert logging.getLogger().handlers == handlers and sys.argv == argv  # the run's log handlers are gone
    before = contents(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a run, which has finished"):
        clrelu.run([*FAST, "seed=3"], folder="run")
    assert contents(tmp_path / "run") == before
    with pytest.raises(ConfigError, match="stream=synthetc: unknown choice"):
        clrelu.run(["stream=synthetc"], folder="other")
    assert not (tmp_path / "other").exists()
    with pytest.raises(TypeError, match="list of strings"):
        clrelu.run("stream=synthetic")
    with pytest.raises(ConfigError, match="-m: takes overrides"):
        clrelu.run(["-m", "seed=0,1"])


def test_loaded_runs_carry_their_whole_config(tmp_path):
    default = clrelu.run(FAST, folder=tmp_path / "default")
    other_seed = clrelu.run([*FAST, "seed=1"], folder=tmp_path / "seed1")
    changed = clrelu.run([*FAST, "stream.n_tasks=3", "trainer.iters=2"], folder=tmp_path / "changed")
    frame = clrelu.load([default, other_seed, changed]).runs
    assert frame.set_index("seed").loc[0, "stream.n_tasks"].tolist() == [5, 3]  # the default is there, not NaN
    assert frame.groupby("stream.n_tasks").ngroups == 2 and frame.groupby("trainer.iters").ngroups == 2
    assert sorted(frame["trainer.iters"].astype(str)) == ["2", "null", "null"]
    assert frame["model.hidden"].tolist() == ["[16]"] * 3 and frame["stream.seed"].tolist() == [0, 1, 0]
    assert not frame.filter(like="stream.").isna().any().any()
    table = compare.compare(compare.load_runs([str(tmp_path)], []))  # grouped by what varies, not by the seed
    assert table[["stream.n_tasks", "n_runs", "n_seeds"]].values.tolist() == [[3, 1, 1], [5, 2, 2]]
    assert clrelu.load(tmp_path).evals.groupby("run_dir").size().sort_values().tolist() == [3 * 4, 5 * 6, 5 * 6]


def test_the_example_script_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *FAST])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "average accuracy" in out and "after_task" in out and "synthetic" in out
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 1


def test_import_is_light_and_the_api_is_public():
    code = ("import sys, clrelu; heavy = [m for m in ('torch', 'pandas', 'hydra', 'clrelu.api') if m in sys.modules];"
            "print(heavy, clrelu.__all__, callable(clrelu.run), (Path := __import__('pathlib').Path)"
            "(clrelu.__file__).with_name('py.typed').is_file())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(clrelu.__file__).parents[1])})
    assert done.stdout.split("\n")[0] == "[] ['Results', 'RunResult', '__version__', 'load', 'run'] True True"
    for name in ("run", "load"):
        assert getattr(clrelu, name).__doc__
