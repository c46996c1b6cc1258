"""Attack: a symbolic link or a FIFO at every place a run, `compare` or `plot` reads or writes (the CSVs, the
checkpoint, Hydra's files, the lock, a subfolder). clrelu never follows the link and never blocks on the FIFO:
one line naming the path, and the file the link points to is unchanged."""

import io
import os
import shutil

import pandas as pd
import pytest
from conftest import crash_during_task, deadline, hashes, one_line, run_in_process

from clrelu.cli import main
from clrelu.errors import ClreluError
from clrelu.rundir import files
from clrelu.rundir.checkpoint import CHECKPOINT
from clrelu.rundir.files import UnsafePath
from clrelu.rundir.lock import LOCK_FILE, FolderLock, is_held

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]
LINK, FIFO = "symbolic link", "FIFO"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished run and an unfinished one (stopped in task 2 of 3)."""
    root = tmp_path_factory.mktemp("runs")
    run_in_process(root / "finished", *FAST)
    crash_during_task(root / "unfinished", 2, *FAST)
    return root


def plant(path, kind, target):
    """Replace `path` by a symbolic link to `target` or by a FIFO."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == LINK:
        path.symlink_to(target)
    else:
        os.mkfifo(path)


def refusal(path, kind) -> str:
    return (f"{path}: is a symbolic link; clrelu never follows one inside a run or sweep folder" if kind == LINK else
            f"{path}: is a FIFO, not a regular file; clrelu reads and writes only regular files in a run or sweep "
            "folder")


DOOR = {  # every way into a run folder, each given (folder, name)
    "read": lambda folder, name: files.read_bytes(folder, name, 1 << 20),
    "replace": lambda folder, name: files.write_atomically(folder, name, lambda handle: handle.write(b"x")),
    "append": lambda folder, name: files.append(folder, name, b"x", new=False),
    "create or empty": lambda folder, name: files.append(folder, name, b"x", new=True),
    "truncate": lambda folder, name: files.truncate(folder, name, 0),
    "remove": lambda folder, name: files.remove(folder, name),
    "size": lambda folder, name: files.size(folder, name),
}


@pytest.mark.parametrize("kind", [LINK, FIFO])
@pytest.mark.parametrize("operation", DOOR)
def test_every_way_through_the_door_refuses_links_and_special_files(tmp_path, decoy, operation, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    plant(folder / "accuracy.csv", kind, decoy / "thesis.txt")
    before = hashes(decoy)
    with deadline(10), pytest.raises(UnsafePath) as refused:
        DOOR[operation](folder, "accuracy.csv")
    assert str(refused.value) == refusal(folder / "accuracy.csv", kind)
    assert hashes(decoy) == before and (folder / "accuracy.csv").is_symlink() == (kind == LINK)


@pytest.mark.parametrize("kind", [LINK, FIFO])
def test_the_lock_file_is_never_followed(tmp_path, decoy, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    plant(folder / LOCK_FILE, kind, decoy / "thesis.txt")
    before = hashes(decoy)
    with deadline(10):
        with pytest.raises(UnsafePath, match=f"^{folder / LOCK_FILE}: is a "):
            FolderLock(folder).acquire()
        assert not is_held(folder)  # a reader probing it neither blocks nor follows it
    assert hashes(decoy) == before


def test_a_linked_subfolder_is_never_entered(tmp_path, decoy):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".hydra").symlink_to(decoy / "notes")
    before = hashes(decoy)
    for attempt in (lambda: files.write_atomically(folder, ".hydra/results.csv", lambda handle: handle.write(b"x")),
                    lambda: files.read_bytes(folder, ".hydra/results.csv", 100), lambda: files.names(folder, ".hydra")):
        with pytest.raises(UnsafePath) as refused:
            attempt()
        assert str(refused.value) == refusal(folder / ".hydra", LINK)
    (tmp_path / "linked").symlink_to(decoy)
    with pytest.raises(UnsafePath) as refused:  # a run folder that is itself a link (a sweep's job folder, planted)
        files.make_folder(tmp_path / "linked")
    assert str(refused.value) == refusal(tmp_path / "linked", LINK)
    assert hashes(decoy) == before


def test_check_tree_finds_what_hydra_would_write_through(tmp_path, decoy):
    """The check the entry point runs before Hydra writes .hydra/config.yaml, run.log, multirun.yaml."""
    folder = tmp_path / "sweep" / "job"
    (folder / ".hydra").mkdir(parents=True)
    files.check_tree(tmp_path / "sweep")
    (folder / ".hydra" / "config.yaml").symlink_to(decoy / "thesis.txt")
    with pytest.raises(UnsafePath) as refused:
        files.check_tree(tmp_path / "sweep")
    assert str(refused.value) == refusal(folder / ".hydra" / "config.yaml", LINK)
    (folder / ".hydra" / "config.yaml").unlink()
    os.mkfifo(folder / "run.log")
    with deadline(10), pytest.raises(UnsafePath, match="run.log: is a FIFO"):
        files.check_tree(tmp_path / "sweep")


RUN_PLACES = ("accuracy.csv", "evals.csv", "summary.csv", CHECKPOINT)


@pytest.mark.parametrize("upfront", [True, False], ids=["with the folder check", "the door alone"])
@pytest.mark.parametrize("kind", [LINK, FIFO])
@pytest.mark.parametrize("place", RUN_PLACES)
def test_a_resumed_run_refuses_a_planted_file(runs, tmp_path, decoy, monkeypatch, place, kind, upfront):
    run = tmp_path / "run"
    shutil.copytree(runs / "unfinished", run)
    plant(run / place, kind, decoy / "thesis.txt")
    if not upfront:  # what the door does by itself, where a run reads or writes that file
        monkeypatch.setattr(files, "check_tree", lambda folder: None)
    before = hashes(decoy)
    with deadline(60), pytest.raises(ClreluError) as refused:
        run_in_process(run, *FAST, "resume=true")
    assert refusal(run / place, kind) in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_code == 2
    assert hashes(decoy) == before


@pytest.mark.parametrize("kind", [LINK, FIFO])
@pytest.mark.parametrize("place", ["summary.csv", "deep/er/summary.csv", ".hydra/config.yaml"])
def test_compare_leaves_out_what_it_must_not_open(runs, tmp_path, decoy, capsys, monkeypatch, place, kind):
    sweep = tmp_path / "sweep"
    shutil.copytree(runs / "finished", sweep / "a")
    shutil.copytree(runs / "finished", sweep / "b")
    (sweep / "b" / place).parent.mkdir(parents=True, exist_ok=True)
    plant(sweep / "b" / place, kind, decoy / "summary.csv")
    monkeypatch.chdir(tmp_path)
    before = hashes(decoy)
    with deadline(30):
        code = main(["compare", str(sweep), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("\n") == 2  # the header and one group: run a's
    left_out = [line for line in err.splitlines() if line.startswith("left out: ")]
    expected = (refusal(sweep / "b" / place, kind) if place == ".hydra/config.yaml"
                else f"{sweep / 'b' / place}: is a symbolic link, not followed" if kind == LINK
                else f"{sweep / 'b' / place}: is not a regular file; not read")
    assert len(left_out) == 1 and left_out[0].startswith(f"left out: {expected}"), err
    assert hashes(decoy) == before


def test_compare_never_enters_a_linked_run_folder(runs, tmp_path, decoy, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    shutil.copytree(runs / "finished", sweep / "a")
    shutil.copytree(runs / "finished", decoy / "run")
    (sweep / "b").symlink_to(decoy / "run")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(sweep), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert pd.read_csv(io.StringIO(out)).n_runs.tolist() == [1]  # the linked run is not counted
    assert err.startswith(f"left out: {sweep / 'b'}: is a symbolic link, not followed")


@pytest.mark.parametrize("kind", [LINK, FIFO])
@pytest.mark.parametrize("place", ["accuracy.csv", "evals.csv", "summary.csv"])
def test_plot_refuses_a_planted_file_in_one_line(runs, tmp_path, decoy, capsys, place, kind):
    run = tmp_path / "run"
    shutil.copytree(runs / "finished", run)
    plant(run / place, kind, decoy / "thesis.txt")
    before = hashes(decoy)
    with deadline(30):
        code = main(["plot", str(run), "--out", str(tmp_path / "figure.png")])
    assert code == 2 and one_line(capsys.readouterr().err) == refusal(run / place, kind)
    assert hashes(decoy) == before and not (tmp_path / "figure.png").exists()
