"""`compare` and `plot` never write into their inputs nor into any run or sweep folder, and never over a file clrelu
did not write: their output goes to the working directory or to --out, and a refused --out is one line (exit 2)
before any work."""

import shutil

import pytest
from conftest import hashes, one_line, run_in_process

from clrelu.cli import main

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished") / "run"
    run_in_process(folder, *FAST)
    return folder


@pytest.fixture
def run(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "runs" / "run")
    return tmp_path / "runs" / "run"


def test_by_default_the_output_goes_to_the_working_directory(run, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = hashes(tmp_path / "runs")
    assert main(["compare", str(run)]) == 0 and main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.endswith("run.png\n")
    assert sorted(p.name for p in work.iterdir()) == ["compare.csv", "run.png"]
    assert hashes(tmp_path / "runs") == before  # nothing written into the inputs
    assert main(["compare", str(run)]) == 0 and main(["plot", str(run)]) == 0  # clrelu's own outputs: replaced


@pytest.mark.parametrize("command", ["compare", "plot"])
def test_an_output_inside_a_run_or_an_input_is_refused(run, tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    before = hashes(tmp_path / "runs")
    name = "compare.csv" if command == "compare" else "figure.png"
    runs = tmp_path / "runs"
    for out, read in ((run / name, run), (run / ".hydra" / name, run), (runs / name, runs)):
        (run / ".hydra").mkdir(exist_ok=True)
        assert main([command, str(read), "--out", str(out)]) == 2
        assert one_line(capsys.readouterr().err) == (f"--out {out}: lies inside {read}, which this command reads; "
                                                     "clrelu never writes into its inputs: choose --out elsewhere")
        (run / ".hydra").rmdir()
    assert hashes(tmp_path / "runs") == before
    # a run folder that is not an input is no place for output either
    other = tmp_path / "other"
    shutil.copytree(run, other)
    assert main([command, str(run), "--out", str(other / name)]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"--out {other / name}: lies inside {other}, a run or sweep "
                                                        "folder")


def test_compare_run_from_inside_its_input_prints_and_writes_nothing(run, capsys, monkeypatch):
    monkeypatch.chdir(run)
    before = hashes(run)
    assert main(["compare", "."]) == 0
    out, err = capsys.readouterr()
    assert "avg_accuracy" in out and one_line(err, "clrelu: warning: ").startswith(
        "compare.csv (the default output of this command): lies inside .")
    assert hashes(run) == before


@pytest.mark.parametrize("command, name", [("compare", "table.csv"), ("plot", "figure.png"), ("plot", "figure.pdf")])
def test_a_file_clrelu_did_not_write_is_never_overwritten(run, tmp_path, decoy, capsys, command, name):
    mine = tmp_path / name
    mine.write_bytes(b"my own work\n")
    (tmp_path / f"link-{name}").symlink_to(decoy / "thesis.txt")
    before, decoy_before = mine.read_bytes(), hashes(decoy)
    for out in (mine, tmp_path / f"link-{name}"):
        assert main([command, str(run), "--out", str(out)]) == 2
        assert one_line(capsys.readouterr().err) == (f"--out {out}: exists, and is not a "
                                                     f"{'comparison table' if command == 'compare' else 'figure'} "
                                                     "clrelu wrote; clrelu never overwrites a file it did not write: "
                                                     "choose another name or remove it")
    assert mine.read_bytes() == before and hashes(decoy) == decoy_before
    fresh = tmp_path / f"fresh-{name}"  # what clrelu wrote, it may write again
    assert main([command, str(run), "--out", str(fresh)]) == 0
    assert main([command, str(run), "--out", str(fresh)]) == 0
