"""The files of a training run and the rules that keep a finished model safe.

A run of ``minicnn train --out runs --arch lenet5`` writes, in ``runs/``:

- ``lenet5-last.npz``: the model after every epoch, and the weights of the moment an
  interruption stopped it (a checkpoint like any other: ``minicnn evaluate`` reads it); its
  metadata says whether the run had finished and holds the run's settings.
- ``lenet5-last-state.npz``: the trainer's state at the end of the last complete epoch
  (``Trainer.save_state``), which ``--resume`` continues from.
- ``lenet5.npz``: the finished model, written only when a run completes all its epochs, and
  never over a finished model that recorded a better test accuracy on the same data set (or
  over a file that records none) unless asked (``overwrite``). It records its test accuracy.
- ``lenet5-history.jsonl``: one line per epoch, appended (never truncated), each line naming
  its run.

These are the conventions of PyTorch Lightning (``last.ckpt`` every epoch, the best model by a
monitored value) and Keras (``ModelCheckpoint(save_best_only=True)`` compares with what it
already saved). Every file is written atomically, so a kill at any moment leaves the previous
version or the new one.
"""
import math
import os

from .callbacks import Callback

__all__ = ["RunFileError", "RunPaths", "read_metadata", "check_start", "merge_settings",
           "final_decision", "LastCheckpoint", "save_last"]


class RunFileError(ValueError):
    """A run cannot start, or resume, with the files found in its folder."""


class RunPaths:
    """The file names of one architecture's run in ``out``."""

    def __init__(self, out, arch):
        self.out = os.fspath(out)
        self.final = os.path.join(self.out, f"{arch}.npz")
        self.last = os.path.join(self.out, f"{arch}-last.npz")
        self.state = os.path.join(self.out, f"{arch}-last-state.npz")
        self.history = os.path.join(self.out, f"{arch}-history.jsonl")


def read_metadata(path):
    """The metadata dict a checkpoint records; None when there is no file; RunFileError when the
    file is not a readable checkpoint."""
    from .checkpoint import CheckpointError, read_architecture

    if not os.path.exists(path):
        return None
    try:
        meta = read_architecture(path).get("metadata")
    except (CheckpointError, OSError) as e:
        raise RunFileError(f"{path} is not a readable minicnn checkpoint ({e})") from e
    return meta if isinstance(meta, dict) else {}


def _stored_run(paths):
    """The settings of the run ``paths.state`` belongs to, from ``paths.last``'s metadata."""
    meta = read_metadata(paths.last)
    run = meta.get("run") if meta else None
    if not isinstance(run, dict):
        raise RunFileError(f"cannot resume: {paths.last}, which holds the run's settings, is missing "
                           "or records none; start a new run with --restart")
    return meta, run


def check_start(paths, resume, restart):
    """Before any work: the stored settings to resume with (``resume``), or None for a new run.

    A new run refuses to start over an unfinished one (its state would be lost) unless
    ``restart``; it then removes the old run's state, so that the state in the folder always
    belongs to the run whose settings ``-last.npz`` holds.
    """
    if os.path.exists(paths.out) and not os.path.isdir(paths.out):
        raise RunFileError(f"{paths.out} is a file, not a folder for the run's files")
    has_state = os.path.exists(paths.state)
    if resume:
        if restart:
            raise RunFileError("--resume continues the last run and --restart starts a new one: choose one")
        if not has_state:
            raise RunFileError(f"nothing to resume: no {paths.state} (start a run without --resume)")
        meta, run = _stored_run(paths)
        if meta.get("finished"):
            raise RunFileError(f"nothing to resume: the run in {paths.state} finished all its "
                               f"{run.get('epochs')} epochs")
        return run
    if has_state:
        try:
            meta = read_metadata(paths.last) or {}
        except RunFileError:
            meta = {}
        if not meta.get("finished") and not restart:
            done = meta.get("epochs")
            planned = meta.get("run", {}).get("epochs") if isinstance(meta.get("run"), dict) else None
            where = f" ({done} of {planned} epochs done)" if done is not None and planned else ""
            raise RunFileError(f"{paths.state} holds an unfinished run{where}: continue it with --resume, "
                               "or start over with --restart")
        os.unlink(paths.state)
    return None


def merge_settings(stored, given, flag_names=None):
    """The stored run's settings, refusing given ones that differ (a resumed run continues as
    it started). ``given`` maps names to values, None for not given."""
    names = flag_names or {}
    merged = dict(stored)
    for key, value in given.items():
        if value is None or key not in stored:
            continue
        if value != stored[key]:
            name = names.get(key, key)
            raise RunFileError(f"the run to resume was started with {name} {stored[key]!r}, not "
                               f"{value!r}: leave {name} out to resume it, or start a new run")
    return merged


def final_decision(path, accuracy, kind, overwrite=False):
    """Whether a finished run with test ``accuracy`` on ``kind`` may write ``path``: (bool, why)."""
    if not os.path.exists(path):
        return True, f"wrote {path}"
    if overwrite:
        return True, f"replaced {path} (--overwrite)"
    try:
        meta = read_metadata(path)
    except RunFileError as e:
        return False, f"kept {path}: {e}; pass --overwrite to replace it"
    old = meta.get("test_accuracy")
    if isinstance(old, bool) or not isinstance(old, (int, float)) or not math.isfinite(old):
        return False, f"kept {path}: it records no test accuracy to compare with; pass --overwrite to replace it"
    if meta.get("kind", "mnist") != kind:
        return False, (f"kept {path}: it holds a model trained on {meta.get('kind')!r}, not {kind!r}; "
                       "pass --overwrite to replace it, or choose another --out folder")
    if old > accuracy:
        return False, (f"kept {path} (test accuracy {100 * old:.2f}%): better than this run's "
                       f"{100 * accuracy:.2f}%; pass --overwrite to replace it")
    return True, f"replaced {path} (test accuracy {100 * old:.2f}% -> {100 * accuracy:.2f}%)"


class LastCheckpoint(Callback):
    """After every epoch: the model to ``paths.last`` (with ``metadata(trainer)``), then the
    trainer's state to ``paths.state``. The model goes first: a kill between the two leaves a
    state one epoch behind, which --resume repeats, never a state ahead of the settings."""

    def __init__(self, paths, metadata):
        self.paths = paths
        self.metadata = metadata

    def on_epoch_end(self, trainer, epoch, logs):
        save_last(trainer, self.paths, self.metadata(trainer, interrupted=False))
        trainer.save_state(self.paths.state)


def save_last(trainer, paths, metadata):
    trainer.model.save(paths.last, metadata=metadata)
