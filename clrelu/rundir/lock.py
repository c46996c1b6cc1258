"""One writer per folder: an fcntl lock on a file inside it, held for the whole run or sweep, and sweep
jobs that stop when the sweep that started them is killed."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from clrelu.errors import ClreluError, ConfigError
from clrelu.rundir import files

LOCK_FILE = ".clrelu.rundir.lock"  # holds the process id of the writer; the kernel drops the lock when it dies
SWEEP_ENV = "CLRELU_SWEEP_PROCESS"  # "<host>:<pid>" of the sweep whose jobs run in child processes

log = logging.getLogger(__name__)


class FolderBusy(ClreluError):
    """Another live process holds the lock of the folder."""

    exit_code = 2


def _busy(folder: Path, fd: int) -> FolderBusy:
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    return FolderBusy(f"{folder}: another clrelu process (pid {pid}) is writing into this folder; wait until it "
                      "ends or stop it, then try again")


class FolderLock:
    """An exclusive lock on `<folder>/.clrelu.rundir.lock`; a lock left by a dead process is free again."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None
        self.created = False  # whether this process created the lock file

    def acquire(self, mark: bool = True) -> None:
        """Take the lock (creating the folder when needed) or raise FolderBusy naming the holder's pid; `mark`
        writes this process's pid into the lock file (see `mark`)."""
        try:
            files.make_folder(self.folder)
            try:
                fd = files.open_fd(self.folder, LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL)
                self.created = True
            except FileExistsError:
                fd = files.open_fd(self.folder, LOCK_FILE, os.O_RDWR)
        except OSError as exc:
            raise ConfigError(f"{self.folder}: cannot write into this folder ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _busy(self.folder, fd)
            os.close(fd)
            raise error from None
        self.fd = fd
        if mark:
            self.mark()

    def mark(self) -> None:
        """Write this process's pid into the held lock file, for the message another process gets (a job that only
        looks at a finished run, and skips it, leaves the file as it was)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self, remove: bool = False) -> None:
        """Drop the lock; `remove` also deletes the lock file when this process created it."""
        if self.fd is None:
            return
        if remove and self.created:
            files.remove(self.folder, LOCK_FILE)
        os.close(self.fd)
        self.fd = None


def check_free(folder: Path) -> None:
    """Raise FolderBusy when a live process holds the lock of `folder` (without keeping the lock)."""
    try:
        fd = files.open_fd(folder, LOCK_FILE)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(folder, fd) from None
    finally:
        os.close(fd)


def is_held(folder: Path) -> bool:
    """Whether a live process holds the lock of `folder` (a shared-lock probe that writes nothing): a run whose
    summary says `running` and whose lock nobody holds was stopped without a word (kill -9, a crash)."""
    try:
        check_free(folder)
    except FolderBusy:
        return True
    except (OSError, ClreluError):  # no folder, or a lock file that is not one clrelu would hold
        return False
    return False


def mark_sweep_process() -> None:
    """Let the jobs a sweep runs in child processes (joblib) know their parent, see `stop_with_sweep`."""
    os.environ[SWEEP_ENV] = f"{socket.gethostname()}:{os.getpid()}"


_watching = False


def stop_with_sweep(interval: float = 0.5) -> None:
    """In a job running in a child process of its sweep, kill this process as soon as the sweep dies.

    joblib's workers outlive a killed parent and would go on writing into the sweep; a sweep relaunched
    with skip_finished=true would then run the same job a second time. Files are written atomically and a
    checkpoint follows every task, so stopping here loses only the unfinished task, as a kill would.
    """
    global _watching
    sweep = f"{socket.gethostname()}:{os.getppid()}"
    if _watching or os.environ.get(SWEEP_ENV) != sweep:
        return  # the sweep runs its jobs itself, or on other machines (SLURM), or a watch is on already
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the sweep that started this job (pid %d) has ended; stopping the job", parent)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="clrelu-stop-with-sweep", daemon=True).start()
    _watching = True
