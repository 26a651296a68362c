"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...); Identity: x -> x."""
import math

import numpy as np

from .base import Layer, as_float_input

__all__ = ["Flatten", "Identity"]


class Flatten(Layer):
    """Flatten every axis but the batch axis, in C, H, W order (as PyTorch).

    Any strides are accepted (a non-contiguous input is copied); backward reshapes
    dout back to the input's shape.
    """

    def __init__(self):
        super().__init__()
        self.in_shape = None

    def forward(self, x, training=True):
        x = as_float_input(x, self)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected an input with a batch axis (N, ...), got shape {x.shape}")
        self.in_shape = x.shape if training else None
        return np.reshape(x, (x.shape[0], -1))

    def backward(self, dout):
        self._backward_check("in_shape")
        n = self.in_shape[0]
        expected = (n, math.prod(self.in_shape[1:]))
        if np.shape(dout) != expected:
            raise ValueError(f"{self!r}: dout must have shape {expected}, got {np.shape(dout)}")
        return np.reshape(dout, self.in_shape)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)


class Identity(Layer):
    """out = x, any shape (as torch.nn.Identity): a placeholder, e.g. a named shortcut or a
    Concat branch that passes its input through. The output is the input array itself."""

    def __init__(self):
        super().__init__()
        self.in_shape = None

    def forward(self, x, training=True):
        x = as_float_input(x, self)
        self.in_shape = x.shape if training else None
        return x

    def backward(self, dout):
        self._backward_check("in_shape")
        if np.shape(dout) != self.in_shape:
            raise ValueError(f"{self!r}: dout must have shape {self.in_shape}, got {np.shape(dout)}")
        return np.asarray(dout)

    def output_shape(self, input_shape):
        return tuple(input_shape)
