"""Read, validate and write IDX files (the MNIST format), gzip-compressed or plain."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from clrelu.errors import DataError

# IDX type codes and the big-endian numpy dtypes they stand for.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'a file'} ({exc})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, after checking its magic number and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file: only {len(raw)} bytes")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or type_code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}; not an IDX file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        shape = "x".join(str(d) for d in dims)
        problem = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{path}: {problem}: its header says {shape} ({expected} bytes of data), "
                        f"the file holds {found}")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


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
