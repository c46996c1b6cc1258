"""A run's status tells the truth: stopped by Ctrl-C (SIGINT) or SIGTERM it records `interrupted`; killed without a
word (SIGKILL) it is shown as `interrupted` by every reader that finds no live holder of its lock, and `compare`
prints the command that continues it, quoted so that it works as printed."""

import os
import shlex
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from conftest import run_in_process

from clrelu.cli import main
from clrelu.report.load import hydra_quoted, load
from clrelu.rundir.lock import FolderLock

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=2"]
SLOW = [*FAST, "trainer.epochs=60", "trainer.batch_size=10"]  # 600 steps a task: time to send a signal in task 1


def start(folder, cwd) -> subprocess.Popen:
    """`clrelu run` into `folder` (slow tasks), its output piped."""
    return subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", *SLOW,
                             f"hydra.run.dir={hydra_quoted(str(folder))}"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def signal_after_first_task(process, sig) -> tuple[int, str]:
    """Send `sig` to a run once it reports the end of task 0; return its exit code and stderr."""
    for line in process.stdout:
        if line.startswith("after task 0 "):
            process.send_signal(sig)
            break
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def test_sigterm_and_ctrl_c_record_interrupted_and_exit_as_the_signal_would(tmp_path):
    signals = (signal.SIGTERM, signal.SIGINT)
    with ThreadPoolExecutor(2) as pool:  # the two runs side by side, each signalled as soon as it ends task 0
        done = dict(zip(signals, pool.map(lambda sig: signal_after_first_task(start(tmp_path / sig.name, tmp_path),
                                                                              sig), signals)))
    code, err = done[signal.SIGTERM]
    assert code == 128 + signal.SIGTERM
    assert err.count("\n") == 1 and err.startswith("clrelu: interrupted: SIGTERM: stopped by SIGTERM after ")
    assert err.endswith(" of 2 tasks; continue it with resume=true\n")
    code, err = done[signal.SIGINT]
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err
    for sig, reason in ((signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGINT, "stopped by SIGINT (Ctrl-C)")):
        summary = pd.read_csv(tmp_path / sig.name / "summary.csv").iloc[0]
        assert (summary.status, summary.error) == ("interrupted", reason) and summary.tasks_done >= 1


def test_a_killed_run_is_shown_interrupted_and_continues_with_the_command_compare_prints(tmp_path, capsys,
                                                                                        monkeypatch):
    runs = tmp_path / "runs"
    run_in_process(runs / "finished", *FAST)  # beside the killed run, so that compare has a table to print
    folder = runs / "run a=1,b's"  # what Hydra's grammar and the shell both need quoted
    code, _ = signal_after_first_task(start(folder, tmp_path), signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert pd.read_csv(folder / "summary.csv").status.iloc[0] == "running"  # what the killed writer left
    shown = load(runs).set_index("run_dir").status.to_dict()
    assert shown == {str(runs / "finished"): "finished", str(folder): "interrupted"}  # what every reader shows
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(runs)]) == 0
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"left out, not finished: {folder}: interrupted after ") and line.count("\n") == 0, line
    words = shlex.split(line.split("; continue it with: ", 1)[1])
    assert words[:2] == ["clrelu", "run"] and words[-2:] == ["resume=true", f"hydra.run.dir={hydra_quoted(str(folder))}"]
    done = subprocess.run([sys.executable, "-m", "clrelu.cli", *words[1:]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(folder / "summary.csv").status.iloc[0] == "finished"


def test_a_run_whose_writer_lives_is_running(tmp_path):
    run = tmp_path / "runs" / "run"
    run_in_process(run, *FAST)
    summary = pd.read_csv(run / "summary.csv")
    summary.loc[0, "status"] = "running"
    summary.to_csv(run / "summary.csv", index=False)
    lock = FolderLock(run)
    lock.acquire()  # a live process writes into it
    try:
        assert load(tmp_path / "runs").status.tolist() == ["running"]
    finally:
        lock.release()
    assert load(tmp_path / "runs").status.tolist() == ["interrupted"]
    assert os.listdir(run).count(".clrelu.rundir.lock") == 1  # readers probe the lock; they never remove it
