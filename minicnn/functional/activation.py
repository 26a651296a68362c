"""Activations (ReLU on a kernel: minicnn/_kernels/activation.pyx; the others in NumPy) and
the dropout mask. Readable version: minicnn/reference/activation.py.

Activations work on any rank and keep x's dtype; each backward takes what its forward
returned or was given (the output for ReLU, sigmoid and tanh; the input for LeakyReLU)
and casts dout to that dtype. Only ReLU has a kernel of its own; the others, and the dropout
mask, are NumPy expressions already, so the readable versions (minicnn.reference.activation)
serve as the fast ones too.
"""
import numpy as np

from .._kernels import activation as _act
from ..reference.activation import (dropout_mask, leaky_relu, leaky_relu_backward, sigmoid,
                                   sigmoid_backward, tanh, tanh_backward)
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
