"""Opening a dataset file: a regular file only (a FIFO or a device is refused without blocking), its size checked
against what its dataset can hold before anything is read."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from clrelu.errors import DataError
from clrelu.machine import size_text


@contextlib.contextmanager
def open_regular(path: Path, limit: int | None = None, what: str = "") -> Iterator[BinaryIO]:
    """`path` opened for reading when it is a regular file of at most `limit` bytes (`what`: the dataset file it
    should be, for the message)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"{path}: not a regular file; clrelu reads datasets from regular files only"
    elif limit is not None and info.st_size > limit:
        problem = (f"{path}: holds {size_text(info.st_size)}, more than {what} can ({size_text(limit)}); "
                   "it was not read")
    if problem:
        os.close(fd)
        raise DataError(problem)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        yield handle
