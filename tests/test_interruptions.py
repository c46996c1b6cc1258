"""A run stopped at any instant can be continued or relaunched without deleting anything by hand: a kill at every
write of a run leaves a folder that is resumable, finished, or recognisably empty of results; Ctrl-C during
start-up is one line and exit code 130; runs launched at once never share a folder."""

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from clrelu.cli import run_command
from clrelu.rundir import contents as runfolder
from clrelu.rundir import files

ONE_TASK = ["stream=synthetic", "stream.n_tasks=1", "model.hidden=[8]", "stream.train_per_class=10",
            "stream.test_per_class=5", "diagnostics.enabled=false", "plasticity.enabled=false"]
COMPARED = ("accuracy.csv", "forgetting.csv", "evals.csv", "online.csv")


class Killed(BaseException):
    """A kill -9 at a write: no handler of clrelu's runs (only `finally` clauses, as the kernel drops the lock)."""


def target(args) -> Path:
    """The file a write function was asked to write (write_atomically(path, ...) or (folder, name, ...))."""
    return Path(args[0]) / args[1] if len(args) > 1 and isinstance(args[1], str) else Path(args[0])


@contextlib.contextmanager
def killed_at(k: int, half_done: bool, monkeypatch):
    """Kill the run at its k-th write (0-based): before it starts, or with it half done (a temporary file of an
    atomic write left behind, or half a line appended)."""
    seen = []

    def wrap(original, appends):
        def write(*args, **kwargs):
            if len(seen) == k:
                path = target(args)
                if half_done and appends:
                    with open(path, "ab") as handle:
                        handle.write(b"0,0.5")
                elif half_done:  # (a write into .hydra/ creates that folder first)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.with_name(f".{path.name}.99999.tmp").write_bytes(b"half")
                raise Killed(path.name)
            seen.append(target(args).name)
            return original(*args, **kwargs)
        return write

    for module in [m for name, m in sys.modules.items() if name.startswith("clrelu")]:
        for name, appends in (("write_atomically", False), ("append_csv", True)):
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, wrap(getattr(module, name), appends))
    real_remove = files.remove

    def remove(folder, name):
        if name == "checkpoint.pt":
            if len(seen) == k:
                raise Killed(name)
            seen.append("remove checkpoint.pt")
        return real_remove(folder, name)

    monkeypatch.setattr(files, "remove", remove)
    monkeypatch.setattr("clrelu.launch.job.runfolder.remove_created", lambda folder, before: None)
    yield seen


def test_a_kill_at_any_write_leaves_a_run_that_resumes_or_relaunches_to_the_same_csvs(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    with pytest.MonkeyPatch.context() as patch, killed_at(10**6, False, patch) as writes:
        assert run_command([*ONE_TASK, f"hydra.run.dir={whole}"]) == 0
    assert len(writes) >= 15 and writes[:3] == ["config.yaml", "hydra.yaml", "overrides.yaml"], writes
    half_done = {writes.index(name) for name in ("config.yaml", "accuracy.csv", "checkpoint.pt")}
    kinds = set()
    for k in range(len(writes)):
        for half in (False, True) if k in half_done else (False,):
            folder = tmp_path / f"killed_{k}_{half}"
            with pytest.MonkeyPatch.context() as patch, killed_at(k, half, patch):
                with pytest.raises(Killed):
                    run_command([*ONE_TASK, f"hydra.run.dir={folder}"])
            kind = runfolder.inspect(folder).kind
            kinds.add(kind)
            plain = run_command([*ONE_TASK, f"hydra.run.dir={folder}"])
            if kind == runfolder.UNFINISHED:
                assert plain == 2 and run_command([*ONE_TASK, f"hydra.run.dir={folder}", "resume=true"]) == 0
            elif kind == runfolder.FINISHED:
                assert plain == 2
            else:
                assert kind in (runfolder.NEW, runfolder.EMPTY, runfolder.STARTED) and plain == 0, (k, half, kind)
            assert pd.read_csv(folder / "summary.csv").status.iloc[0] == "finished"
            for name in COMPARED:
                assert (folder / name).read_bytes() == (whole / name).read_bytes(), (k, half, name)
    # the lock comes before any write: a kill leaves a locked folder without results (empty or started), or a run
    assert {runfolder.STARTED, runfolder.UNFINISHED, runfolder.FINISHED} <= kinds <= {
        runfolder.EMPTY, runfolder.STARTED, runfolder.UNFINISHED, runfolder.FINISHED}


@pytest.mark.parametrize("delay", [0.4, 0.8, 1.5, 2.5])
def test_ctrl_c_during_start_up_is_one_line_and_exit_code_130(tmp_path, delay):
    process = subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", *ONE_TASK, "trainer.epochs=50",
                                "hydra.run.dir=run"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    # 130, or an end by the SIGINT itself when it lands as the interpreter exits: a shell's $? is 130 for both
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, err)
    assert err.count("\n") == 1 and err.startswith("clrelu: interrupted"), err
    assert not (tmp_path / "run").exists() or runfolder.inspect(tmp_path / "run").kind != runfolder.FOREIGN


def test_eight_runs_launched_at_once_finish_into_eight_folders(tmp_path):
    processes = [subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", *ONE_TASK, f"seed={i % 2}"],
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in range(8)]
    errors = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 8, errors
    folders = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(folders) == 8 and all("_mlp_synthetic_naive_seed" in f.name for f in folders)
    assert all(pd.read_csv(f / "summary.csv").status.iloc[0] == "finished" for f in folders)
    assert run_cli("compare", str(tmp_path / "outputs" / "runs"), cwd=tmp_path).returncode == 0
