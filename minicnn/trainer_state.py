"""A Trainer's resumable state in one .npz (Trainer.save_state / load_state), without pickle.

Entries: ``__trainer__`` (JSON: format, epoch, seed, history, the optimizer's step count
and learning rate, the scheduler's state), ``param:NAME`` (the model's parameters and
buffers) and ``opt:NAME:KEY`` (the optimizer's per-parameter arrays).

Loading treats the file as untrusted (see minicnn._npz): each entry's sizes and header are
checked, and each array's shape against the parameter it belongs to, before its data is
read, so memory stays within the model's and optimizer's own size. Everything is read and
checked before anything changes: a failed load leaves the model, optimizer, scheduler and
trainer as they were, and every failure is a CheckpointError naming the problem.
"""
import copy
import json
import math
import numbers

import numpy as np

from . import _atomic
from .checkpoint import ARCH_KEY, STATE_KEY, CheckpointError, open_archive

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_META_BYTES", "save", "load"]

FORMAT = "minicnn-trainer-state"
FORMAT_VERSION = 1
#: the JSON entry's largest size (the history grows by about 600 bytes an epoch)
MAX_META_BYTES = 1 << 24


def save(trainer, path):
    """Write ``trainer``'s state to ``path`` atomically."""
    opt = trainer.optimizer.state_dict()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "epoch": trainer.epoch,
            "seed": trainer.seed, "history": dict(trainer.history),
            "optimizer": {"steps": opt["steps"], "lr": opt["lr"]},
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler else None}
    arrays = {STATE_KEY: np.array(json.dumps(meta))}
    for name, value in trainer.model.state_dict().items():
        arrays["param:" + name] = value
    for name, state in opt["state"].items():
        for key, value in state.items():
            arrays[f"opt:{name}:{key}"] = value
    _atomic.atomic_write(path, lambda f: np.savez(f, **arrays))   # looked up now: tests wrap it


def load(trainer, path):
    """Restore what ``save`` wrote into ``trainer``, all or nothing."""
    try:
        meta, params, opt_state = _read(trainer, path)
    except (FileNotFoundError, CheckpointError):
        raise
    except Exception as e:      # a case the checks do not name still says what it is
        raise CheckpointError(f"{path}: not a loadable trainer state "
                              f"({type(e).__name__}: {e})") from e
    _commit(trainer, path, meta, params, opt_state)


def _read(trainer, path):
    with open_archive(path, "minicnn trainer state") as archive:
        if STATE_KEY not in archive.names and ARCH_KEY in archive.names:
            raise CheckpointError(f"{path}: a model checkpoint (model.save), not a trainer "
                                  f"state; load it with minicnn.load")
        meta = _check_meta(trainer, path, archive.read_json(STATE_KEY, MAX_META_BYTES))
        wanted = {e.name: e.value for e in trainer.model.state_entries()}
        param_entries, opt_entries = {}, {}
        for entry in archive.names:
            kind, _, rest = entry.partition(":")
            if entry == STATE_KEY:
                continue
            if kind == "param":
                param_entries[rest] = entry
            elif kind == "opt" and ":" in rest:
                name, key = rest.rsplit(":", 1)
                opt_entries.setdefault(name, {})[key] = entry
            else:
                raise CheckpointError(f"{path}: unexpected entry {entry!r} in a trainer state")
        if set(param_entries) != set(wanted):
            raise CheckpointError(
                f"{path}: parameters do not match the model: missing "
                f"{sorted(set(wanted) - set(param_entries))}, unexpected "
                f"{sorted(set(param_entries) - set(wanted))}")
        _check_optimizer_keys(trainer.optimizer, path, wanted, opt_entries)
        entries = list(param_entries.items()) + [
            (name, entry) for name, keys in opt_entries.items() for entry in keys.values()]
        for name, entry in entries:             # every shape, before any data is read
            kinds = "i" if wanted[name].dtype.kind == "i" else "f"   # a counter buffer: "i"
            shape, dtype, _ = archive.header(entry, kinds)
            if shape != wanted[name].shape:
                raise CheckpointError(f"{path}: {entry} is {dtype} {shape}, the model's "
                                      f"{name} is {wanted[name].shape}")
        params = {name: archive.read(entry, "fi") for name, entry in param_entries.items()}
        opt_state = {name: {key: archive.read(entry) for key, entry in keys.items()}
                     for name, keys in opt_entries.items()}
    return meta, params, opt_state


def _commit(trainer, path, meta, params, opt_state):
    """Apply a checked state; should anything still fail, put back what was there (the
    optimizer's and scheduler's attributes as they were: their load_state_dict replaces
    them, never changes them in place)."""
    model, optimizer, scheduler = trainer.model, trainer.optimizer, trainer.scheduler
    before = (model.state_dict(), dict(optimizer.__dict__),
              dict(scheduler.__dict__) if scheduler is not None else None,
              trainer.epoch, trainer.seed, trainer.history)
    try:
        model.load_state_dict(params)
        optimizer.load_state_dict({"steps": meta["optimizer"]["steps"],
                                   "lr": meta["optimizer"]["lr"], "state": opt_state})
        if scheduler is not None and meta["scheduler"] is not None:
            scheduler.load_state_dict(meta["scheduler"])
        trainer.epoch, trainer.seed = meta["epoch"], meta["seed"]
        trainer.history = type(trainer.history)(meta["history"])     # a History
    except Exception as e:
        model.load_state_dict(before[0])
        for obj, attributes in ((optimizer, before[1]), (scheduler, before[2])):
            if attributes is not None:
                obj.__dict__.clear()
                obj.__dict__.update(attributes)
        trainer.epoch, trainer.seed, trainer.history = before[3:]
        raise CheckpointError(f"{path}: cannot be applied ({type(e).__name__}: {e}); the "
                              f"trainer is as it was") from e


# --- checks -----------------------------------------------------------------------------

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v):
    return (isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v))


def _check_meta(trainer, path, meta):
    def bad(what):
        return CheckpointError(f"{path}: trainer state {what}")

    if not isinstance(meta, dict):
        raise bad(f"must be a JSON object, got {type(meta).__name__}")
    if meta.get("format", FORMAT) != FORMAT or meta.get("format_version", 1) != FORMAT_VERSION:
        raise bad(f"has format {meta.get('format')!r} version {meta.get('format_version')!r}; "
                  f"this minicnn reads {FORMAT!r} version {FORMAT_VERSION}")
    missing = [k for k in ("epoch", "seed", "history", "optimizer", "scheduler") if k not in meta]
    if missing:
        raise bad(f"lacks {missing}")
    if not _is_int(meta["epoch"]) or meta["epoch"] < 0:
        raise bad(f"epoch must be an int >= 0, got {meta['epoch']!r}")
    if meta["seed"] is not None and not (_is_int(meta["seed"]) and 0 <= meta["seed"] < 2**63):
        raise bad(f"seed must be None or an int in [0, 2**63), got {meta['seed']!r}")
    history = meta["history"]
    if not isinstance(history, dict) or not all(
            isinstance(k, str) and isinstance(v, list)
            and all(x is None or (isinstance(x, numbers.Real) and not isinstance(x, bool))
                    for x in v) for k, v in history.items()):
        raise bad("history must map names to lists of numbers (or null)")
    opt = meta["optimizer"]
    if not isinstance(opt, dict) or not (_is_int(opt.get("steps")) and opt["steps"] >= 0):
        raise bad(f"optimizer steps must be an int >= 0, got {opt!r}")
    if not _finite(opt.get("lr")) or opt["lr"] < 0:
        raise bad(f"optimizer lr must be a finite number >= 0, got {opt.get('lr')!r}")
    _check_scheduler(trainer.scheduler, meta["scheduler"], bad)
    return meta


def _check_scheduler(scheduler, state, bad):
    if state is None or scheduler is None:
        return
    expected = scheduler.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        raise bad(f"scheduler state must have the keys {sorted(expected)}, got {state!r}")
    nullable = getattr(scheduler, "nullable_state", ())
    if not all(_finite(v) or (k in nullable and v is None) for k, v in state.items()):
        raise bad(f"scheduler state must hold finite numbers, got {state!r}")
    if not _is_int(state.get("last_step", 0)) or state.get("last_step", 0) < 0:
        raise bad(f"scheduler last_step must be an int >= 0, got {state.get('last_step')!r}")
    if state.get("base_lr", 0) < 0:
        raise bad(f"scheduler base_lr must be >= 0, got {state['base_lr']!r}")
    probe = copy.copy(scheduler)            # the learning rate it would set, on a copy
    probe.__dict__.update(state)
    try:
        lr = probe.lr_at(state.get("last_step", 0))
    except (ArithmeticError, ValueError) as e:
        raise bad(f"scheduler state {state!r} gives no learning rate ({e})") from None
    if not _finite(lr) or lr < 0:
        raise bad(f"scheduler state {state!r} gives the learning rate {lr!r}")


def _check_optimizer_keys(optimizer, path, wanted, opt_entries):
    """Each parameter's optimizer arrays: a parameter the model has, and a set of keys the
    optimizer's step can use (Adam's two moments together, or none)."""
    allowed = None
    if callable(getattr(optimizer, "state_keys", None)):
        allowed = (optimizer.state_keys(),)
    for name, keys in opt_entries.items():
        if name not in wanted:
            raise CheckpointError(f"{path}: optimizer state for {name!r}, which the model "
                                  f"does not have")
        if allowed is not None and set(keys) not in allowed:
            raise CheckpointError(f"{path}: optimizer state for {name!r} has {sorted(keys)}; "
                                  f"{type(optimizer).__name__} keeps "
                                  f"{' or '.join(str(sorted(a)) for a in allowed)}")
