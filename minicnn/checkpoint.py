"""Checkpoints: one .npz holding every parameter and a JSON description of the model.

Loading never unpickles and rebuilds layers from their class names and constructor
arguments, so opening a checkpoint can never run code. A file is untrusted until checked:
every failure to load one is a CheckpointError naming the problem, and memory stays
within a small multiple of the weights its entries declare (minicnn._npz checks each
entry's sizes before reading it; the layers are rebuilt within that budget, and each
array's shape is checked against its layer's before its data is read). The path is used
exactly as given (no suffix is added).
"""
import json
import math

import numpy as np

from ._npz import Archive

__all__ = ["FORMAT", "FORMAT_VERSION", "ARCH_KEY", "STATE_KEY", "MAX_ARCH_BYTES",
           "CheckpointError", "open_archive", "save", "read_architecture", "load"]

FORMAT = "minicnn-checkpoint"
FORMAT_VERSION = 1
ARCH_KEY = "__architecture__"
#: the entry of a trainer state (Trainer.save_state), named when one is loaded as a model
STATE_KEY = "__trainer__"
MAX_ARCH_BYTES = 1 << 20


class CheckpointError(ValueError):
    """A file is not a valid minicnn checkpoint, or does not match the model."""


def open_archive(path, what="minicnn checkpoint"):
    """The .npz at ``path`` for checked reading (minicnn._npz.Archive); problems raise
    CheckpointError."""
    return Archive(path, CheckpointError, what)


def save(model, path, metadata=None):
    """Write ``model`` to ``path`` atomically: a temporary file, fsync, then rename."""
    from . import __version__
    from ._atomic import atomic_write

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
    return _named_errors(path, _read_architecture, path)


def _read_architecture(path):
    with open_archive(path) as archive:
        return _architecture(archive)


def load(path):
    """Rebuild the model saved at ``path``; returns a ``Sequential`` (with ``.metadata``).

    Raises FileNotFoundError for a missing file, CheckpointError for anything else."""
    return _named_errors(path, _load, path)


def _named_errors(path, fn, *args):
    try:
        return fn(*args)
    except (FileNotFoundError, CheckpointError):
        raise
    except Exception as e:      # a case the checks do not name still says what it is
        raise CheckpointError(f"{path}: not a loadable minicnn checkpoint "
                              f"({type(e).__name__}: {e})") from e


def _load(path):
    from .layers import CONTAINERS

    with open_archive(path) as archive:
        arch = _architecture(archive)
        # what the file really holds, from the .npy headers checked against the entries'
        # sizes, bounds what rebuilding the layers may allocate (see init.weight_budget)
        shapes = {n[len("param:"):]: archive.header(n, "fi")
                  for n in archive.names if n.startswith("param:")}
        budget = sum(math.prod(shape) for shape, _, _ in shapes.values())
        layers = []
        for i, entry in enumerate(arch["layers"]):
            layer, budget = _rebuild(path, i, entry, budget)
            layers.append(layer)
        model = CONTAINERS["Sequential"](*layers)
        expected = {e.name: e for e in model.state_entries()}
        if set(expected) != set(shapes):
            raise CheckpointError(
                f"{path}: parameters do not match the architecture: missing "
                f"{sorted(set(expected) - set(shapes))}, unexpected "
                f"{sorted(set(shapes) - set(expected))}")
        for name, p in expected.items():        # every shape, before any data is read
            shape, dtype, _ = shapes[name]
            if shape != p.value.shape or (dtype.kind == "i") != (p.value.dtype.kind == "i"):
                raise CheckpointError(f"{path}: parameter {name} is {dtype} {shape}, the "
                                      f"architecture needs {p.value.dtype} {p.value.shape}")
        for name, p in expected.items():
            p.value[...] = archive.read("param:" + name, "fi")
    model.metadata = arch.get("metadata", {})
    return model


def _rebuild(path, i, entry, budget):
    """Layer ``i`` from its entry, its weights (zeros, to be read) within ``budget`` values;
    returns (layer, what is left of the budget)."""
    from .initializers import current_budget, weight_budget
    from .layers import LAYERS

    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise CheckpointError(f"{path}: layer {i} has no config in the architecture")
    name = entry.get("class")
    if not isinstance(name, str) or name not in LAYERS:
        raise CheckpointError(f"{path}: layer {i} is of unknown class {name!r}; "
                              f"known: {sorted(LAYERS)}")
    try:
        with weight_budget(budget, "what the checkpoint stores", draw=False):
            layer = LAYERS[name].from_config(entry["config"])
            return layer, current_budget()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: layer {i} ({name}) cannot be rebuilt: {e}") from e


def _architecture(archive):
    path = archive.path
    if ARCH_KEY not in archive.names and STATE_KEY in archive.names:
        raise CheckpointError(f"{path}: a trainer state (Trainer.save_state), not a model "
                              f"checkpoint; resume from it with Trainer.load_state")
    arch = archive.read_json(ARCH_KEY, MAX_ARCH_BYTES)
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        got = arch.get("format") if isinstance(arch, dict) else None
        raise CheckpointError(f"{path}: not a minicnn checkpoint (format {got!r})")
    if arch.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {arch.get('format_version')!r}; "
                              f"this minicnn reads version {FORMAT_VERSION}")
    if not isinstance(arch.get("layers"), list):
        raise CheckpointError(f"{path}: architecture has no list of layers")
    if not isinstance(arch.get("metadata", {}), dict):
        raise CheckpointError(f"{path}: its metadata is a {type(arch['metadata']).__name__}, "
                              f"not a mapping of settings")
    return arch
