"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
import math

import numpy as np

from .base import Layer, as_float_input


class Flatten(Layer):
    """Flatten every axis but the batch axis (C, H, W order, as PyTorch)."""

    def __init__(self):
        super().__init__()
        self.in_shape = None

    def forward(self, x, training=True):
        x = as_float_input(x, repr(self))
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected an input with a batch axis (N, ...), got shape {x.shape}")
        self.in_shape = x.shape
        return np.reshape(x, (x.shape[0], -1))

    def backward(self, dout):
        self._backward_check("in_shape")
        return np.reshape(dout, self.in_shape)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)
