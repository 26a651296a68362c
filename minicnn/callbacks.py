"""Callbacks the Trainer calls at the start and end of training and after every epoch."""
import json
import math
import os

import numpy as np


class Callback:
    """Override any of the hooks. Set ``trainer.stop_training = True`` to stop after this epoch."""

    def on_train_begin(self, trainer):
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

    ``path`` may hold ``{epoch}`` (e.g. ``"ckpt-{epoch:02d}.npz"``).
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _mode_for("ModelCheckpoint", monitor, mode)
        self.best = None

    def on_train_begin(self, trainer):
        self.best = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.save_best_only:
            value = _value("ModelCheckpoint", self.monitor, logs)
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                return
            self.best = value
        trainer.model.save(self.path.format(epoch=epoch), metadata={"epoch": epoch, "logs": logs})


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JSONLinesLogger(Callback):
    """Append one JSON object per epoch (the epoch's history entries) to ``path``."""

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = append

    def on_train_begin(self, trainer):
        if not self.append:
            open(self.path, "w").close()

    def on_epoch_end(self, trainer, epoch, logs):
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": epoch, **{k: _plain(v) for k, v in logs.items()}}) + "\n")


class CSVLogger(Callback):
    """Write the history as CSV, one row per epoch, with a header."""

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = append
        self.keys = None

    def on_train_begin(self, trainer):
        self.keys = None
        if not self.append:
            open(self.path, "w").close()

    def on_epoch_end(self, trainer, epoch, logs):
        import csv

        row = {"epoch": epoch, **{k: _plain(v) for k, v in logs.items()}}
        new_file = os.path.getsize(self.path) == 0 if os.path.exists(self.path) else True
        if self.keys is None:
            self.keys = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.keys, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
