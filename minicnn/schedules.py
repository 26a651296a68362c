"""Learning-rate schedules, with PyTorch's formulas.

Each sets ``optimizer.lr`` when built (to the value of step 0) and on every
``step()``. ``per_batch`` says when to call ``step()``: after every batch (True)
or after every epoch (False); the Trainer follows it.
"""
import math
import numbers

__all__ = ["Schedule", "StepLR", "CosineAnnealingLR", "OneCycleLR", "LinearWarmup"]


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
