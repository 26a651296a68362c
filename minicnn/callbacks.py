"""Callbacks the Trainer calls at the start and end of training, around every batch and after
every epoch."""
import json
import math
import os

import numpy as np

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "recorded_value", "ROTATED_LOGS",
           "JSONLinesLogger", "CSVLogger"]


class Callback:
    """Override any of the hooks. Set ``trainer.stop_training = True`` to stop after this epoch.

    The batch hooks get the batch's index in its epoch (from 0) and a dict ``logs``:
    on_batch_begin {'batch', 'size', 'lr'}; on_batch_end adds the batch's own 'loss' and,
    for a classification loss, 'accuracy' (after the optimizer's step, before a per-batch
    schedule's). They run on every batch: keep them short.
    """

    def on_train_begin(self, trainer):
        pass

    def on_batch_begin(self, trainer, batch_index, logs):
        pass

    def on_batch_end(self, trainer, batch_index, logs):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer):
        pass


def _mode_for(owner, monitor, mode):
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _value(owner, monitor, logs):
    if monitor not in logs or logs[monitor] is None:
        raise KeyError(f"{owner}: monitor={monitor!r} is not in the epoch logs {sorted(logs)}; "
                       "pass validation_data to fit() to monitor a val_ metric")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", patience=3, mode="auto", min_delta=0.0,
                 restore_best_weights=False):
        self.monitor = monitor
        self.patience = int(patience)
        self.mode = _mode_for("EarlyStopping", monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights
        self.best = None
        self.best_state = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, trainer):
        self.best, self.best_state, self.wait, self.stopped_epoch = None, None, 0, None

    def on_epoch_end(self, trainer, epoch, logs):
        value = _value("EarlyStopping", self.monitor, logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_state = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            if self.restore_best_weights and self.best_state is not None:
                trainer.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model after an epoch: every epoch, or only when ``monitor`` improves.

    ``path`` may hold ``{epoch}`` (e.g. ``"ckpt-{epoch:02d}.npz"``). Each file records the
    monitored value in its metadata (``monitor``, ``value``). With ``save_best_only`` the best
    value survives every ``fit`` and every new ModelCheckpoint into the same path: the first
    epoch compares with the value recorded in an existing file (as Keras'
    ``initial_value_threshold``, which may also be given), and a file that records no such value
    is never replaced unless ``overwrite=True``. A worse model never replaces a better one.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto",
                 initial_value_threshold=None, overwrite=False):
        self.path = os.fspath(path)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"ModelCheckpoint: monitor must be the name of a logged value such as "
                             f"'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _mode_for("ModelCheckpoint", monitor, mode)
        self.overwrite = bool(overwrite)
        self.best = None
        if initial_value_threshold is not None:
            self.best = _finite("ModelCheckpoint", "initial_value_threshold", initial_value_threshold)
        self._read_existing = not self.overwrite

    def _better(self, value):
        if not math.isfinite(value):
            return False
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

    def on_train_begin(self, trainer):
        if not (self.save_best_only and self._read_existing) or "{" in self.path:
            return
        self._read_existing = False
        recorded = recorded_value(self.path, self.monitor)
        if recorded is _ABSENT:
            return
        if recorded is None:
            raise ValueError(f"ModelCheckpoint: {self.path} exists and records no {self.monitor} to "
                             "compare with; pass overwrite=True to replace it, or another path")
        if self.best is None or (recorded < self.best if self.mode == "min" else recorded > self.best):
            self.best = recorded

    def on_epoch_end(self, trainer, epoch, logs):
        value = _value("ModelCheckpoint", self.monitor, logs) if (
            self.save_best_only or self.monitor in logs) else None
        if self.save_best_only:
            if not self._better(value):
                return
            self.best = value
        metadata = {"epoch": epoch, "logs": {k: _plain(v) for k, v in logs.items()},
                    "monitor": self.monitor, "mode": self.mode, "value": _plain(value)}
        trainer.model.save(self.path.format(epoch=epoch), metadata=metadata)


_ABSENT = object()


def recorded_value(path, monitor):
    """The ``monitor`` value a checkpoint at ``path`` records: a float, None when the file
    exists but records none (or is not a readable checkpoint), or ``_ABSENT`` with no file."""
    from .checkpoint import CheckpointError, read_architecture

    if not os.path.exists(path):
        return _ABSENT
    try:
        meta = read_architecture(path).get("metadata")
    except (CheckpointError, OSError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("monitor") == monitor:
        value = meta.get("value")
    else:  # written before checkpoints named their monitor: the epoch's logs hold it
        logs = meta.get("logs")
        value = logs.get(monitor) if isinstance(logs, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _finite(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or \
            not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _rotate(path):
    """Move a non-empty ``path`` aside to ``path.1`` (an older ``.1`` moves to ``.2``, and so on
    up to ``.9``; the oldest goes), so a new log never truncates an old one."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    for i in range(ROTATED_LOGS - 1, 0, -1):
        if os.path.exists(f"{path}.{i}"):
            os.replace(f"{path}.{i}", f"{path}.{i + 1}")
    os.replace(path, f"{path}.1")


#: how many earlier logs a logger with append=False keeps (NAME.1 ... NAME.9)
ROTATED_LOGS = 9


class JSONLinesLogger(Callback):
    """Append one JSON object per epoch (``epoch``, the epoch's logs and ``extra``) to ``path``.

    A log is never truncated: by default a new run appends its lines after the old ones
    (a resumed run continues the epoch numbers); with ``append=False`` the old file is moved to
    ``path.1`` (earlier ones to ``.2`` ... ``.9``) when the first new line is written.
    """

    def __init__(self, path, append=True, extra=None):
        self.path = os.fspath(path)
        self.append = bool(append)
        self.extra = dict(extra or {})
        self._fresh = False

    def on_train_begin(self, trainer):
        self._fresh = not self.append

    def on_epoch_end(self, trainer, epoch, logs):
        line = json.dumps({"epoch": epoch, **{k: _plain(v) for k, v in logs.items()},
                           **{k: _plain(v) for k, v in self.extra.items()}}) + "\n"
        if self._fresh:
            _rotate(self.path)
            self._fresh = False
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()


class CSVLogger(Callback):
    """Write the history as CSV, one row per epoch, with a header.

    ``append=True`` adds rows to an existing file with the same columns (a file with other
    columns is moved aside as with ``append=False``). ``append=False`` moves an existing file
    to ``path.1`` (earlier ones to ``.2`` ... ``.9``) when the first new row is written, never
    truncating it before.
    """

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = bool(append)
        self.keys = None
        self._fresh = False

    def on_train_begin(self, trainer):
        self.keys = None
        self._fresh = not self.append

    def _existing_header(self):
        import csv

        try:
            with open(self.path, newline="") as f:
                return next(csv.reader(f), None)
        except FileNotFoundError:
            return None

    def on_epoch_end(self, trainer, epoch, logs):
        import csv

        row = {"epoch": epoch, **{k: _plain(v) for k, v in logs.items()}}
        if self.keys is None:
            self.keys = list(row)
            if self._fresh or self._existing_header() not in (None, self.keys):
                _rotate(self.path)
            self._fresh = False
        new_file = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.keys, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
