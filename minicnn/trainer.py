"""The Trainer: fit a model on arrays with progress bars, callbacks, evaluation, resumable state."""
import math
import signal
import sys
import threading
import time
import warnings

import numpy as np

from . import metrics
from .allocator import cached_allocation
from . import trainer_checks as checks
from . import trainer_state
from .rng import get_rng

__all__ = ["UNNORMALISED_ABOVE", "TrainingDivergedError", "History", "Trainer"]


#: Trainer.fit warns when its first batch holds values beyond this (inputs not normalised)
UNNORMALISED_ABOVE = 10.0


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


class History(dict):
    """Per-epoch lists: loss, accuracy, val_loss, val_accuracy, lr, seconds, images_per_second.

    ``interrupted`` is True when Ctrl-C ended training early.
    """

    keys_ = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second")

    def __init__(self, data=None):
        super().__init__({k: [] for k in self.keys_})
        if data:
            for k, v in data.items():
                self[k] = list(v)
        self.interrupted = False


class _InterruptFlag:
    """While active (main thread only), the first Ctrl-C sets ``requested`` instead of raising,
    so the step in progress finishes; a second Ctrl-C raises at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C behaves as usual

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _batches(n, batch_size, order):
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


class Trainer:
    """Train ``model`` with ``loss`` and ``optimizer`` (and an optional learning-rate ``scheduler``)."""

    def __init__(self, model, loss, optimizer, scheduler=None):
        checks.check_model(model)
        checks.check_loss(loss)
        checks.check_optimizer(optimizer, model)
        checks.check_scheduler(scheduler, optimizer)
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.epoch = 0  # epochs completed, across fit() calls and resumes
        self.history = History()
        self.seed = None
        self.stop_training = False
        self._check_scale = False

    # --- training --------------------------------------------------------------------
    def fit(self, x, y, epochs, batch_size=64, shuffle=True, validation_data=None, callbacks=(),
            seed=None, verbose=1, transform=None, augment=None, initial_epoch=None):
        """Train ``epochs`` more epochs (Keras' ``fit``); returns the History of every epoch.

        x: (N, ...) samples (any dtype when ``transform`` turns a batch into float
        input, e.g. minicnn.data.normalize for uint8 images); y: (N,) integer labels
        (or targets for MSELoss). ``augment(xb, rng)``, when given, alters each raw
        training batch before ``transform`` (e.g. minicnn.data.random_shift); validation
        data is never augmented. The shuffle and augmentation of epoch e are drawn from
        (seed, e), so a resumed run sees the same batches.

        With ``initial_epoch`` (Keras' meaning), ``epochs`` is the epoch to stop at: after
        ``load_state``, ``fit(x, y, epochs=10, initial_epoch=trainer.epoch)`` finishes a
        10-epoch run. Every argument and the labels are checked on every call, before any
        step; a call that would train nothing raises ValueError.
        """
        owner = "Trainer.fit"
        first, last = checks.epoch_range(owner, self.epoch, epochs, initial_epoch)
        batch_size = checks.positive_int(owner, "batch_size", batch_size)
        x, y = checks.check_data(owner, self.loss, x, y)
        validation_data = checks.check_validation(owner, self.loss, validation_data)
        callbacks = checks.check_callbacks(owner, callbacks)
        checks.check_callable(owner, "transform", transform)
        checks.check_callable(owner, "augment", augment)
        checks.check_monitored(owner, self.scheduler, self.loss, validation_data)
        if seed is not None:
            seed = checks.positive_int(owner, "seed", seed, low=0)
        if first > self.epoch:  # weights loaded elsewhere: the schedule catches up
            self._skip_epochs(first - self.epoch, -(-len(x) // batch_size))
        if self.seed is None or seed is not None:
            self.seed = int(seed) if seed is not None else int(get_rng().integers(2**31))
        self.stop_training = False
        self.history.interrupted = False
        self._check_scale = True
        for cb in callbacks:
            cb.on_train_begin(self)
        with self._interrupt_flag() as interrupt:
            while self.epoch < last and not self.stop_training:
                logs = self._run_epoch(x, y, batch_size, shuffle, last, verbose, transform, augment,
                                       interrupt, callbacks)
                if logs is None:  # interrupted
                    self.history.interrupted = True
                    if verbose:
                        print(f"Interrupted: stopped in epoch {self.epoch + 1}; the weights are "
                              "those of the last finished step.")
                    break
                if validation_data is not None:
                    logs["val_loss"], logs["val_accuracy"] = self.evaluate(
                        *validation_data, batch_size=max(batch_size, 256), transform=transform)
                for k in History.keys_:
                    self.history[k].append(logs.get(k))
                self.epoch += 1
                if verbose:
                    print(self._epoch_line(last, logs))
                if self.scheduler is not None and not self.scheduler.per_batch:
                    if getattr(self.scheduler, "needs_metric", False):
                        self.scheduler.step(logs[self.scheduler.monitor])
                    else:
                        self.scheduler.step()
                for cb in callbacks:
                    cb.on_epoch_end(self, self.epoch, logs)
        for cb in callbacks:
            cb.on_train_end(self)
        return self.history

    def _skip_epochs(self, count, steps_per_epoch):
        """Start at a later epoch: count it done, and step the schedule as training would have."""
        self.epoch += count
        if self.scheduler is not None and not getattr(self.scheduler, "needs_metric", False):
            for _ in range(count * (steps_per_epoch if self.scheduler.per_batch else 1)):
                self.scheduler.step()

    def _warn_if_unnormalised(self, xb):
        """Once per fit: inputs far outside a few units usually mean a forgotten normalisation."""
        self._check_scale = False
        xb = np.asarray(xb)
        if xb.size == 0 or xb.dtype.kind not in "iuf":
            return
        if xb.dtype.kind == "f" and np.isnan(xb).all():
            return
        peak = max(abs(float(np.nanmin(xb))), abs(float(np.nanmax(xb))))
        if peak > UNNORMALISED_ABOVE:
            warnings.warn(f"Trainer.fit: the training inputs reach {peak:g} in absolute value; networks "
                          "learn badly from unnormalised inputs (scale them to a few units, e.g. "
                          "transform=minicnn.data.normalize for uint8 images)", stacklevel=4)

    def _run_epoch(self, x, y, batch_size, shuffle, epochs, verbose, transform, augment, interrupt,
                   callbacks=()):
        from tqdm.auto import tqdm

        begin_hooks = [h for h in (getattr(cb, "on_batch_begin", None) for cb in callbacks)
                       if callable(h)]
        end_hooks = [h for h in (getattr(cb, "on_batch_end", None) for cb in callbacks)
                     if callable(h)]

        n = len(x)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if shuffle
                 else np.arange(n))
        augment_rng = np.random.default_rng([self.seed, self.epoch, 1])
        self.model.train()
        classify = hasattr(self.loss, "probs")
        total_loss, correct, seen = 0.0, 0, 0
        lr = self.optimizer.lr
        start = time.perf_counter()
        # in a log file (no terminal) a bar redrawn ten times a second buries everything else
        interval = 0.1 if sys.stderr.isatty() else 10.0
        bar = tqdm(total=n, desc=f"epoch {self.epoch + 1}/{epochs}", unit="img", disable=not verbose,
                   leave=False, dynamic_ncols=True, mininterval=interval)
        try:
            for b, idx in enumerate(_batches(n, batch_size, order)):
                for hook in begin_hooks:
                    hook(self, b, {"batch": b, "size": len(idx), "lr": self.optimizer.lr})
                with cached_allocation():   # the batch's copies reuse freed blocks too
                    xb, yb = x[idx], y[idx]
                    if augment is not None:
                        xb = augment(xb, augment_rng)
                    xb, yb = self._share(xb, yb)
                    if transform is not None:
                        xb = transform(xb)
                if self._check_scale:
                    self._warn_if_unnormalised(xb)
                value, k, right = self._step(b, xb, yb, classify)
                for hook in end_hooks:
                    hook(self, b, {"batch": b, "size": k, "lr": self.optimizer.lr, "loss": value,
                                   "accuracy": right / k if classify and k else None})
                if self.scheduler is not None and self.scheduler.per_batch:
                    self.scheduler.step()
                total_loss += value * k
                seen += k
                correct += right
                if verbose and (b % 10 == 0 or seen == n):
                    elapsed = time.perf_counter() - start
                    post = {"loss": f"{total_loss / seen:.4f}"}
                    if classify:
                        post["acc"] = f"{correct / seen:.4f}"
                    post["img/s"] = f"{seen / max(elapsed, 1e-9):.0f}"
                    bar.set_postfix(post, refresh=False)
                bar.update(k)
                if interrupt.requested:
                    return None
        except KeyboardInterrupt:  # not in the main thread: no deferred handler
            return None
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        return {"loss": total_loss / seen, "accuracy": correct / seen if classify else None,
                "val_loss": None, "val_accuracy": None, "lr": lr, "seconds": seconds,
                "images_per_second": seen / seconds}

    # --- what a DistributedTrainer (minicnn/distributed/trainer.py) changes -------------
    def _interrupt_flag(self):
        return _InterruptFlag()

    def _share(self, xb, yb):
        """The part of a (shuffled, augmented) batch this process trains on: all of it."""
        return xb, yb

    def _step(self, b, xb, yb, classify):
        """Forward, backward and update on batch ``b``: (mean loss, images, images classified
        right, 0 when ``classify`` is False)."""
        out = self.model.forward(xb, training=True)
        value = self.loss.forward(out, yb)
        self._check_finite(value, b)
        self._backward(self.loss.backward())
        self.optimizer.step()
        return value, len(yb), int(np.sum(out.argmax(axis=1) == yb)) if classify else 0

    def _check_finite(self, value, b):
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"the loss became {value} in epoch {self.epoch + 1}, batch {b + 1}; the weights "
                f"are those of the last finite step. Try a lower learning rate (now {self.optimizer.lr:g}).")

    def _backward(self, dout):
        """Backpropagate; a Sequential is told that the input gradient is not needed."""
        from .model import Sequential

        if isinstance(self.model, Sequential):
            self.model.backward(dout, input_grad=False)
        else:
            self.model.backward(dout)

    def _epoch_line(self, epochs, logs):
        parts = [f"epoch {self.epoch}/{epochs}", f"loss {logs['loss']:.4f}"]
        if logs.get("accuracy") is not None:
            parts.append(f"acc {logs['accuracy']:.4f}")
        if logs.get("val_loss") is not None:
            parts.append(f"val_loss {logs['val_loss']:.4f}")
        if logs.get("val_accuracy") is not None:
            parts.append(f"val_acc {logs['val_accuracy']:.4f}")
        parts += [f"lr {logs['lr']:.4g}", f"{logs['seconds']:.1f} s",
                  f"{logs['images_per_second']:.0f} img/s"]
        return "  ".join(parts)

    # --- evaluation ------------------------------------------------------------------------
    def predict_logits(self, x, batch_size=256, transform=None):
        """The model's outputs on ``x`` in eval mode, batch by batch."""
        was_training = self.model.training
        self.model.eval()
        try:
            with cached_allocation():       # (as the training batches)
                outs = [self.model.forward(transform(x[i:i + batch_size]) if transform
                                           else x[i:i + batch_size], training=False)
                        for i in range(0, len(x), batch_size)]
        finally:
            if was_training:
                self.model.train()
        return np.concatenate(outs)

    def evaluate(self, x, y, batch_size=256, transform=None):
        """(mean loss, accuracy) on ``x``, ``y`` in eval mode; accuracy is None for non-classifiers."""
        out = self.predict_logits(x, batch_size, transform)
        value = self.loss.forward(out, y)
        acc = metrics.accuracy(y, out.argmax(axis=1)) if hasattr(self.loss, "probs") else None
        return value, acc

    # --- resumable state -------------------------------------------------------------------
    def save_state(self, path):
        """Write model parameters, optimizer and scheduler state, epoch, seed and history to one
        .npz, atomically and without pickle, for ``load_state`` (see minicnn.trainer_state)."""
        trainer_state.save(self, path)

    def load_state(self, path):
        """Restore what ``save_state`` wrote; the next ``fit`` continues from the stored epoch.

        Everything in the file is checked before anything changes: on a CheckpointError the
        model, optimizer, scheduler and trainer are as they were."""
        trainer_state.load(self, path)
        return self
