"""A run stopped by a signal: SIGTERM and SIGHUP raised as an exception while a run trains (as Ctrl-C raises
KeyboardInterrupt), so that the run records `interrupted` before the process ends, and signals held back
while a run's status is being written."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from clrelu.errors import Interrupted

RAISED = (signal.SIGTERM, signal.SIGHUP)  # besides SIGINT, which Python raises as KeyboardInterrupt
HELD = (signal.SIGINT, *RAISED)


def reason(exc: BaseException) -> str:
    """What stopped a run, for its summary: 'stopped by SIGTERM', 'stopped by SIGINT (Ctrl-C)'."""
    return str(exc) if isinstance(exc, Interrupted) else "stopped by SIGINT (Ctrl-C)"


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Interrupted (where they would have ended the process: a signal
    whose handler someone set, or that is ignored as under nohup, is left alone). Only the main thread can set
    handlers; elsewhere the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Interrupted(signum, f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.getsignal(s) for s in RAISED}
    for s, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler == signal.SIG_DFL:
                signal.signal(s, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP wait; they are delivered when it ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
