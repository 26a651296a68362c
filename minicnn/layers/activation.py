"""Activations: ReLU, LeakyReLU, Sigmoid, Tanh (element-wise), Softmax and LogSoftmax.

They take any rank, compute in the input's dtype, and cache the one array their
derivative needs (the output, or for LeakyReLU the input).
"""
import numbers

import numpy as np

from ..backend import ops
from .base import Layer, as_float_input, fixed

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class _Activation(Layer):
    """An element-wise layer: ``_forward(x)`` returns (out, saved); ``_backward(dout)``."""

    def __init__(self):
        super().__init__()
        self.saved = None

    def forward(self, x, training=True):
        x = as_float_input(x, self)
        out, saved = self._forward(x)
        self.saved = saved if training else None
        return out

    def backward(self, dout):
        self._backward_check("saved")
        if np.shape(dout) != self.saved.shape:
            raise ValueError(f"{self!r}: dout must have shape {self.saved.shape}, got {np.shape(dout)}")
        return self._backward(dout)

    def output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(_Activation):
    """max(x, 0)."""

    def _forward(self, x):
        out = ops.relu(x)
        return out, out  # the output tells where x > 0

    def _backward(self, dout):
        return ops.relu_backward(dout, self.saved)


class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise."""

    defaults = {"negative_slope": 0.01}
    negative_slope = fixed("negative_slope")

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        if not np.isfinite(negative_slope):
            raise ValueError(f"LeakyReLU: negative_slope must be a finite number, got {negative_slope!r}")
        self._negative_slope = float(negative_slope)

    def get_config(self):
        return {"negative_slope": self.negative_slope}

    def _forward(self, x):
        return ops.leaky_relu(x, self.negative_slope), x

    def _backward(self, dout):
        return ops.leaky_relu_backward(dout, self.saved, self.negative_slope)


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def _forward(self, x):
        out = ops.sigmoid(x)
        return out, out

    def _backward(self, dout):
        return ops.sigmoid_backward(dout, self.saved)


class Tanh(_Activation):
    """tanh(x)."""

    def _forward(self, x):
        out = ops.tanh(x)
        return out, out

    def _backward(self, dout):
        return ops.tanh_backward(dout, self.saved)


class _AlongDim(_Activation):
    """An activation over one axis (``dim``, 1 by default: the classes or channels) of an
    input of rank >= 2, as torch.nn.Softmax(dim=1)."""

    defaults = {"dim": 1}
    dim = fixed("dim")

    def __init__(self, dim=1):
        super().__init__()
        if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
            raise TypeError(f"{type(self).__name__}: dim must be an int (1: the classes or "
                            f"channels), got {dim!r}")
        self._dim = int(dim)

    def get_config(self):
        return {"dim": self.dim}

    def _axis(self, ndim):
        if ndim < 2 or not -ndim <= self.dim < ndim:
            raise ValueError(f"{self!r}: expected an input (N, C, ...) of rank >= 2 with an "
                             f"axis dim={self.dim}, got rank {ndim}")
        return self.dim % ndim

    def output_shape(self, input_shape):
        self._axis(len(input_shape) + 1)
        return tuple(input_shape)


class Softmax(_AlongDim):
    """exp(x) / sum(exp(x)) along ``dim``, stably (the max is subtracted first)."""

    def _forward(self, x):
        out = ops.softmax(x, axis=self._axis(x.ndim))
        return out, out

    def _backward(self, dout):
        return ops.softmax_backward(dout, self.saved, axis=self._axis(self.saved.ndim))


class LogSoftmax(_AlongDim):
    """x - log(sum(exp(x))) along ``dim``, stably; pair it with a negative log-likelihood
    (SoftmaxCrossEntropy takes the raw scores instead)."""

    def _forward(self, x):
        out = ops.log_softmax(x, axis=self._axis(x.ndim))
        return out, out

    def _backward(self, dout):
        return ops.log_softmax_backward(dout, self.saved, axis=self._axis(self.saved.ndim))
