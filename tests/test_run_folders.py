"""Run folders: the guard refuses foreign, damaged and busy folders before anything is written and fails
closed; a refused config removes only what its process created; one writer per folder; full and
read-only disks give one line, mark the run failed and leave no temporary file."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli, run_in_process

import clrelu.rundir.files
from clrelu.cli import run_command
from clrelu.errors import ClreluError, RunError, report
from clrelu.launch.plan import plan
from clrelu.rundir import contents as runfolder
from clrelu.rundir.lock import LOCK_FILE, FolderLock

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20"]


def guard(folder: Path, *overrides: str, capsys) -> tuple[int, str]:
    """What the entry point's checks of `clrelu run <overrides> hydra.run.dir=<folder>` do, before Hydra starts:
    (exit code or 0, stderr). A run they let through is released at once."""
    try:
        plan([*FAST, *overrides, f"hydra.run.dir={folder}"], multirun=False).release()
    except ClreluError as exc:
        report(str(exc))
        return exc.exit_code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("clrelu: error: "), stderr
    return stderr[len("clrelu: error: "):-1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "run"
    run_in_process(folder, *FAST)
    return folder


@pytest.mark.parametrize("summary", [b"", b"\x00\x9f\x92\x96 binary \xff", b"avg_accuracy,status\n",
                                     b"model,stream,seed,n_tasks,tasks_done,status\nmlp,synthetic,0,5,2,sleeping\n"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_damaged_summary_refuses_the_run_and_leaves_every_file_byte_identical(finished_run, tmp_path, capsys,
                                                                                summary, resume):
    folder = tmp_path / "run"
    folder.mkdir()
    for name, content in files_of(finished_run).items():
        (folder / name).write_bytes(content)
    (folder / "summary.csv").write_bytes(summary)
    before = files_of(folder)
    code, err = guard(folder, f"resume={str(resume).lower()}", capsys=capsys)
    assert code == 2 and one_line(err).startswith(f"{folder / 'summary.csv'}: ")
    assert files_of(folder) == before


@pytest.mark.parametrize("contents", [
    {"accuracy.csv": b"after_task,0\n0,0.5\n", "notes.txt": b"my own"},  # a user's own results
    {"run.log": b"mine", ".hydra/notes.txt": b"mine"},  # looks like a run's start, is not
    {"multirun.yaml": b"hydra:\n  sweeper:\n    _target_: hydra_plugins.clrelu_sweeper.clrelu_sweeper.ClreluSweeper\n",
     "0/summary.csv": b"..."},  # a sweep folder (of clrelu 0.1) given to a single run
    {"multirun.yaml": b"hydra: {}\n", LOCK_FILE: b"", "0/summary.csv": b"..."},  # a sweep folder given to a single run
])
def test_foreign_folders_are_refused_before_anything_is_written(tmp_path, capsys, contents):
    for name, content in contents.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    before = files_of(tmp_path)
    code, err = guard(tmp_path, capsys=capsys)
    message = one_line(err)
    assert code == 2 and message.startswith(f"hydra.run.dir={tmp_path}: holds "), message
    assert ("holds a sweep" if "multirun.yaml" in contents else "not a clrelu run's") in message
    assert files_of(tmp_path) == before and (tmp_path / LOCK_FILE).exists() == (LOCK_FILE in contents)


def test_the_guard_fails_closed(tmp_path, capsys, monkeypatch):
    def broken(folder):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(runfolder, "inspect", broken)
    assert run_command([*FAST, f"hydra.run.dir={tmp_path / 'run'}"]) == 1
    assert one_line(capsys.readouterr().err).startswith("RuntimeError: unexpected")
    assert not (tmp_path / "run").exists()


def test_typos_and_seeds_out_of_range_are_refused_before_anything_is_written(tmp_path, capsys):
    for overrides, message in ((["+trainer.epoch=3"], ("trainer.epoch: unknown config key; valid keys here are regime, "
                                                       "epochs, iters, batch_size, eval_batch_size")),
                               (["+foo=1"], "foo: unknown config key; valid keys here are "),
                               (["seed=4294967296"], "seed=4294967296: must be an integer in [0, 2**32)"),
                               (["seed=99999999999999999999999"], "seed=99999999999999999999999: must be an integer in"),
                               (["stream.seed=-1"], "stream.seed=-1: must be an integer in [0, 2**32)")):
        code, err = guard(tmp_path / "run", *overrides, capsys=capsys)
        assert code == 2 and one_line(err).startswith(message), err
        assert not (tmp_path / "run").exists()
    assert run_in_process(tmp_path / "edge", *FAST, "seed=4294967295", "stream.n_tasks=2").status == "finished"


def test_runs_are_let_into_new_empty_and_their_own_folders_only(finished_run, tmp_path, capsys):
    assert guard(tmp_path / "new", capsys=capsys) == (0, "")
    assert (tmp_path / "new" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    code, err = guard(finished_run, capsys=capsys)
    assert code == 2 and one_line(err) == f"hydra.run.dir={finished_run}: already holds a run, which has finished; " \
                                          "choose another folder"
    code, err = guard(finished_run, "resume=true", capsys=capsys)
    assert code == 2 and "has finished; there is nothing to resume" in err


def test_a_refused_config_removes_only_what_its_process_created(finished_run, tmp_path):
    # clrelu run hydra.run.dir=. used to delete the working directory
    done = run_cli("run", *FAST, "hydra.run.dir=.", "trainer.epochs=0", cwd=tmp_path)
    assert done.returncode == 2 and one_line(done.stderr) == "trainer.epochs=0: must be at least 1"
    assert tmp_path.is_dir() and not list(tmp_path.iterdir())
    # in-process, the same sequence in a folder that holds something: a started run's own files stay
    folder = tmp_path / "started"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / LOCK_FILE).write_text("")
    before = runfolder.snapshot(folder)
    for name in ("run.log", ".hydra/hydra.yaml", ".hydra/overrides.yaml"):  # what Hydra writes next
        (folder / name).write_text("new")
    runfolder.remove_created(folder, before)
    assert runfolder.snapshot(folder) == before
    # and nothing at all when the run wrote anything else
    (folder / "run.log").write_text("new")
    (folder / "summary.csv").write_text("a,b\n1,2\n")
    runfolder.remove_created(folder, before)
    assert (folder / "run.log").exists()


def test_one_writer_per_folder_and_stale_locks_are_taken_over(tmp_path, capsys):
    holder = FolderLock(tmp_path / "run")
    holder.acquire()
    code, err = guard(tmp_path / "run", capsys=capsys)
    assert code == 2 and one_line(err) == (f"{tmp_path / 'run'}: another clrelu process (pid {os.getpid()}) is "
                                           "writing into this folder; wait until it ends or stop it, then try again")
    holder.release()
    (tmp_path / "run" / LOCK_FILE).write_text("999999999\n")  # the lock file of a process that died
    assert guard(tmp_path / "run", capsys=capsys) == (0, "")


def test_a_second_process_is_refused_while_the_first_finishes(tmp_path):
    first = subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", *FAST, "hydra.run.dir=run"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in first.stdout:
        if line.startswith("initial"):
            first.send_signal(signal.SIGSTOP)  # held still while the second one tries, however slow this machine is
            break
    second = run_cli("run", *FAST, "hydra.run.dir=run", cwd=tmp_path)
    first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert second.returncode == 2
    assert one_line(second.stderr) == (f"run: another clrelu process (pid {first.pid}) is writing into this folder; "
                                       "wait until it ends or stop it, then try again")
    assert first.returncode == 0, err
    assert pd.read_csv(tmp_path / "run" / "summary.csv").status.iloc[0] == "finished"
    assert (tmp_path / "run" / "run.log").read_text().count("initial ") == 1


def test_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    # (tests run as root, for whom chmod does not make a folder read-only: the file system's answer is simulated)
    real_open = os.open

    def read_only(path, flags, *mode, **options):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, *mode, **options)

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    code, err = guard(tmp_path / "run", capsys=capsys)
    assert code == 2 and one_line(err) == f"{tmp_path / 'run'}: cannot write into this folder (Read-only file system)"
    assert not list((tmp_path / "run").iterdir())


def test_a_full_disk_marks_the_run_failed_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    original = clrelu.rundir.files.write_atomically
    written = []

    def full_after_task_1(folder, name, write):
        if name == "checkpoint.pt" and len(written) == 3:  # the checkpoints after init, task 0 and task 1
            def partly(handle):
                handle.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original(folder, name, partly)
        if name == "checkpoint.pt":
            written.append(name)
        return original(folder, name, write)

    monkeypatch.setattr("clrelu.rundir.files.write_atomically", full_after_task_1)
    with pytest.raises(RunError) as failed:
        run_in_process(tmp_path, *FAST)
    assert str(failed.value) == f"{tmp_path / 'checkpoint.pt'}: cannot be written (No space left on device)"
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert summary.status == "failed" and "checkpoint.pt: cannot be written (No space left on device)" in summary.error
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert summary.tasks_done == 3  # the record of task 2 is kept; the checkpoint of task 1 is intact
    # a kill in the middle of a write leaves its temporary file: the resumed run removes it and finishes
    (tmp_path / f".accuracy.csv.{os.getpid() + 1}.tmp").write_text("half")
    monkeypatch.undo()
    run_in_process(tmp_path, *FAST, "resume=true")
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert pd.read_csv(tmp_path / "summary.csv").status.iloc[0] == "finished"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_sweep_jobs_stop_and_the_relaunch_runs_each_job_once(tmp_path):
    # three tasks of about a second each: a job that started first must not finish before the kill
    slow = [*FAST, "model=sparse", "stream.n_tasks=3", "trainer.epochs=200", "trainer.batch_size=10", "seed=0,1",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep"]
    sweep = subprocess.Popen([sys.executable, "-m", "clrelu.cli", "run", "-m", *slow], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = []
    while len(logs) < 2 or not any("after task 0 " in log.read_text() for log in logs):
        assert sweep.poll() is None, "the sweep ended before it could be killed"
        logs = list((tmp_path / "sweep").glob("*/run.log"))
        time.sleep(0.1)
    workers = [int((log.parent / LOCK_FILE).read_text()) for log in logs]
    assert os.getpid() not in workers and sweep.pid not in workers and all(alive(pid) for pid in workers)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    # the jobs stop with their sweep (joblib's workers would not): each watches it every half second, which on this
    # shared machine (load 10 to 15) stopped them 0.6 to 1.7 s after the kill; they would need seconds to finish
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the jobs outlived their sweep"
        time.sleep(0.05)
    for log in logs:  # stopped by their watch, not by the end of their work
        assert f"the sweep that started this job (pid {sweep.pid}) has ended; stopping the job" in log.read_text()
    relaunched = run_cli("run", "-m", *slow, "skip_finished=true", cwd=tmp_path)
    assert relaunched.returncode == 0, relaunched.stderr
    texts = [log.read_text() for log in logs]
    assert any("resuming after" in text for text in texts)
    for log, text in zip(logs, texts):
        assert all(text.count(f"after task {t} ") <= 1 for t in range(3)), text  # no task was trained twice
        assert list(pd.read_csv(log.parent / "accuracy.csv").after_task) == [0, 1, 2]
        assert pd.read_csv(log.parent / "summary.csv").status.iloc[0] == "finished"
