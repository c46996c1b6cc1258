"""Writing a file so that it is never half-written: a temporary file beside it, then a rename."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from clrelu.errors import RunError

TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")  # `.<name>.<pid>.tmp`, what `write_atomically` writes first


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)`, then rename the temporary file to `path`.

    A failed write (a full disk, a read-only folder) removes the temporary file and raises a RunError
    naming `path`; `path` itself keeps its earlier content.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException as exc:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise RunError(f"{path}: cannot be written ({exc.strerror or exc})") from None
        raise


def remove_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files that killed writes left in `folder`; return their names.

    Only for a folder this process holds the lock of: no other writer can be using them.
    """
    removed = []
    for entry in os.scandir(folder):
        if TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed
