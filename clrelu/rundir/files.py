"""The run folder's only door: every read, write, listing and removal of a file in a run or sweep folder.

A folder is reached by the path a user or Hydra named (followed as typed, like any path); everything
below it is reached without following a symbolic link: each subfolder is opened with O_NOFOLLOW from
the one above it, and each file with O_NOFOLLOW | O_NONBLOCK, then checked with fstat to be a regular
file (so a FIFO never blocks and a device is never read). A file clrelu writes must also have a single
link, so a hard link to a file elsewhere is never written through. Anything else is refused with one
line naming the path (UnsafePath). Writes that replace a file go through a temporary file beside it
and a rename; appends and truncations open the existing file with the same checks. Reads are bounded:
a file larger than what it can hold is refused before it is read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from clrelu.errors import ConfigError, RunError
from clrelu.machine import size_text

TEMPORARY = re.compile(r"^\..+\.\d+\.tmp$")  # `.<name>.<pid>.tmp`, what `write_atomically` writes first
_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC
TEXT_LIMIT = 16 << 20  # a YAML file Hydra writes into a run or sweep folder holds far less than this
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


class UnsafePath(ConfigError):
    """A path in a run or sweep folder that clrelu will not open: a symbolic link, a special file, a hard link."""


def _symlink(path: Path) -> UnsafePath:
    return UnsafePath(f"{path}: is a symbolic link; clrelu never follows one inside a run or sweep folder")


def _not_regular(path: Path, mode: int) -> UnsafePath:
    kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return UnsafePath(f"{path}: is {kind}, not a regular file; clrelu reads and writes only regular files in a run "
                      "or sweep folder")


def _parts(name: str) -> list[str]:
    """The components of a name relative to a folder; an absolute name or one with `..` is refused."""
    parts = name.split("/") if name else []
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{name}: not a name inside a run folder")
    return parts


@contextlib.contextmanager
def _folder(folder: Path, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of folder/parts..., the folder opened as named and each part without following a link
    (`create`: making the missing ones)."""
    fd = os.open(folder, _FOLDER)
    try:
        where = folder
        for part in parts:
            where = where / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                inner = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                    raise _symlink(where) from None
                raise
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _checked(fd: int, path: Path, writing: bool) -> os.stat_result:
    """fstat of an opened file: a regular file, with one link when it is to be written; else close it and refuse."""
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = _not_regular(path, info.st_mode)
    elif writing and info.st_nlink != 1:
        problem = UnsafePath(f"{path}: has {info.st_nlink} hard links; clrelu writes only files it created, which "
                             "have one")
    if problem:
        os.close(fd)
        raise problem
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return info


def _open_in(fd: int, name: str, path: Path, flags: int, writing: bool) -> tuple[int, os.stat_result]:
    try:
        opened = os.open(name, flags | _NOFOLLOW, 0o644, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink(path) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV):  # a FIFO with no reader, a folder, a device
            raise _not_regular(path, os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode) from None
        raise
    return opened, _checked(opened, path, writing)


def open_fd(folder: Path, name: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the regular file folder/name opened with `flags` (O_CREAT makes the folders above it); the
    caller closes it. A missing file raises FileNotFoundError."""
    *above, last = _parts(name)
    writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
    with _folder(folder, above, create=bool(flags & os.O_CREAT)) as fd:
        return _open_in(fd, last, folder / name, flags, writing)[0]


def _too_large(path: Path, size: int, limit: int, what: str) -> ConfigError:
    return ConfigError(f"{path}: holds {size_text(size)}, more than {what} ({size_text(limit)}); it was not read")


@contextlib.contextmanager
def reader(folder: Path, name: str, limit: int, what: str = "such a file holds") -> Iterator[BinaryIO]:
    """folder/name opened for reading (a regular file of at most `limit` bytes)."""
    fd = open_fd(folder, name)
    size = os.fstat(fd).st_size
    if size > limit:
        os.close(fd)
        raise _too_large(folder / name, size, limit, what)
    with os.fdopen(fd, "rb") as handle:
        yield handle


def read_bytes(folder: Path, name: str, limit: int, what: str = "such a file holds") -> bytes:
    with reader(folder, name, limit, what) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew since
        raise _too_large(folder / name, len(data), limit, what)
    return data


def read_text(folder: Path, name: str, limit: int, what: str = "such a file holds") -> str:
    return read_bytes(folder, name, limit, what).decode("utf-8")


class _Output(io.BufferedWriter):
    """A file being written that keeps the OSError of a failed write, which writers such as torch.save turn into
    errors that do not say what happened (`[enforce fail at inline_container.cc] ... unexpected pos`)."""

    error: OSError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self.error = exc
            raise


def _cannot_write(path: Path, exc: OSError) -> RunError:
    return RunError(f"{path}: cannot be written ({exc.strerror or exc})")


def write_atomically(folder: Path, name: str, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(handle)` on a new temporary file beside folder/name, then rename it to folder/name.

    A failed write (a full disk, a file-size limit, a read-only folder) removes the temporary file and
    raises a RunError naming the file and the cause; the file keeps its earlier content. An existing
    folder/name that is not a regular file with one link is refused, and left as it is.
    """
    *above, last = _parts(name)
    path = folder / name
    partial = f".{last}.{os.getpid()}.tmp"
    handle: _Output | None = None
    try:
        with _folder(folder, above, create=True) as fd:
            created = False
            try:
                with contextlib.suppress(FileNotFoundError):  # what a killed write of a process with this pid left
                    _remove_in(fd, partial, folder / partial)
                opened, _ = _open_in(fd, partial, path.with_name(partial), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                     writing=True)
                created = True
                handle = _Output(io.FileIO(opened, "wb"))
                write(handle)
                handle.close()
                _check_replaceable(fd, last, path)
                os.replace(partial, last, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                if handle is not None:
                    with contextlib.suppress(Exception):
                        handle.close()
                if created:
                    with contextlib.suppress(OSError):
                        os.unlink(partial, dir_fd=fd)
                raise
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    except Exception:
        if handle is not None and handle.error is not None:  # the writer turned the OSError into something vaguer
            raise _cannot_write(path, handle.error) from None
        raise


def _check_replaceable(fd: int, name: str, path: Path) -> None:
    """Refuse to replace what is not a regular file with one link (the rename would replace a link, not its
    target, but it is not clrelu's to replace)."""
    try:
        current = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(current.st_mode):
        raise _symlink(path)
    if not stat.S_ISREG(current.st_mode):
        raise _not_regular(path, current.st_mode)
    if current.st_nlink != 1:
        raise UnsafePath(f"{path}: has {current.st_nlink} hard links; clrelu replaces only files it created, which "
                         "have one")


def append(folder: Path, name: str, data: bytes, new: bool) -> None:
    """Append `data` to folder/name; `new`: the file is new to this run, so create it or empty what is there."""
    path = folder / name
    try:
        fd = open_fd(folder, name, os.O_WRONLY | (os.O_CREAT if new else os.O_APPEND))
        try:
            if new:
                os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:  # a full disk: the rows may be cut short, and a resumed run cuts them back
        raise _cannot_write(path, exc) from None


def size(folder: Path, name: str) -> int | None:
    """The size of the regular file folder/name (None: there is none)."""
    try:
        fd = open_fd(folder, name)
    except FileNotFoundError:
        return None
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def truncate(folder: Path, name: str, length: int) -> None:
    """Cut folder/name back to `length` bytes (at most its size)."""
    fd = open_fd(folder, name, os.O_WRONLY)
    try:
        os.ftruncate(fd, length)
    finally:
        os.close(fd)


def _remove_in(fd: int, name: str, path: Path) -> None:
    mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    if not stat.S_ISREG(mode):
        raise _symlink(path) if stat.S_ISLNK(mode) else _not_regular(path, mode)
    os.unlink(name, dir_fd=fd)


def remove(folder: Path, name: str) -> None:
    """Remove the regular file folder/name, if there is one."""
    *above, last = _parts(name)
    try:
        with _folder(folder, above) as fd:
            _remove_in(fd, last, folder / name)
    except FileNotFoundError:
        pass


def remove_folder(folder: Path, name: str = "") -> None:
    """Remove the empty folder folder/name (name "": the folder itself)."""
    if not name:
        os.rmdir(folder)
        return
    *above, last = _parts(name)
    with _folder(folder, above) as fd:
        if stat.S_ISLNK(os.stat(last, dir_fd=fd, follow_symlinks=False).st_mode):
            raise _symlink(folder / name)
        os.rmdir(last, dir_fd=fd)


def kind(folder: Path, name: str = "") -> str | None:
    """What folder/name is, without following a link below `folder`: "file", "folder", "link", "special" or None
    (nothing there). `folder` itself (name "") is looked at as named."""
    try:
        if not name:
            mode = os.stat(folder).st_mode
        else:
            *above, last = _parts(name)
            with _folder(folder, above) as fd:
                mode = os.stat(last, dir_fd=fd, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "special"


def names(folder: Path, name: str = "") -> list[str]:
    """The names in the folder folder/name."""
    with _folder(folder, _parts(name)) as fd:
        return os.listdir(fd)


def make_folder(folder: Path) -> None:
    """Make `folder` (and the folders above it) when missing; `folder` itself must not be a symbolic link."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass
    if folder.is_symlink():
        raise _symlink(folder)


@dataclass
class Tree:
    """What a folder holds below it, found without following a link: its regular files, folders, and the links
    and special files (relative paths, '/'-separated)."""

    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    specials: dict[str, int] = field(default_factory=dict)  # relative path -> its mode


def walk(folder: Path) -> Tree:
    """Everything below `folder` (named as typed), never entering a linked folder."""
    tree = Tree()

    def visit(fd: int, prefix: str) -> None:
        with os.scandir(fd) as entries:
            found = sorted(entries, key=lambda e: e.name)
        for entry in found:
            relative = prefix + entry.name
            if entry.is_symlink():
                tree.links.append(relative)
            elif entry.is_dir(follow_symlinks=False):
                tree.folders.append(relative)
                try:
                    inner = os.open(entry.name, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # replaced by a link meanwhile
                        tree.links.append(relative)
                        continue
                    raise
                try:
                    visit(inner, relative + "/")
                finally:
                    os.close(inner)
            elif entry.is_file(follow_symlinks=False):
                tree.files.append(relative)
            else:
                tree.specials[relative] = entry.stat(follow_symlinks=False).st_mode

    fd = os.open(folder, _FOLDER)
    try:
        visit(fd, "")
    finally:
        os.close(fd)
    return tree


def check_tree(folder: Path) -> None:
    """Refuse (UnsafePath) a folder that holds a symbolic link or a special file anywhere below it: what clrelu
    or Hydra would write there must land in regular files of that folder. A missing folder passes."""
    if kind(folder) is None:
        return
    if folder.is_symlink():
        raise _symlink(folder)
    tree = walk(folder)
    for relative in tree.links:
        raise _symlink(folder / relative)
    for relative, mode in tree.specials.items():
        raise _not_regular(folder / relative, mode)


def remove_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files that killed writes left in `folder`; return their names.

    Only for a folder this process holds the lock of: no other writer can be using them.
    """
    removed = []
    for name in names(folder):
        if TEMPORARY.match(name) and kind(folder, name) == "file":
            remove(folder, name)
            removed.append(name)
    return removed
