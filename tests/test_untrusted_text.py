"""Attack: text from a run folder (config values in .hydra/, a status, an error) that would inject a
formula into a spreadsheet, split a line of `compare`'s report, or send escape sequences to the terminal."""

import csv
import io
import logging
import shutil

import pandas as pd
import pytest
import yaml
from conftest import run_in_process

from clrelu.cli import main
from clrelu.config import config_dir
from clrelu.console import LevelFormatter
from clrelu.errors import printable
from clrelu.rundir.record import mark_summary

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]
FORMULA = "=cmd|' /C calc'!A0"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\rfake"  # retitle the terminal, ring, clear the screen, overwrite the line


def with_summary(run, **values):
    rows = list(csv.reader(io.StringIO((run / "summary.csv").read_text())))
    for key, value in values.items():
        rows[1][rows[0].index(key)] = value
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    (run / "summary.csv").write_text(text.getvalue())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four copies of one finished run: two that differ in data.root (one a formula, one escape sequences), one
    failed with an error full of escapes and a newline, one whose status holds a newline."""
    root = tmp_path_factory.mktemp("untrusted")
    run_in_process(root / "run", *FAST)
    sweep = root / "sweep"
    for name, root_value in (("formula", FORMULA), ("escapes", ESCAPES), ("failed", "x"), ("split", "y")):
        shutil.copytree(root / "run", sweep / name)
        (sweep / name / ".hydra").mkdir()
        (sweep / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"data": {"root": root_value}}))
        (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"data.root={root_value}"]))
    with_summary(sweep / "failed", status="failed", error=f"boom\nclrelu: all fine {ESCAPES}")
    with_summary(sweep / "split", status="running\nclrelu: all fine")
    return sweep


def test_compare_prints_and_writes_nothing_a_terminal_or_a_spreadsheet_would_act_on(sweep, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(sweep), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    for text in (out, err):
        assert not any(c in text for c in "\x1b\x07\r"), repr(text)
    lines = err.splitlines()
    assert len(lines) == 2, err  # one line per run left out: a newline in a status or an error splits nothing
    assert lines[0].startswith(f"left out: {sweep / 'split' / 'summary.csv'}: damaged (status is 'running\\nclrelu: ")
    assert lines[1] == (f"left out, not finished: {sweep / 'failed'}: failed after 3 of 3 tasks: boom\\nclrelu: all "
                        "fine \\x1b]0;owned\\x07\\x1b[2J\\rfake")
    written = (tmp_path / "compare.csv").read_text()
    assert written == out  # the file and what was printed are the same table
    table = pd.read_csv(tmp_path / "compare.csv")
    assert set(table["data.root"]) == {"'" + FORMULA, "\\x1b]0;owned\\x07\\x1b[2J\\rfake"}
    assert pd.api.types.is_float_dtype(table["bwt_mean"]) and (table["bwt_mean"] <= 0).all()  # numbers stay numbers


def test_a_run_escapes_the_text_it_writes_for_spreadsheets(sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sweep / "formula", run)
    mark_summary(run, "failed", '=HYPERLINK("http://evil","click")')
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert row.error == "'=HYPERLINK(\"http://evil\",\"click\")" and row.status == "failed"
    assert row.bwt <= 0 and pd.api.types.is_number(row.bwt)  # a negative number is written as a number


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert printable("plain/path with é, 中 and spaces") == "plain/path with é, 中 and spaces"
    assert printable("a\nb\r\tc\x1b[2J\x07\x00\x7f\x9b") == "a\\nb\\r\\tc\\x1b[2J\\x07\\x00\\x7f\\x9b"
    assert printable("name\u202egnp.exe\u2028x") == "name\\u202egnp.exe\\u2028x"  # reordering and line separators


def test_a_log_line_quoting_untrusted_text_stays_one_printable_line():
    """Every line a run logs (console and run.log share the formatter of conf/config.yaml) escapes what it quotes:
    a folder or a value holding ESC, BEL or a newline cannot act on the terminal nor fake a line."""
    formatters = yaml.safe_load((config_dir() / "config.yaml").read_text())["hydra"]["job_logging"]["formatters"]
    for name, expected in (("console", "clrelu: warning: "), ("file", "")):
        spec = dict(formatters[name])
        assert spec.pop("()") == "clrelu.console.LevelFormatter"
        formatter = LevelFormatter(**spec)
        record = logging.LogRecord("clrelu", logging.WARNING, __file__, 1, "%s: finished already; skipped",
                                   (f"out/{ESCAPES}\nclrelu: all fine",), None)
        line = formatter.format(record)
        assert line.endswith(f"{expected}out/\\x1b]0;owned\\x07\\x1b[2J\\rfake\\nclrelu: all fine: finished already; "
                             "skipped") and line.isprintable(), repr(line)
