"""Read, validate and write IDX files (the MNIST format), gzip-compressed or plain.

The header is read first, and the data it declares is checked before any memory is spent on it: against
the most its dataset can hold, against the machine's memory, and (for a plain file) against the file's
size. A gzip file is then inflated into a buffer of exactly the declared size, so a file that inflates to
more (a gzip bomb) is refused after reading one byte beyond it.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from clrelu.data.regular import open_regular
from clrelu.errors import DataError
from clrelu.machine import memory, memory_text, size_text

# IDX type codes and the big-endian numpy dtypes they stand for.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_into(handle: BinaryIO, buffer: np.ndarray) -> int:
    """Fill `buffer` from `handle`; return how many bytes it got (fewer at the end of the data)."""
    view, got = memoryview(buffer), 0
    while got < len(view):
        n = handle.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _declared(path: Path, handle: BinaryIO) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header length an IDX header declares."""
    head = handle.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: not an IDX file: only {len(head)} bytes")
    type_code, ndim = head[2], head[3]
    if head[:2] != b"\0\0" or type_code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: wrong magic number 0x{int.from_bytes(head, 'big'):08x}; not an IDX file")
    raw_dims = handle.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated inside its header")
    return IDX_DTYPES[type_code], struct.unpack(f">{ndim}I", raw_dims), 4 + 4 * ndim


def read_idx(path: str | Path, max_bytes: int | None = None) -> np.ndarray:
    """The array stored in an IDX file, after checking its header against what the file holds; `max_bytes`: the
    most data the dataset it belongs to can hold (a header declaring more is refused before anything is read)."""
    path = Path(path)
    compressed = path.suffix == ".gz"
    try:
        with open_regular(path) as file:
            handle = gzip.GzipFile(fileobj=file) if compressed else file
            dtype, dims, header = _declared(path, handle)
            expected = math.prod(dims) * dtype.itemsize
            shape = "x".join(str(d) for d in dims)
            if max_bytes is not None and expected > max_bytes:
                raise DataError(f"{path}: its header declares {shape} ({size_text(expected)} of data), more than "
                                f"this dataset's file can hold ({size_text(max_bytes)}); not read")
            found = os.fstat(file.fileno()).st_size - header
            if not compressed and found != expected:
                problem = "truncated" if found < expected else "has trailing bytes"
                raise DataError(f"{path}: {problem}: its header says {shape} ({expected} bytes of data), "
                                f"the file holds {found}")
            if expected > memory()[1]:
                raise DataError(f"{path}: its header declares {shape} ({size_text(expected)} of data); this machine "
                                f"has {memory_text()}")
            buffer = np.empty(expected, dtype=np.uint8)
            got = _read_into(handle, buffer)
            if got < expected:
                raise DataError(f"{path}: truncated: its header says {shape} ({expected} bytes of data), the file "
                                f"holds {got}")
            if compressed and handle.read(1):
                raise DataError(f"{path}: has trailing bytes: its header says {shape} ({expected} bytes of data), "
                                "the file inflates to more; refused after reading one byte beyond")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read as {'gzip' if compressed else 'a file'} ({exc})") from None
    return buffer.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = np.dtype(array.dtype).newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + body)
