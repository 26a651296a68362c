"""Learning-rate schedules, with PyTorch's formulas.

Each sets ``optimizer.lr`` when built (to the value of step 0) and on every
``step()``. ``per_batch`` says when to call ``step()``: after every batch (True)
or after every epoch (False); the Trainer follows it.
"""
import math
import numbers

__all__ = ["Schedule", "StepLR", "CosineAnnealingLR", "OneCycleLR", "LinearWarmup",
           "ReduceLROnPlateau"]


class Schedule:
    per_batch = False

    def __init__(self, optimizer):
        owner = type(self).__name__
        if isinstance(optimizer, type) or not hasattr(optimizer, "lr"):
            what = f"the class {optimizer.__name__}" if isinstance(optimizer, type) else repr(optimizer)
            raise TypeError(f"{owner}: optimizer must be an optimizer instance such as "
                            f"SGD(model.parameters(), lr=0.1), got {what}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_step = 0
        self.optimizer.lr = self.lr_at(0)

    def step(self):
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)

    def get_last_lr(self):
        return self.optimizer.lr

    def state_dict(self):
        return {"last_step": self.last_step, "base_lr": self.base_lr}

    def load_state_dict(self, d):
        self.last_step = int(d["last_step"])
        self.base_lr = float(d["base_lr"])
        self.optimizer.lr = self.lr_at(self.last_step)


def _real(owner, name, v, positive=True):
    """A finite float, > 0 (``positive``) or >= 0."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or (
            v <= 0 if positive else v < 0):
        raise ValueError(f"{owner}: {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {v!r}")
    return float(v)


def _positive_int(owner, name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
    return v


class StepLR(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size). Step once per epoch."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = _real("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2. Step once per epoch."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min, positive=False)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class OneCycleLR(Schedule):
    """The one-cycle policy (cosine phases), as torch.optim.lr_scheduler.OneCycleLR. Step once per batch.

    Rises from max_lr / div_factor to max_lr over the first pct_start of total_steps,
    then falls to max_lr / (div_factor * final_div_factor).
    """

    per_batch = True

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, div_factor=25.0,
                 final_div_factor=1e4):
        self.total_steps = _positive_int("OneCycleLR", "total_steps", total_steps)
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) or not 0 < pct_start < 1:
            raise ValueError(f"OneCycleLR: pct_start must be in (0, 1), got {pct_start!r}")
        self.max_lr = _real("OneCycleLR", "max_lr", max_lr)
        div_factor = _real("OneCycleLR", "div_factor", div_factor)
        final_div_factor = _real("OneCycleLR", "final_div_factor", final_div_factor)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.up_end = float(pct_start * total_steps) - 1
        self.down_end = float(total_steps - 1)
        super().__init__(optimizer)

    @staticmethod
    def _cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    def lr_at(self, t):
        if t <= self.up_end:
            return self._cos(self.initial_lr, self.max_lr, t / self.up_end if self.up_end > 0 else 1.0)
        span = self.down_end - self.up_end
        pct = min((t - self.up_end) / span, 1.0) if span > 0 else 1.0
        return self._cos(self.max_lr, self.min_lr, pct)


class LinearWarmup(Schedule):
    """lr rises linearly from start_factor * base_lr to base_lr over warmup_steps, then stays.

    As torch's LinearLR with end_factor 1. Step once per batch.
    """

    per_batch = True

    def __init__(self, optimizer, warmup_steps, start_factor=0.1):
        self.warmup_steps = _positive_int("LinearWarmup", "warmup_steps", warmup_steps)
        if isinstance(start_factor, bool) or not isinstance(start_factor, numbers.Real) or \
                not 0 < start_factor <= 1:
            raise ValueError(f"LinearWarmup: start_factor must be in (0, 1], got {start_factor!r}")
        self.start_factor = float(start_factor)
        super().__init__(optimizer)

    def lr_at(self, t):
        frac = min(t, self.warmup_steps) / self.warmup_steps
        return self.base_lr * (self.start_factor + (1 - self.start_factor) * frac)


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when a metric stops improving, as
    torch.optim.lr_scheduler.ReduceLROnPlateau. Step once per epoch with the metric:
    ``step(val_loss)``; the Trainer does so with ``logs[monitor]`` (``monitor``, not a
    PyTorch argument, names the History key: 'val_loss' by default, which needs
    validation_data).

    An epoch improves on the best when the metric is below best * (1 - threshold) (mode
    'min', threshold_mode 'rel'), below best - threshold ('abs'), or above best * (1 +
    threshold) / best + threshold in mode 'max'. After more than ``patience`` epochs
    without improvement the rate becomes max(lr * factor, min_lr) (unless that changes it
    by less than 1e-8), and ``cooldown`` epochs follow in which bad epochs are not counted.
    """

    needs_metric = True
    #: PyTorch's smallest change of the learning rate worth making
    EPS = 1e-8

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, monitor="val_loss"):
        owner = "ReduceLROnPlateau"
        for name, value, allowed in (("mode", mode, ("min", "max")),
                                     ("threshold_mode", threshold_mode, ("rel", "abs"))):
            if value not in allowed:
                raise ValueError(f"{owner}: {name} must be one of {list(allowed)}, got {value!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _real(owner, "factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"{owner}: factor must be < 1.0 (the rate is multiplied by it), "
                             f"got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{owner}: {name} must be an int >= 0, got {value!r}")
        self.patience, self.cooldown = patience, cooldown
        self.threshold = _real(owner, "threshold", threshold, positive=False)
        self.min_lr = _real(owner, "min_lr", min_lr, positive=False)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{owner}: monitor must be a History key such as 'val_loss', "
                             f"got {monitor!r}")
        self.monitor = monitor
        self.lr = optimizer.lr if hasattr(optimizer, "lr") else None
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr  # the rate depends on the metrics seen, not on the step count

    def is_better(self, value, best):
        if self.mode == "min":
            return value < (best * (1 - self.threshold) if self.threshold_mode == "rel"
                            else best - self.threshold)
        return value > (best * (1 + self.threshold) if self.threshold_mode == "rel"
                        else best + self.threshold)

    def step(self, metric=None):
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"ReduceLROnPlateau.step: needs the monitored metric "
                            f"({self.monitor}) as a number, got {metric!r}")
        value = float(metric)
        self.last_step += 1
        if self.is_better(value, self.best):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.EPS:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.lr = self.optimizer.lr

    def state_dict(self):
        """JSON-able: an infinite best (no metric seen yet) is stored as None."""
        return {"last_step": self.last_step, "base_lr": self.base_lr, "lr": self.optimizer.lr,
                "best": self.best if math.isfinite(self.best) else None,
                "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}

    #: state entries that may be None (trainer_state checks the others are finite numbers)
    nullable_state = ("best",)

    def load_state_dict(self, d):
        self.last_step = int(d["last_step"])
        self.base_lr = float(d["base_lr"])
        self.lr = float(d["lr"])
        best = d["best"]
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else float(best)
        self.num_bad_epochs = int(d["num_bad_epochs"])
        self.cooldown_counter = int(d["cooldown_counter"])
        self.optimizer.lr = self.lr
