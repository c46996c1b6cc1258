"""The errors clrelu reports to users as one line, and the exit code of each."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

_listeners: list[list[str]] = []  # see `reports`


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


def choices_error(key: str, value, valid) -> ConfigError:
    """The error for a name that is not one of the valid choices of a key."""
    listed = ", ".join(str(v) for v in valid)
    return ConfigError(f"{key}={value}: unknown choice; valid choices are {listed}")


def report(message: str) -> None:
    """Print an error for the user: one line on stderr."""
    print(f"clrelu: error: {message}", file=sys.stderr)
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
