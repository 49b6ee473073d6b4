"""The IDX format of (Fashion-)MNIST: a big-endian header, then raw values.

Magic: two zero bytes, a type code, the number of dimensions; then one uint32 size per
dimension; then the values, row-major. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from math import prod

import numpy as np

from vemkit.errors import DataError

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, name: str = "<idx>") -> np.ndarray:
    """Decode an IDX file (gzip or plain) into a native-endian array of its shape."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: broken gzip stream ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: not an IDX file (the magic number must start with two zeros)")
    code, ndim = data[2], data[3]
    if code not in TYPES:
        raise DataError(f"{name}: unknown IDX value type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header ({len(data)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(TYPES[code])
    expected = prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{name}: shape {shape} needs {expected} bytes of values, the file has "
            f"{len(data) - header}"
        )
    values = np.frombuffer(data, dtype=dtype, count=prod(shape), offset=header)
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX (used to make test fixtures and to round-trip)."""
    codes = [c for c, kind in TYPES.items() if np.dtype(kind) == array.dtype.newbyteorder(">")]
    if not codes:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    code = codes[0]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.dtype(TYPES[code])).tobytes()
