"""Reading .npz files that may have been crafted: each size is checked before anything is
read or allocated for it, and every failure is one error naming the problem.

What np.load would trust is checked first: that the file is a zip at all (a lone .npy
array is named as such); each entry stored or deflated, not encrypted, its sizes within
the file and within what deflate can expand (about 1032 to 1), entries not overlapping
nor named twice; each array's .npy header short, its dtype one the caller allows and its
shape's bytes equal to the entry's size. The caller then checks the shapes against what
it expects before ``read`` decompresses anything beyond a header.
"""
import io
import json
import math
import os
import zipfile

import numpy as np

__all__ = ["MAX_DEFLATE_RATIO", "MAX_HEADER", "MAX_JSON_DEPTH", "Archive", "json_depth"]

#: deflate cannot expand data more than about 1032 to 1: an entry declaring more is lying
MAX_DEFLATE_RATIO = 1032
#: the longest .npy header accepted (np.save writes 128 bytes, NumPy reads up to 10,000)
MAX_HEADER = 10_000
#: JSON nested deeper than this is refused (a checkpoint's is about 6 deep)
MAX_JSON_DEPTH = 64
_CHUNK = 1 << 20
_NPY_MAGIC = b"\x93NUMPY"


class Archive:
    """An open .npz; ``error(message)`` makes the exception raised for any problem.

    ``names``: the array names (entries without their .npy suffix).
    """

    def __init__(self, path, error, what):
        self.path, self.error, self.what = path, error, what
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise
        except OSError as e:
            raise self._fail(f"cannot be read ({e.strerror or e})") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _fail(self, message):
        return self.error(f"{self.path}: {message}")

    def _open(self):
        start = self._file.read(8)
        self.length = self._file.seek(0, os.SEEK_END)
        self._file.seek(0)
        if start.startswith(_NPY_MAGIC):
            raise self._fail(f"not a {self.what}: it is a single NumPy array (.npy file), "
                             f"not the .npz archive a {self.what} is")
        if not start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise self._fail(f"not a {self.what} (not a .npz/zip archive)")
        try:
            self.zip = zipfile.ZipFile(self._file)
            infos = self.zip.infolist()
        except Exception as e:                       # zipfile raises many kinds on bad bytes
            raise self._fail(f"not a {self.what} (cannot read it as .npz: {e})") from None
        stored = sum(info.compress_size for info in infos)
        if stored > self.length:
            raise self._fail(f"its entries claim {stored:,} compressed bytes in a file of "
                             f"{self.length:,} (overlapping entries)")
        self.infos = {}
        for info in infos:
            self._check_entry(info)
            self.infos[info.filename] = info
        self.names = [n[:-4] for n in self.infos if n.endswith(".npy")]

    def _check_entry(self, info):
        name = info.filename
        if name in self.infos:
            raise self._fail(f"entry {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise self._fail(f"entry {name!r} is encrypted; a {self.what} never is")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self._fail(f"entry {name!r} uses compression method {info.compress_type}; a "
                             f"{self.what} is stored or deflated")
        if info.header_offset + info.compress_size > self.length:
            raise self._fail(f"entry {name!r} runs past the end of the file")
        deflated = info.compress_type == zipfile.ZIP_DEFLATED
        if (info.file_size > info.compress_size * MAX_DEFLATE_RATIO if deflated
                else info.file_size != info.compress_size):
            raise self._fail(f"array {name[:-4]!r} claims {info.file_size:,} bytes, which its "
                             f"{info.compress_size:,} stored bytes cannot hold")

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- arrays ------------------------------------------------------------------------
    def header(self, name, kinds="f"):
        """(shape, dtype, fortran_order) of array ``name``, its dtype's kind one of ``kinds``
        ('f': float32 or float64, 'i': int64 (a counter such as BatchNorm's
        num_batches_tracked), 'U': text), and its size checked against the entry's."""
        info = self.infos.get(name + ".npy")
        if info is None:
            raise self._fail(f"has no array {name!r}")
        try:
            with self.zip.open(info) as f:
                shape, fortran, dtype, header_bytes = _read_header(f)
        except Exception as e:
            raise self._fail(f"array {name!r} is corrupted or truncated ({e})") from None
        allowed = ((dtype.kind == "f" and dtype.itemsize in (4, 8) and "f" in kinds)
                   or (dtype.kind == "i" and dtype.itemsize == 8 and "i" in kinds)
                   or (dtype.kind == "U" and "U" in kinds))
        if not allowed or dtype.hasobject:
            need = " or ".join({"f": "float32 or float64", "i": "int64", "U": "text"}[k]
                               for k in kinds)
            raise self._fail(f"array {name!r} is {dtype}, not {need}")
        declared = math.prod(shape) * dtype.itemsize
        if declared != info.file_size - header_bytes:
            raise self._fail(f"array {name!r} declares shape {shape} ({declared:,} bytes) but "
                             f"its entry holds {info.file_size - header_bytes:,} bytes")
        return shape, dtype, fortran

    def read(self, name, kinds="f"):
        """The array ``name``, read in chunks into an array of the size its header declares
        (call ``header`` first and check the shape: this allocates it)."""
        shape, dtype, fortran = self.header(name, kinds)
        out = np.empty(math.prod(shape) * dtype.itemsize, np.uint8)
        try:
            with self.zip.open(self.infos[name + ".npy"]) as f:
                _read_header(f)
                filled = 0
                while filled < out.size:
                    chunk = f.read(min(_CHUNK, out.size - filled))
                    if not chunk:
                        raise EOFError(f"{out.size - filled:,} bytes missing")
                    out[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    filled += len(chunk)
                if f.read(1):
                    raise ValueError("data beyond the declared shape")
        except Exception as e:                  # CRC mismatch, truncated or bad deflate data
            raise self._fail(f"array {name!r} is corrupted or truncated ({e})") from None
        array = out.view(dtype)
        array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
        return array.astype(dtype.newbyteorder("="), copy=False)

    def read_json(self, name, limit):
        """The JSON text stored as a 0-d text array ``name`` (at most ``limit`` bytes),
        parsed, and nested at most MAX_JSON_DEPTH deep."""
        info = self.infos.get(name + ".npy")
        if info is None:
            raise self._fail(f"not a {self.what} (no {name} entry)")
        if info.file_size > limit:
            raise self._fail(f"{name} entry is {info.file_size:,} bytes, more than the "
                             f"{limit:,} allowed")
        shape, _, _ = self.header(name, "U")
        if shape != ():
            raise self._fail(f"{name} must be one text value, got an array of shape {shape}")
        text = str(self.read(name, "U")[()])
        try:
            value = json.loads(text)
        except RecursionError:
            raise self._fail(f"{name} is JSON nested too deeply") from None
        except ValueError as e:
            raise self._fail(f"{name} is not valid JSON ({e})") from None
        if json_depth(value) > MAX_JSON_DEPTH:
            raise self._fail(f"{name} is JSON nested more than {MAX_JSON_DEPTH} deep")
        return value


def _read_header(f):
    """(shape, fortran_order, dtype, header bytes) of the .npy stream f, its header length
    checked before the header is read."""
    magic = f.read(8)
    if len(magic) != 8 or not magic.startswith(_NPY_MAGIC):
        raise ValueError("not a .npy array")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    size_bytes = 2 if version == (1, 0) else 4
    raw = f.read(size_bytes)
    length = int.from_bytes(raw, "little")
    if len(raw) != size_bytes or length > MAX_HEADER:
        raise ValueError(f"a .npy header of {length:,} bytes (at most {MAX_HEADER:,})")
    header = f.read(length)
    if len(header) != length:
        raise EOFError("truncated .npy header")
    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = reader(io.BytesIO(raw + header))
    return shape, fortran, dtype, 8 + size_bytes + length


def json_depth(value):
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            stack.extend((child, depth + 1) for child in children)
    return deepest
