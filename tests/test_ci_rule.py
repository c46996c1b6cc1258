"""CI's rule (tests/ci_rule.py, loaded by conftest.py): with CLRELU_REQUIRE_ALL_TESTS=1 (set by .ci/run) any skip
fails the session, a module skipped whole by importorskip included; without it a skip stays a skip with its reason."""

import os
import subprocess
import sys
from pathlib import Path

SKIPPING = {
    "test_one_skip.py": "import pytest\n\ndef test_runs():\n    pass\n\n"
                        "def test_needs_data():\n    pytest.skip('no data here')\n",
    "test_no_extra.py": "import pytest\n\npytest.importorskip('clrelu_no_such_extra', reason='the extra is missing')\n\n"
                        "def test_never_collected():\n    pass\n",
}


def test_a_skip_fails_the_session_only_when_every_test_must_run(tmp_path):
    """Three sessions of the files above at once: a user's (skips stay skips), CI's, and CI's under pytest-xdist with
    two workers (the skips happen in the workers; the controller, which ends the session, must see them)."""
    for name, text in SKIPPING.items():
        (tmp_path / name).write_text(text)
    tests = str(Path(__file__).parent)  # ci_rule.py, the plugin conftest.py loads, in a session of the files above
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "ci_rule", str(tmp_path)]
    sessions = {"user": ("", []), "ci": ("1", []), "ci -n 2": ("1", ["-p", "xdist", "-n", "2"])}
    runs = {name: subprocess.Popen(command + extra, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env={**os.environ, "PYTHONPATH": path, "CLRELU_REQUIRE_ALL_TESTS": required})
            for name, (required, extra) in sessions.items()}
    out = {name: process.communicate(timeout=120)[0] for name, process in runs.items()}
    assert runs["user"].returncode == 0, out["user"]
    assert "1 passed, 2 skipped" in out["user"] and "no data here" in out["user"]
    assert "the extra is missing" in out["user"]
    for ci in ("ci", "ci -n 2"):
        assert runs[ci].returncode == 1, out[ci]
        assert "1 passed, 2 skipped" in out[ci], out[ci]
        assert "every test must run" in out[ci] and "2 skipped: the session fails" in out[ci], out[ci]
        assert "test_one_skip.py::test_needs_data: Skipped: no data here" in out[ci], out[ci]
        assert "test_no_extra.py: Skipped: the extra is missing" in out[ci], out[ci]
