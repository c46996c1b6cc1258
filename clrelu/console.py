"""How a run's log lines look: plain text for information, and the level in front of anything worse, as
`clrelu: warning: ...` on the console and `warning: ...` in run.log (conf/config.yaml's job_logging); folders as
users typed them (printable: a folder name cannot send escape sequences to the terminal)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from clrelu.errors import printable


def shown(folder: Path) -> str:
    """A folder as users typed it: relative to the working directory when it lies below it."""
    folder = Path(folder).resolve()
    return printable(str(folder.relative_to(Path.cwd())) if folder.is_relative_to(Path.cwd()) else str(folder))


class LevelFormatter(logging.Formatter):
    """logging.Formatter that puts `<prefix><level>: ` before the message of a record at WARNING or above, and
    writes every message on one line with control characters escaped (errors.printable): whatever a log line
    quotes (a folder, a config value, a tracker's error), it cannot split a line or act on the terminal."""

    def __init__(self, fmt: str = "%(message)s", datefmt: str | None = None, prefix: str = ""):
        super().__init__(fmt, datefmt)
        self.prefix = prefix

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = printable(record.message)
        if record.levelno >= logging.WARNING:
            message = f"{self.prefix}{record.levelname.lower()}: {message}"
        if message is not record.message:
            record = logging.makeLogRecord({**record.__dict__, "message": message})
        return super().formatMessage(record)


class RunLog(logging.FileHandler):
    """run.log: a FileHandler that opens its file through the run folder's door (rundir/files.py), so that a link
    or a FIFO planted in its place is never written through nor blocks."""

    def _open(self):
        from clrelu.rundir import files

        path = Path(self.baseFilename)
        fd = files.open_fd(path.parent, path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
