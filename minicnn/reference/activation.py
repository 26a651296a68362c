"""Activations and dropout, forward and backward, elementwise on arrays of any shape.

Each backward multiplies dout by the derivative of the forward at that element (the
chain rule), written in terms of what the forward returned where that is simplest:

    relu        out = max(x, 0)                 dx = dout where out > 0, else 0
    leaky_relu  out = x if x > 0 else a*x       dx = dout if x > 0 else a*dout   (takes x)
    sigmoid     out = 1 / (1 + e^-x)            dx = dout * out * (1 - out)
    tanh        out = tanh(x)                   dx = dout * (1 - out^2)
    dropout     out = x * mask                  dx = dout * mask

ReLU's derivative at x = 0 is taken as 0 (as PyTorch), and a NaN in x stays NaN.
"""
import numpy as np

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "dropout_mask", "dropout",
           "dropout_backward"]


def relu(x):
    """max(x, 0), elementwise; NaN stays NaN."""
    x = np.asarray(x)
    return np.maximum(x, x.dtype.type(0))


def relu_backward(dout, out):
    """dout where the unit was on (out > 0), else 0, even where dout is NaN (as PyTorch)."""
    return np.where(out > 0, np.asarray(dout, dtype=out.dtype), out.dtype.type(0))


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x."""
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dout, x, negative_slope=0.01):
    """dout where x > 0, else negative_slope * dout; takes the forward's input x."""
    dout = np.asarray(dout, dtype=x.dtype)
    return np.where(x > 0, dout, dout * x.dtype.type(negative_slope))


def sigmoid(x):
    """1 / (1 + e^-x). For x < 0 the same value is written e^x / (1 + e^x), so that e is
    only ever raised to a number <= 0 and cannot overflow."""
    e = np.exp(-np.abs(x))                     # e^-x for x >= 0, e^x for x < 0
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def sigmoid_backward(dout, out):
    """dout * sigmoid'(x), where sigmoid'(x) = out * (1 - out)."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * out * (one - out)


def tanh(x):
    """(e^x - e^-x) / (e^x + e^-x), as NumPy computes it."""
    return np.tanh(x)


def tanh_backward(dout, out):
    """dout * tanh'(x), where tanh'(x) = 1 - out^2."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * (one - out * out)


def dropout_mask(shape, p, dtype, rng):
    """Inverted dropout's mask: 0 with probability p, else 1 / (1 - p), so that the mean of
    x * mask is x's and evaluation needs no rescaling. Draws from ``rng`` as
    minicnn.functional.dropout_mask does, so one generator state gives one mask."""
    keep = rng.random(shape) >= p
    return keep.astype(dtype) / np.dtype(dtype).type(1 - p)


def dropout(x, mask):
    """x * mask (a mask from ``dropout_mask``; while evaluating, no dropout at all)."""
    return x * mask


def dropout_backward(dout, mask):
    """dout * mask: a dropped element passes no gradient, a kept one is scaled as forward."""
    return np.asarray(dout, dtype=mask.dtype) * mask
