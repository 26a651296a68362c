"""Activations (ReLU on a kernel: minicnn/_kernels/activation.pyx; the others in NumPy) and
the dropout mask. Readable version: minicnn/reference/activation.py.

Activations work on any rank and keep x's dtype; each backward takes what its forward
returned or was given (the output for ReLU, sigmoid and tanh; the input for LeakyReLU)
and casts dout to that dtype.
"""
import numpy as np

from .._kernels import activation as _act
from ._common import threads_for

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "dropout_mask"]


def relu(x):
    """max(x, 0) in x's dtype; NaN stays NaN."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        return np.maximum(x, 0)
    out = np.empty(x.shape, x.dtype)
    if x.size:
        xc = np.ascontiguousarray(x)
        threads = threads_for(x.size)
        _act.relu_forward(xc.reshape(-1), out.reshape(-1), threads)
    return out


def relu_backward(dout, out):
    """The gradient passes where the output is positive (0 at x = 0, as PyTorch).

    Where the unit is off the gradient is 0, even when dout is NaN (as PyTorch).
    """
    if np.shape(dout) != out.shape:
        raise ValueError(f"relu_backward: dout must have shape {out.shape}, got {np.shape(dout)}")
    if out.dtype not in (np.float32, np.float64):
        return np.where(out > 0, dout, 0)
    dx = np.empty(out.shape, out.dtype)
    if out.size:
        d = np.ascontiguousarray(dout, dtype=out.dtype)
        threads = threads_for(out.size)
        _act.relu_backward(d.reshape(-1), np.ascontiguousarray(out).reshape(-1), dx.reshape(-1),
                           threads)
    return dx


def leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dout, x, negative_slope=0.01):
    dout = np.asarray(dout, dtype=x.dtype)
    return np.where(x > 0, dout, dout * x.dtype.type(negative_slope))


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dout, out):
    """d sigmoid = out * (1 - out)."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * out * (one - out)


def tanh(x):
    return np.tanh(x)


def tanh_backward(dout, out):
    """d tanh = 1 - out**2."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * (one - out * out)


def dropout_mask(shape, p, dtype, rng):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p); out = x * mask."""
    keep = rng.random(shape) >= p
    return keep.astype(dtype) / np.dtype(dtype).type(1 - p)
