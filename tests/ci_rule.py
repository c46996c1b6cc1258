"""CI runs every test: with CLRELU_REQUIRE_ALL_TESTS=1 (.ci/run sets it) a skip of any kind (a missing dataset, a
module-level importorskip of the vision extra) fails the session, naming each skip and its reason. Without it a
machine without the data skips those tests with their reason, as pytest does. Loaded by conftest.py.

Under pytest-xdist the tests run in workers, but every test report (pytest_runtest_logreport) and every collection
report that did not pass (pytest_collectreport, once per module whatever the number of workers) is replayed in the
controller, which ends the session: the rule counts them there (tests/test_ci_rule.py runs it with -n 2)."""

import os

import pytest

REQUIRE_ALL_TESTS = os.environ.get("CLRELU_REQUIRE_ALL_TESTS") == "1"
_skips: dict[str, None] = {}  # in order, once each


def _note_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips[f"{report.nodeid or report.fspath}: {reason}"] = None


def pytest_collectreport(report):
    _note_skip(report)  # a module skipped whole (importorskip at its top)


def pytest_runtest_logreport(report):
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE_ALL_TESTS and _skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if REQUIRE_ALL_TESTS and _skips:
        terminalreporter.section("CLRELU_REQUIRE_ALL_TESTS=1: every test must run, and these skipped", red=True)
        for line in _skips:
            terminalreporter.line(f"SKIPPED {line}", red=True)
        terminalreporter.line(f"{len(_skips)} skipped: the session fails", red=True, bold=True)
