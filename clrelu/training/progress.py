"""A run's progress over all its optimizer steps: one tqdm bar with its ETA on a terminal; elsewhere (a log file, a
cluster job) a log line every 10% of the steps or every 60 seconds, whichever is rarer."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)

SHARE = 0.1  # off a terminal: a line once the run has gone this share of its steps further ...
SECONDS = 60.0  # ... and at least this long since the last line


def duration(seconds: float) -> str:
    """Seconds in words: "45 s", "3 min 20 s", "2 h 05 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts the optimizer steps of a run (`total`, of which `done` before this process began: a resumed run).

    On a terminal (`interactive`, by default whether stderr is one) a tqdm bar over the whole run shows the task,
    the loss and the time left, and log lines are printed above it. Otherwise a log line says how far the run
    is and how long it should still take, when it has gone SHARE of its steps further and SECONDS have passed
    since the last line: a short run prints none.
    """

    def __init__(self, total: int, done: int = 0, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.done = total, done
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.clock = clock
        self.started = self.last_time = clock()
        self.started_at = self.last_done = done
        self.bar: tqdm | None = None
        self.label = ""  # the phase now training
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Progress:
        if self.interactive:
            self.bar = self._stack.enter_context(tqdm(total=self.total, initial=self.done, unit="step",
                                                      dynamic_ncols=True, leave=False, file=sys.stderr))
            self._stack.enter_context(logging_redirect_tqdm())  # log lines above the bar, not through it
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def task(self, label: str) -> None:
        """The phase now training ("task 3", "joint")."""
        self.label = label
        if self.bar is not None:
            self.bar.set_description(label, refresh=False)

    def loss(self, value: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{value:.4f}", refresh=False)

    def step(self) -> None:
        """One optimizer step done."""
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.done - self.last_done >= SHARE * self.total:
            now = self.clock()
            if now - self.last_time >= SECONDS:
                self._log_line(now)

    def _log_line(self, now: float) -> None:
        rate = (self.done - self.started_at) / max(now - self.started, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        log.info("progress: %d%% (%s of %s steps, %s), %s so far, about %s left", 100 * self.done // self.total,
                 f"{self.done:,}", f"{self.total:,}", self.label, duration(now - self.started),
                 duration(left))
        self.last_time, self.last_done = now, self.done
