"""Checkpoints: one .npz holding every parameter and a JSON description of the model.

Loading uses ``allow_pickle=False`` and rebuilds layers from their class names and
constructor arguments, so opening a checkpoint can never run code. The path is used
exactly as given (no suffix is added).
"""
import json
import math
import os
import zipfile

import numpy as np

FORMAT = "minicnn-checkpoint"
FORMAT_VERSION = 1
ARCH_KEY = "__architecture__"
MAX_ARCH_BYTES = 1 << 20
#: deflate cannot expand data more than about 1032 to 1: a zip entry declaring more is lying
MAX_DEFLATE_RATIO = 1032


class CheckpointError(ValueError):
    """A file is not a valid minicnn checkpoint, or does not match the model."""


def save(model, path, metadata=None):
    """Write ``model`` to ``path`` atomically: a temporary file, fsync, then rename."""
    from . import __version__
    from ._io import atomic_write

    arch = {"format": FORMAT, "format_version": FORMAT_VERSION, "minicnn_version": __version__,
            "layers": model.get_config(), "metadata": metadata or {}}
    try:
        text = json.dumps(arch)
    except TypeError as e:
        raise TypeError(f"save: metadata must be JSON-serialisable: {e}") from None
    arrays = {ARCH_KEY: np.array(text)}
    for name, value in model.state_dict().items():
        arrays["param:" + name] = value
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_architecture(path):
    """The JSON description stored in a checkpoint (format, versions, layers, metadata)."""
    with _open(path) as npz:
        return _architecture(npz, path)


def load(path):
    """Rebuild the model saved at ``path``; returns a ``Sequential`` (with ``.metadata``)."""
    from .init import current_budget, weight_budget
    from .layers import LAYERS
    from .model import Sequential

    with _open(path) as npz:
        arch = _architecture(npz, path)
        # what the file really holds, from the .npy headers and checked against its length,
        # bounds what rebuilding the layers may allocate (see init.weight_budget)
        shapes = {k: _entry_shape(npz, k, path) for k in npz.files if k.startswith("param:")}
        _check_no_overlap(npz, path)
        budget = sum(math.prod(s) for s in shapes.values())
        layers = []
        for i, entry in enumerate(arch["layers"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise CheckpointError(f"{path}: layer {i} has no config in the architecture")
            cls = LAYERS.get(entry.get("class"))
            if cls is None:
                raise CheckpointError(f"{path}: layer {i} is of unknown class {entry.get('class')!r}; "
                                      f"known: {sorted(LAYERS)}")
            try:
                with weight_budget(budget, "what the checkpoint stores"):
                    layers.append(cls.from_config(entry["config"]))
                    budget = current_budget()
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: layer {i} ({entry['class']}) cannot be rebuilt: {e}") from e
        model = Sequential(*layers)
        expected = {p.name: p for p in model.parameters()}
        stored = {k[len("param:"):] for k in npz.files if k.startswith("param:")}
        if set(expected) != stored:
            raise CheckpointError(
                f"{path}: parameters do not match the architecture: missing "
                f"{sorted(set(expected) - stored)}, unexpected {sorted(stored - set(expected))}")
        for name, p in expected.items():
            value = _read(npz, "param:" + name, path)
            if value.shape != p.value.shape or value.dtype.kind != "f":
                raise CheckpointError(f"{path}: parameter {name} is {value.dtype} {value.shape}, the "
                                      f"architecture needs {p.value.dtype} {p.value.shape}")
            p.value[...] = value
    model.metadata = arch.get("metadata", {})
    return model


def _open(path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a minicnn checkpoint (cannot read it as .npz: {e})") from e


def _file_length(npz):
    fp = npz.zip.fp
    where = fp.tell()
    try:
        return fp.seek(0, os.SEEK_END)
    finally:
        fp.seek(where)


def _check_no_overlap(npz, path):
    """Entries must not share bytes: each one's compressed data is bounded by the file, but
    entries claiming overlapping ranges could each claim the whole file (and 1032 times it
    once inflated), growing the allocation budget with the square of the file's size."""
    stored = sum(info.compress_size for info in npz.zip.infolist())
    length = _file_length(npz)
    if stored > length:
        raise CheckpointError(f"{path}: its entries claim {stored:,} compressed bytes in a file "
                              f"of {length:,} (overlapping entries)")


def _entry_shape(npz, key, path):
    """The shape an array entry declares, checked against the entry's and the file's sizes
    before anything is allocated for it."""
    name = key + ".npy"
    try:
        info = npz.zip.getinfo(name)
        with npz.zip.open(name) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            header_bytes = f.tell()
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: array {key!r} is corrupted or truncated ({e})") from e
    if dtype.kind != "f" or dtype.itemsize > 8:
        raise CheckpointError(f"{path}: array {key!r} is {dtype}, not float32 or float64")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - header_bytes:
        raise CheckpointError(f"{path}: array {key!r} declares shape {shape} ({declared:,} bytes) "
                              f"but its entry holds {info.file_size - header_bytes:,} bytes")
    limit = info.compress_size * (MAX_DEFLATE_RATIO if info.compress_type else 1)
    if info.file_size > limit or info.compress_size > _file_length(npz):
        raise CheckpointError(f"{path}: array {key!r} claims {info.file_size:,} bytes, more than "
                              f"its {info.compress_size:,} stored bytes can hold")
    return shape


def _read(npz, key, path):
    try:
        return npz[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: array {key!r} is corrupted or truncated ({e})") from e


def _architecture(npz, path):
    if ARCH_KEY not in npz.files:
        raise CheckpointError(f"{path}: not a minicnn checkpoint (no {ARCH_KEY} entry)")
    info = npz.zip.getinfo(ARCH_KEY + ".npy")
    if info.file_size > MAX_ARCH_BYTES:
        raise CheckpointError(f"{path}: architecture entry is {info.file_size} bytes, more than "
                              f"the {MAX_ARCH_BYTES} allowed")
    raw = _read(npz, ARCH_KEY, path)
    try:
        arch = json.loads(str(raw[()]))
    except (json.JSONDecodeError, TypeError, IndexError, ValueError) as e:
        raise CheckpointError(f"{path}: architecture is not valid JSON ({e})") from e
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minicnn checkpoint (format {arch.get('format') if isinstance(arch, dict) else None!r})")
    if arch.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {arch.get('format_version')!r}; "
                              f"this minicnn reads version {FORMAT_VERSION}")
    if not isinstance(arch.get("layers"), list):
        raise CheckpointError(f"{path}: architecture has no list of layers")
    return arch
