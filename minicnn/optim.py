"""Optimizers with PyTorch's update rules: the same gradients give the same weights.

An optimizer holds a list of ``Parameter`` (``model.parameters()``) and updates
their values in place in ``step()``; ``lr`` may be changed between steps (the
learning-rate schedules do).
"""
import numbers

import numpy as np

from . import functional as F
from .allocator import cached_allocation

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


def _number(owner, name, value, low=0.0, high=None, high_open=False, low_open=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if (value <= low if low_open else value < low) or (
            high is not None and (value >= high if high_open else value > high)):
        if high is None:
            bound = f"> {low}" if low_open else f">= {low}"
        else:
            bound = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value!r}")
    return float(value)


class Optimizer:
    def __init__(self, params, lr):
        owner = type(self).__name__
        if hasattr(params, "parameters") and not isinstance(params, (list, tuple)):
            raise TypeError(f"{owner}: pass the model's parameters, {owner}(model.parameters(), ...), "
                            f"not the {type(params).__name__} itself")
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(f"{owner}: params must be a list of Parameters (model.parameters()), "
                            f"got {type(params).__name__}") from None
        if not self.params:
            raise ValueError(f"{owner}: got an empty parameter list")
        for p in self.params:
            if not all(hasattr(p, a) for a in ("name", "value", "grad")):
                raise TypeError(f"{type(self).__name__}: params must be Parameters (model.parameters()), "
                                f"got {type(p).__name__}")
        self.lr = _number(owner, "lr", lr)
        self.state = {}  # per parameter name: a dict of arrays
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        self.steps += 1
        with cached_allocation():          # Adam's temporaries reuse freed blocks
            for p in self.params:
                self._update(p, self.state.setdefault(p.name, {}))

    def state_dict(self):
        """Scalars and arrays only (no pickle): {'steps', 'lr', 'state': {name: {key: array}}}."""
        return {"steps": self.steps, "lr": self.lr,
                "state": {n: {k: v.copy() for k, v in s.items()} for n, s in self.state.items()}}

    def load_state_dict(self, d):
        names = {p.name: p for p in self.params}
        for name, s in d["state"].items():
            if name not in names:
                raise KeyError(f"{type(self).__name__}.load_state_dict: unknown parameter {name!r}")
            for k, v in s.items():
                if np.shape(v) != names[name].value.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {name}.{k} has shape "
                                     f"{np.shape(v)}, expected {names[name].value.shape}")
        self.steps = int(d["steps"])
        self.lr = float(d["lr"])
        self.state = {n: {k: np.array(v, dtype=names[n].value.dtype) for k, v in s.items()}
                      for n, s in d["state"].items()}


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    d = g + weight_decay * p; with momentum: b = d on the first step, else
    b = momentum * b + (1 - dampening) * d, and d = d + momentum * b (Nesterov) or
    d = b; then p -= lr * d.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum = _number("SGD", "momentum", momentum, 0.0, 1.0, high_open=True)
        self.dampening = _number("SGD", "dampening", dampening, 0.0, 1.0)
        self.weight_decay = _number("SGD", "weight_decay", weight_decay)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        self.nesterov = bool(nesterov)

    def state_keys(self):
        """The arrays a parameter's stepped state holds (a resumed state is checked on it)."""
        return {"momentum_buffer"}

    def _update(self, p, state):
        w, g = p.value, p.grad
        buf = state.get("momentum_buffer")
        if F.sgd_arrays_problem(w, g, buf) is None:
            # one pass over memory instead of five (minicnn/_kernels/optim.pyx); the same
            # arithmetic, in the same order and precision, as the lines below
            first = self.momentum != 0 and buf is None
            if first:
                buf = state["momentum_buffer"] = np.empty_like(w)
            F.sgd_update_checked(w, g, buf if self.momentum else None, self.lr, self.momentum,
                                 self.dampening, self.weight_decay, self.nesterov, first)
            return
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=w.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        w -= w.dtype.type(self.lr) * g

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
                f"nesterov={self.nesterov}, weight_decay={self.weight_decay})")


class Adam(Optimizer):
    """Adam, as torch.optim.Adam (weight decay added to the gradient, not decoupled).

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        owner = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_number(owner, f"betas[{i}]", b, 0.0, 1.0, high_open=True)
                           for i, b in enumerate(betas))
        self.eps = _number(owner, "eps", eps, low_open=True)
        self.weight_decay = _number(owner, "weight_decay", weight_decay)

    def state_keys(self):
        return {"exp_avg", "exp_avg_sq"}

    def _update(self, p, state):
        w, g = p.value, p.grad
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * w
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        t = self.steps
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v / (1 - b2 ** t))
        denom += self.eps
        w -= w.dtype.type(step_size) * (m / denom)

    def __repr__(self):
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW.

    p *= 1 - lr * weight_decay first; then Adam's moments of the raw gradient,
    m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g^2, and
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). With ``amsgrad`` the
    denominator uses the largest v seen so far (kept as ``max_exp_avg_sq``).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, 0.0)
        self.weight_decay = _number("AdamW", "weight_decay", weight_decay)
        if not isinstance(amsgrad, (bool, np.bool_)):
            raise TypeError(f"AdamW: amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = bool(amsgrad)

    def state_keys(self):
        return {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if self.amsgrad else set())

    def _update(self, p, state):
        w, g = p.value, p.grad
        b1, b2 = self.betas
        if self.weight_decay:
            w *= w.dtype.type(1 - self.lr * self.weight_decay)
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(w)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - b1) * (g - m)
        v *= b2
        v += (1 - b2) * (g * g)
        t = self.steps
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v) / np.sqrt(1 - b2 ** t)
        denom += self.eps
        w -= w.dtype.type(self.lr / (1 - b1 ** t)) * (m / denom)

    def __repr__(self):
        return (f"AdamW(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
                f"weight_decay={self.weight_decay}, amsgrad={self.amsgrad})")


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop.

    g += weight_decay * p; s = alpha s + (1 - alpha) g^2; centered: a = alpha a + (1 - alpha) g
    and d = sqrt(s - a^2) + eps, else d = sqrt(s) + eps; with momentum
    b = momentum b + g / d and p -= lr b, else p -= lr g / d.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, lr)
        self.alpha = _number("RMSprop", "alpha", alpha, 0.0, 1.0)
        self.eps = _number("RMSprop", "eps", eps, low_open=True)
        self.weight_decay = _number("RMSprop", "weight_decay", weight_decay)
        self.momentum = _number("RMSprop", "momentum", momentum, 0.0, 1.0, high_open=True)
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.centered = bool(centered)

    def state_keys(self):
        return ({"square_avg"} | ({"momentum_buffer"} if self.momentum else set())
                | ({"grad_avg"} if self.centered else set()))

    def _update(self, p, state):
        w, g = p.value, p.grad
        if self.weight_decay:
            g = g + self.weight_decay * w
        if "square_avg" not in state:
            for key in self.state_keys():
                state[key] = np.zeros_like(w)
        s = state["square_avg"]
        s *= self.alpha
        s += (1 - self.alpha) * (g * g)
        if self.centered:
            a = state["grad_avg"]
            a += (1 - self.alpha) * (g - a)
            denom = np.sqrt(s - a * a)
        else:
            denom = np.sqrt(s)
        denom += self.eps
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / denom
            w -= w.dtype.type(self.lr) * buf
        else:
            w -= w.dtype.type(self.lr) * (g / denom)

    def __repr__(self):
        return (f"RMSprop(lr={self.lr}, alpha={self.alpha}, eps={self.eps}, weight_decay="
                f"{self.weight_decay}, momentum={self.momentum}, centered={self.centered})")
