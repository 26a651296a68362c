"""The Trainer's argument checks: what it is given at construction and at every ``fit``.

Each check raises at once, naming ``Trainer`` or ``Trainer.fit``, the argument and what it
expected, so a mistake never turns into an AttributeError deep inside a training step.
"""
import numbers

import numpy as np

__all__ = ["check_model", "check_loss", "check_optimizer", "check_scheduler", "positive_int",
           "as_samples", "check_data", "check_validation", "check_callbacks", "check_callable",
           "epoch_range"]


def _is_class(value):
    return isinstance(value, type)


def _instance_hint(owner, name, value, example):
    if _is_class(value):
        raise TypeError(f"{owner}: {name} must be an instance, e.g. {example}, got the class "
                        f"{value.__name__} itself (call it with its arguments)")


def check_model(model):
    _instance_hint("Trainer", "model", model, "Sequential(...)")
    for method in ("forward", "backward", "parameters"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"Trainer: model must be a minicnn model (Sequential) with forward, "
                            f"backward and parameters, got {type(model).__name__}")


def check_loss(loss):
    _instance_hint("Trainer", "loss", loss, "SoftmaxCrossEntropy()")
    if not (callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None))):
        raise TypeError(f"Trainer: loss must be a loss such as SoftmaxCrossEntropy() or MSELoss(), "
                        f"got {type(loss).__name__} ({loss!r})")


def check_optimizer(optimizer, model):
    _instance_hint("Trainer", "optimizer", optimizer, "Adam(model.parameters(), lr=1e-3)")
    if not callable(getattr(optimizer, "step", None)) or not hasattr(optimizer, "lr"):
        raise TypeError(f"Trainer: optimizer must be an optimizer such as SGD(model.parameters(), "
                        f"lr=0.01), got {type(optimizer).__name__} ({optimizer!r})")
    lr = optimizer.lr
    if not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr < 0:
        raise ValueError(f"Trainer: the optimizer's lr must be a finite number >= 0, got {lr!r}")
    params = getattr(optimizer, "params", None)
    if params is None:
        return
    own = {(id(p.layer), p.key) for p in model.parameters() if hasattr(p, "layer")}
    foreign = [p.name for p in params if hasattr(p, "layer") and (id(p.layer), p.key) not in own]
    if foreign:
        raise ValueError(f"Trainer: the optimizer updates parameters that are not the model's "
                         f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}); build it "
                         "from this model's parameters(): SGD(model.parameters(), ...)")


def check_scheduler(scheduler, optimizer):
    if scheduler is None:
        return
    _instance_hint("Trainer", "scheduler", scheduler, "CosineAnnealingLR(optimizer, T_max=10)")
    if not callable(getattr(scheduler, "step", None)) or not hasattr(scheduler, "per_batch"):
        raise TypeError(f"Trainer: scheduler must be a learning-rate schedule such as "
                        f"StepLR(optimizer, 5), got {type(scheduler).__name__} ({scheduler!r})")
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("Trainer: the scheduler was built for another optimizer than the Trainer's; "
                         "build it from the same one")


def positive_int(owner, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def as_samples(owner, name, value):
    """``value`` as an indexable array of samples (N, ...)."""
    if value is None:
        raise TypeError(f"{owner}: {name} is None; pass an array of samples")
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ValueError(f"{owner}: {name} must be an array of samples (N, ...), got a scalar {value!r}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {name} must be numeric, got {arr.dtype}")
    return arr


def check_data(owner, loss, x, y, what="x and y"):
    x = as_samples(owner, what.split(" and ")[0], x)
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{owner}: labels must be an array (N,), got a scalar {y!r}")
    if len(x) != len(y):
        raise ValueError(f"{owner}: x has {len(x)} samples but y has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{owner}: {what} hold no samples")
    if hasattr(loss, "check_targets"):
        y = loss.check_targets(y, owner)
    return x, y


def check_validation(owner, loss, validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(f"{owner}: validation_data must be a pair (x_val, y_val), got "
                         f"{type(validation_data).__name__}")
    return check_data(owner, loss, *validation_data, what="x_val and y_val")


def check_callbacks(owner, callbacks):
    if callbacks is None:
        return []
    if hasattr(callbacks, "on_epoch_end"):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        _instance_hint(owner, f"callbacks[{i}]", cb, "EarlyStopping(patience=3)")
        if not all(callable(getattr(cb, h, None)) for h in ("on_train_begin", "on_epoch_end",
                                                            "on_train_end")):
            raise TypeError(f"{owner}: callbacks[{i}] must be a Callback (with on_train_begin, "
                            f"on_epoch_end and on_train_end), got {type(cb).__name__}")
    return callbacks


def check_callable(owner, name, fn):
    if fn is not None and not callable(fn):
        raise TypeError(f"{owner}: {name} must be a function of a batch, got {type(fn).__name__}")


def epoch_range(owner, done, epochs, initial_epoch):
    """The (first epoch index, epoch to stop at) of a fit, Keras' way.

    Without ``initial_epoch``, ``epochs`` more epochs after the ``done`` ones. With it,
    ``epochs`` is the epoch to stop at and ``initial_epoch`` where to start: the trainer's own
    count (a loaded state) or, on a trainer that has trained nothing yet, any earlier epoch
    (weights loaded from a checkpoint).
    """
    epochs = positive_int(owner, "epochs", epochs)
    if initial_epoch is None:
        return done, done + epochs
    initial_epoch = positive_int(owner, "initial_epoch", initial_epoch, low=0)
    if initial_epoch >= epochs:
        raise ValueError(f"{owner}: initial_epoch={initial_epoch} and epochs={epochs} would train "
                         f"nothing (with initial_epoch, epochs is the epoch to stop at); pass "
                         f"epochs > {initial_epoch}, or leave initial_epoch out to train {epochs} "
                         "more epochs")
    if done not in (0, initial_epoch):
        raise ValueError(f"{owner}: initial_epoch={initial_epoch}, but this trainer has completed "
                         f"{done} epochs; pass initial_epoch={done} (or leave it out)")
    return initial_epoch, epochs


def check_monitored(owner, scheduler, loss, validation_data):
    """A schedule fed a metric (ReduceLROnPlateau) must monitor one that every epoch has."""
    monitor = getattr(scheduler, "monitor", None) if getattr(scheduler, "needs_metric",
                                                             False) else None
    if monitor is None:
        return
    known = ("loss", "accuracy", "val_loss", "val_accuracy")
    if monitor not in known:
        raise ValueError(f"{owner}: the scheduler monitors {monitor!r}; the Trainer feeds it "
                         f"one of {list(known)}")
    if monitor.startswith("val_") and validation_data is None:
        raise ValueError(f"{owner}: the scheduler monitors {monitor!r}: pass validation_data, "
                         f"or build it with monitor='loss'")
    if monitor.endswith("accuracy") and not hasattr(loss, "probs"):
        raise ValueError(f"{owner}: the scheduler monitors {monitor!r}, which {loss!r} does "
                         f"not give (accuracy needs a classification loss)")
