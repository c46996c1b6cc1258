"""The errors clrelu reports to users as one line, and the exit code of each; untrusted text made printable."""

import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

_listeners: list[list[str]] = []  # see `reports`
# Unicode categories never printed raw: controls (ESC, BEL, CR, LF, ...), format characters (bidirectional
# overrides that reorder what a terminal shows), line and paragraph separators, surrogates (undecodable bytes
# of a file name), private use and unassigned code points.
UNPRINTED = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class ClreluError(Exception):
    """An error whose message is complete and meant for the user, without a stack trace."""

    exit_code = 1


class ConfigError(ClreluError):
    """Bad input: an unknown name, or a value that a config key cannot take."""

    exit_code = 2


class DataError(ClreluError):
    """A dataset file is missing, corrupt, or cannot be downloaded."""


class RunError(ClreluError):
    """A failure while training, such as a loss that became NaN."""


class Interrupted(BaseException):
    """A run stopped by SIGTERM or SIGHUP (clrelu/training/stopping.py). Like KeyboardInterrupt it is no Exception, so
    that no `except Exception` on the way (logging's, for one) swallows it; the exit code is the shell's for the
    signal (128 + its number)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def choices_error(key: str, value, valid) -> ConfigError:
    """The error for a name that is not one of the valid choices of a key."""
    listed = ", ".join(str(v) for v in valid)
    return ConfigError(f"{key}={value}: unknown choice; valid choices are {listed}")


def printable(text: str) -> str:
    """`text` (a config value, a status, a file's content, a path) on one line with nothing a terminal would act
    on: every character of the categories in UNPRINTED written as a Python escape (\\n, \\x1b, \\u202e)."""
    if text.isprintable():  # the common case, and fast: str.isprintable is false for every category above
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in UNPRINTED else c for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def report(message: str) -> None:
    """Print an error for the user: one line on stderr, its untrusted parts made printable."""
    print(f"clrelu: error: {printable(message)}", file=sys.stderr)
    for listener in _listeners:
        listener.append(message)


@contextmanager
def reports() -> Iterator[list[str]]:
    """A list that receives every error `report` prints inside the `with` block (for callers in the same
    process, such as the Python API, which raise it as an exception)."""
    heard: list[str] = []
    _listeners.append(heard)
    try:
        yield heard
    finally:
        _listeners.remove(heard)


def warn(message: str) -> None:
    """Print a warning for the user: one line on stderr, its untrusted parts made printable."""
    print(f"clrelu: warning: {printable(message)}", file=sys.stderr)
