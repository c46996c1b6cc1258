"""The `clrelu` command behaves like the tools beside it: --version, `python -m clrelu`, usage on no arguments,
install hints that match the install, CSV lines ending in \\n, warnings that carry their level, and no
"0 parameters" for a model that creates its parameters task by task."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_in_process

import clrelu
from clrelu import extras
from clrelu.cli import main
from clrelu.console import LevelFormatter
from clrelu.report import compare

FAST = ["stream=synthetic", "model.hidden=[16]", "stream.train_per_class=20", "stream.test_per_class=10"]


def test_version_and_no_arguments(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"clrelu {clrelu.__version__}\n"
    assert main([]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("usage: clrelu <command>")
    assert main(["--help"]) == 0 and "usage: clrelu" in capsys.readouterr().out


def test_python_dash_m_clrelu(tmp_path):
    done = subprocess.run([sys.executable, "-m", "clrelu", "--version"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout) == (0, f"clrelu {clrelu.__version__}\n")


class FakeDistribution:
    def __init__(self, origin):
        self.origin = origin

    def read_text(self, name):
        assert name == "direct_url.json"
        return None if self.origin is None else json.dumps(self.origin)


def test_run_help_reads_the_configs_without_importing_torch():
    # `clrelu run --help` is what a newcomer types first: it must not wait for torch (seconds on a loaded machine)
    code = ("import contextlib, io, sys\nfrom clrelu import cli\nwith contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    status = cli.run_command(['--help', 'model=pnn'])\n"
            "assert status == 0 and 'model: hat, mlp' in out.getvalue(), out.getvalue()\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


@pytest.mark.parametrize("origin, cwd_is_checkout, expected", [
    ({"url": "file:///src/clrelu", "dir_info": {"editable": True}}, True, 'pip install -e ".[plot]"'),
    ({"url": "file:///src/clrelu", "dir_info": {"editable": True}}, False, 'pip install -e "/src/clrelu[plot]"'),
    ({"url": "file:///tmp/clrelu-0.1.0-py3-none-any.whl", "archive_info": {}}, False, 'pip install "clrelu[plot]"'),
    (None, False, 'pip install "clrelu[plot]"'),  # from an index: no direct_url.json
])
def test_install_hint_follows_the_install(monkeypatch, tmp_path, origin, cwd_is_checkout, expected):
    monkeypatch.setattr(extras.metadata, "distribution", lambda name: FakeDistribution(origin))
    monkeypatch.setattr(extras.Path, "cwd", staticmethod(lambda: Path("/src/clrelu" if cwd_is_checkout else tmp_path)))
    assert extras.install_command("plot") == expected


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what an install without the extra sees
    with pytest.raises(clrelu.errors.ConfigError) as caught:
        extras.import_extra("tensorboard", "tensorboard", "logger=tensorboard")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("logger=tensorboard needs the 'tensorboard' extra")
    assert message.endswith(extras.install_command("tensorboard"))


def test_csv_lines_end_with_newline_only(tmp_path):
    run_in_process(tmp_path / "run", *FAST)
    written = sorted((tmp_path / "run").glob("*.csv"))
    assert {p.name for p in written} >= {"accuracy.csv", "evals.csv", "summary.csv", "online.csv", "plasticity.csv"}
    for path in written:
        data = path.read_bytes()
        assert b"\r" not in data and data.endswith(b"\n"), path.name
    frame = compare.load_runs([str(tmp_path)], [])
    table = compare.compare(frame)
    compare.write(table, tmp_path / "compare.csv")
    assert b"\r" not in (tmp_path / "compare.csv").read_bytes()
    assert "\r" not in compare.render(table, compare.METRICS, "csv")


def test_warnings_carry_their_level():
    record = logging.LogRecord("clrelu", logging.WARNING, __file__, 1, "hidden layer %d is full", (0,), None)
    info = logging.LogRecord("clrelu", logging.INFO, __file__, 1, "after task 0", (), None)
    console = LevelFormatter("%(message)s", prefix="clrelu: ")
    assert console.format(record) == "clrelu: warning: hidden layer 0 is full"
    assert console.format(info) == "after task 0"
    assert LevelFormatter("[x] %(message)s").format(record) == "[x] warning: hidden layer 0 is full"


def test_pnn_does_not_report_zero_parameters(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="clrelu"):
        record = run_in_process(tmp_path / "run", *FAST, "model=pnn", "stream.n_tasks=2")
    text = caplog.text
    assert "0 parameters" not in text.replace(f"{record.n_params} parameters", "")
    assert "parameters created with each task" in text
    assert text.rstrip().endswith(f"; {record.n_params} parameters at the end") and record.n_params > 0
