"""Dropout: inverted dropout, active only when training."""
import numbers

import numpy as np

from ..random import get_rng
from .base import Layer, as_float_input


class Dropout(Layer):
    """Zero each element with probability p while training and scale the rest by 1 / (1 - p).

    In evaluation it is the identity. Masks are drawn from ``rng`` (a Generator or a
    seed); when None, from the model's generator (set by ``Sequential(rng=...)``) or
    else the package's default one (``minicnn.seed``).
    """

    defaults = {"p": 0.5}

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = None if rng is None else get_rng(rng)
        self.mask = None

    def get_config(self):
        return {"p": self.p}

    def forward(self, x, training=True):
        x = as_float_input(x, repr(self))
        if not training or self.p == 0:
            self.mask = np.ones((), dtype=x.dtype)
            return x
        keep = get_rng(self.rng).random(x.shape) >= self.p
        self.mask = keep.astype(x.dtype) / x.dtype.type(1 - self.p)
        return x * self.mask

    def backward(self, dout):
        self._backward_check("mask")
        return dout * self.mask

    def output_shape(self, input_shape):
        return tuple(input_shape)
