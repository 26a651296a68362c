"""Weight initialisation. Biases start at zero; weights by ``weight_init``:

- ``'he'`` (Kaiming normal, the default): std = sqrt(2 / fan_in), for layers followed by ReLU;
- ``'glorot'`` (Xavier uniform): limit = sqrt(6 / (fan_in + fan_out)).

fan_in and fan_out count the inputs and outputs one weight touches: for a
convolution (in/groups) * kh * kw and (out/groups) * kh * kw.
"""
import contextlib
import math
import threading

import numpy as np

from .rng import get_rng

__all__ = ["WEIGHT_INITS", "weight_budget", "current_budget", "init_weight"]

WEIGHT_INITS = ("he", "glorot")
_limit = threading.local()


@contextlib.contextmanager
def weight_budget(elements, what="the budget", draw=True):
    """Within this block, weights may total at most ``elements`` values in this thread.

    Loading a checkpoint rebuilds its layers from their stored arguments before the
    weights are read; the budget (what the file really stores) keeps a crafted
    architecture, say Dense(10**6, 10**6), from allocating terabytes first. With
    ``draw=False`` weights start at zero instead of being drawn (they are about to be
    overwritten): no float64 temporary, and the random generator is left as it was.
    """
    previous = (getattr(_limit, "left", None), getattr(_limit, "what", None),
                getattr(_limit, "draw", True))
    _limit.left, _limit.what, _limit.draw = int(elements), what, draw
    try:
        yield
    finally:
        _limit.left, _limit.what, _limit.draw = previous


def current_budget():
    """The values left in this thread's weight budget (None outside ``weight_budget``)."""
    return getattr(_limit, "left", None)


def _spend(shape, owner):
    left = getattr(_limit, "left", None)
    if left is None:
        return
    size = math.prod(shape)
    if size > left:
        raise ValueError(f"{owner}: a weight of shape {tuple(shape)} ({size:,} values) exceeds "
                         f"{_limit.what} ({left:,} values left)")
    _limit.left = left - size


def init_weight(shape, fan_in, fan_out, weight_init, dtype, rng=None, owner="layer"):
    """Draw a weight array of ``shape`` and ``dtype`` with the named scheme."""
    _spend(shape, owner)
    if not getattr(_limit, "draw", True):
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"{owner}: weight_init must be one of {WEIGHT_INITS}, got "
                             f"{weight_init!r}")
        return np.zeros(shape, dtype)
    gen = get_rng(rng)
    if weight_init == "he":
        w = gen.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    elif weight_init == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = gen.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"{owner}: weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
    return w.astype(dtype)
