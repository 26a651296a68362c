"""Dropout: inverted dropout, active only when training."""
import numbers

import numpy as np

from ..backend import ops
from ..rng import get_rng
from .base import Layer, as_float_input

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each element with probability p while training and scale the rest by 1 / (1 - p).

    In evaluation (``training=False``) it is the identity. Masks are drawn from
    ``self.rng`` (a Generator, or an int seed turned into one); when None, from the
    model's generator (``Sequential(rng=...)`` sets ``rng``) or else the package's
    default one (``minicnn.seed``).
    """

    defaults = {"p": 0.5}

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = rng
        self.mask = None

    @property
    def p(self):
        return self._p

    @p.setter
    def p(self, p):
        # checked whenever set: p >= 1 would divide by 1 - p <= 0
        if not isinstance(p, numbers.Real) or isinstance(p, bool):
            raise TypeError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
        self._p = float(p)

    @property
    def rng(self):
        return self._rng

    @rng.setter
    def rng(self, rng):
        # an int seed becomes a Generator once, so that successive masks differ
        try:
            self._rng = None if rng is None else get_rng(rng)
        except TypeError as e:
            raise TypeError(f"{self!r}: {e}") from None

    def get_config(self):
        return {"p": self.p}

    def forward(self, x, training=True):
        x = as_float_input(x, self)
        if not training:
            self.mask = None            # backward refuses, as after any layer's eval forward
            return x
        if self.p == 0:
            self.mask = np.ones((), dtype=x.dtype)  # backward passes dout through
            return x
        self.mask = ops.dropout_mask(x.shape, self.p, x.dtype, get_rng(self.rng))
        return x * self.mask

    def backward(self, dout):
        self._backward_check("mask")
        dout = np.asarray(dout, dtype=self.mask.dtype)
        if self.mask.ndim and dout.shape != self.mask.shape:
            raise ValueError(f"{self!r}: dout must have shape {self.mask.shape}, got {dout.shape}")
        return dout * self.mask

    def output_shape(self, input_shape):
        return tuple(input_shape)
