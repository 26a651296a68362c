"""The IDX file format (MNIST's): parse with every size checked before anything is allocated.

Layout: two zero bytes, a type byte, a rank byte, then one big-endian uint32 per
dimension, then the data, big-endian, row-major.
"""
import gzip
import math
import zlib

import numpy as np

__all__ = ["IDX_TYPES", "CODES", "IDXError", "parse_idx", "decompress", "write_idx"]

IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {v.newbyteorder(">") if v.itemsize > 1 else v: k for k, v in IDX_TYPES.items()}


class IDXError(ValueError):
    """A file is not a well-formed IDX file (bad magic, dimensions or length)."""


def parse_idx(data, name="IDX data", expect_ndim=None):
    """Parse IDX bytes (a bytes or bytearray) into an array; a bytearray gives a writable array."""
    if len(data) < 4:
        raise IDXError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, code, ndim = int.from_bytes(data[0:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_TYPES:
        raise IDXError(f"{name}: bad magic number 0x{int.from_bytes(data[0:4], 'big'):08x} "
                       f"(expected 0x0000TTNN with a known type TT, e.g. 0x00000803 for uint8 images)")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IDXError(f"{name}: has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: truncated header ({len(data)} bytes, the header needs {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    # Python integers: a fixed-width product wraps (dims (29700, 24920845, 24923011) made
    # 9,884 bytes in uint64) and a wrapped size would pass the length check
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IDXError(f"{name}: {what}: the header declares shape {shape} ({expected:,} bytes in all), "
                       f"the data is {len(data):,} bytes")
    out = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return out.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else out


def decompress(raw, name, limit):
    """gunzip ``raw`` if it is gzip (else return it), refusing output longer than ``limit`` bytes."""
    if raw[:2] != b"\x1f\x8b":
        return bytearray(raw)
    out = bytearray()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        view = memoryview(raw)
        for start in range(0, len(raw), 1 << 20):
            out += d.decompress(view[start:start + (1 << 20)], limit + 1 - len(out))
            if len(out) > limit:
                raise IDXError(f"{name}: decompresses to more than the expected {limit:,} bytes")
        out += d.flush()
        if not d.eof:
            raise IDXError(f"{name}: the gzip stream is truncated")
    except zlib.error as e:
        raise IDXError(f"{name}: corrupt gzip stream ({e})") from None
    return out


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file (gzip-compressed when the path ends in .gz or ``compress``)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if key not in CODES:
        raise TypeError(f"write_idx: IDX cannot hold dtype {array.dtype}")
    header = bytes([0, 0, CODES[key], array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=key).tobytes()
    if compress or (compress is None and str(path).endswith(".gz")):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
