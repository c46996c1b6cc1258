"""Plots that do not mislead: only what was measured, labelled as measured (eval.tasks=current); figure titles
clear of panel titles; dead and dormant units in distinct styles; a joint run's panels within their axes."""

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process

from clrelu.report.plot import learned_accuracy, run_figure, seen_accuracy, sweep_figure

FAST = ["stream=synthetic", "model.hidden=[16,16]", "stream.train_per_class=20", "stream.test_per_class=10",
        "plasticity.probe_size=50"]


def test_seen_and_learned_accuracy_on_a_current_schedule():
    # eval.every=2, eval.tasks=current on 4 tasks: R[1, 1], R[3, 3] and, after the last task, every task
    R = pd.DataFrame(np.nan, index=range(4), columns=range(4))
    R.loc[1, 1], R.loc[3] = 0.9, [0.5, 0.6, 0.7, 0.8]
    seen = seen_accuracy(R)
    assert seen.isna().tolist() == [True, True, True, False] and seen[3] == pytest.approx(0.65)
    assert learned_accuracy(R).to_dict() == {1: 0.9, 3: 0.8}
    R.loc[1, 0] = 0.4  # eval.tasks=seen: every task seen so far
    assert seen_accuracy(R)[1] == pytest.approx(0.65)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_in_process(root / "current" / "a", *FAST, "eval.every=2", "eval.tasks=current")
    run_in_process(root / "joint", *FAST, "trainer.regime=joint")
    return root


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_a_current_schedule_draws_what_it_measured(runs):
    figure = run_figure(runs / "current" / "a")
    lines = lines_by_label(next(ax for ax in figure.axes if ax.get_title() == "accuracy per task"))
    assert list(lines["mean over the tasks seen so far"].get_xdata()) == [4]
    assert list(lines["the task just learned (R[i, i])"].get_xdata()) == [1, 3, 4]
    accuracy = pd.read_csv(runs / "current" / "a" / "accuracy.csv", index_col="after_task")
    assert list(lines["the task just learned (R[i, i])"].get_ydata()) == [accuracy.loc[i, str(i)] for i in (1, 3, 4)]
    panels = {ax.get_title(): ax for ax in sweep_figure(runs / "current").axes}
    assert list(panels["mean accuracy on the tasks seen so far"].get_lines()[0].get_xdata()) == [4]
    assert list(panels["accuracy on the task just learned (R[i, i])"].get_lines()[0].get_xdata()) == [1, 3, 4]


def test_figure_title_clear_of_panel_titles_and_dead_unlike_dormant(runs):
    for figure in (run_figure(runs / "current" / "a"), sweep_figure(runs / "current")):
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        top = figure._suptitle.get_window_extent(renderer)
        for ax in figure.axes:
            if ax.get_title():
                assert not top.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
    units = next(ax for ax in run_figure(runs / "joint").axes if ax.get_title() == "dead and dormant units")
    lines = lines_by_label(units)
    dead, dormant = lines["trunk.1 dead"], lines["trunk.1 dormant"]
    assert dead.get_linestyle() != dormant.get_linestyle() and dead.get_marker() != dormant.get_marker()


def test_a_joint_run_draws_within_its_axes(runs):
    for ax in run_figure(runs / "joint").axes:
        low, high = ax.get_xlim()
        for line in ax.get_lines():
            x = np.asarray(line.get_xdata(), dtype=float)
            assert ((x >= low) & (x <= high)).all(), (ax.get_title(), line.get_label(), x, (low, high))
