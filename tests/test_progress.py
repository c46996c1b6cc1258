"""Progress on long runs: one bar over the whole run on a terminal; off a terminal a log line every 10% of the
steps or every 60 s, whichever is rarer; nothing printed for tasks the schedule does not evaluate."""

import io
import logging

import pytest
from conftest import run_in_process

from clrelu.training import progress as progress_module
from clrelu.training.progress import Progress, duration

FAST = ["stream=synthetic", "model.hidden=[16]", "stream.train_per_class=20", "stream.test_per_class=10",
        "plasticity.probe_size=50"]


class Clock:
    def __init__(self, seconds_per_step):
        self.now, self.per_step = 0.0, seconds_per_step

    def __call__(self):
        return self.now


def lines_of(total, seconds_per_step, caplog):
    clock = Clock(seconds_per_step)
    with caplog.at_level(logging.INFO, logger="clrelu"), Progress(total, interactive=False, clock=clock) as p:
        p.task("task 0")
        for _ in range(total):
            clock.now += seconds_per_step
            p.step()
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]


def test_off_a_terminal_a_line_every_tenth_or_minute_whichever_is_rarer(caplog):
    # 10 s a step: 10% (10 steps) takes 100 s, rarer than a minute: a line every 10 steps
    lines = lines_of(100, 10.0, caplog)
    assert len(lines) == 10
    assert lines[0] == "progress: 10% (10 of 100 steps, task 0), 1 min 40 s so far, about 15 min 00 s left"
    assert lines[-1] == "progress: 100% (100 of 100 steps, task 0), 16 min 40 s so far, about 0 s left"
    caplog.clear()
    # 1 s a step: a minute (60 steps) is rarer than 10%: lines at steps 60 and 120 of 150
    assert [line.split(" (")[1].split(",")[0] for line in lines_of(150, 1.0, caplog)] == ["60 of 150 steps",
                                                                                       "120 of 150 steps"]
    caplog.clear()
    assert lines_of(100, 0.1, caplog) == []  # a 10-second run prints no progress line


def test_duration_in_words():
    assert [duration(s) for s in (0.4, 59, 60, 200, 3599, 3600, 7500)] == [
        "0 s", "59 s", "1 min 00 s", "3 min 20 s", "59 min 59 s", "1 h 00 min", "2 h 05 min"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_one_bar_over_the_whole_run(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    run_in_process(tmp_path / "run", *FAST, "trainer.iters=3")  # 5 tasks x 3 steps
    renders = [r for r in terminal.getvalue().replace("\n", "\r").split("\r") if "step" in r]
    assert renders and all("/15 " in r for r in renders)  # one bar of 15 steps, never one of a task's 3
    counts = [int(r.split("/15 ")[0].split()[-1]) for r in renders]
    assert counts == sorted(counts) and counts[-1] > 3  # it goes on across the tasks, never back to 0


@pytest.mark.parametrize("tasks", ["current", "seen"])
def test_tasks_not_evaluated_print_nothing(tmp_path, caplog, tasks):
    with caplog.at_level(logging.INFO, logger="clrelu"):
        run_in_process(tmp_path / "run", *FAST, "eval.every=2", f"eval.tasks={tasks}")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "not evaluated" in m]
    assert [m.split("  ")[0] for m in messages if m.startswith("after task")] == ["after task 1", "after task 3",
                                                                                  "after task 4"]
