"""Batch normalisation, forward and backward, on the kernel minicnn/_kernels/batchnorm.pyx.
Readable version: minicnn/reference/norm.py.

x is (N, C), (N, C, L) or (N, C, H, W); each channel c is normalised over its N * L (or
N * H * W) values:  out = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c].
With ``training`` the mean and the biased variance are the batch's, and the running
statistics (when given) move towards them in place, PyTorch's rule:
    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
(the unbiased variance, M = N * L values per channel). Without ``training`` the running
statistics are used, or the batch's when there are none. The statistics are computed in
float64 whatever x's dtype.
"""
import numpy as np

from .._kernels import batchnorm as _bn
from ._common import float_array, real_array, threads_for

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


def _channel_vector(v, C, owner, name):
    """``v`` (None, or a float array of shape (C,)) as float64, checked."""
    if v is None:
        return None
    float_array(v, owner, name)
    if v.shape != (C,):
        raise ValueError(f"{owner}: {name} must have shape ({C},) (one value per channel of "
                         f"the input), got {v.shape}")
    return np.ascontiguousarray(v, dtype=np.float64)


def _as_ncl(a):
    """(N, C, ...) as a contiguous (N, C, L) view or copy."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1)


def batch_norm_forward(x, running_mean, running_var, weight=None, bias=None, training=False,
                       momentum=0.1, eps=1e-5, owner="batch_norm"):
    """Normalise each channel of x; returns (out, cache) for batch_norm_backward.

    running_mean, running_var: (C,) float arrays or both None; with ``training`` they are
    updated in place. weight, bias: (C,) or None (1 and 0). momentum: a number in [0, 1]
    (the weight of this batch in the running statistics). The cache keeps x itself, not
    a copy.
    """
    float_array(x, owner)
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{owner}: expected an input (N, C), (N, C, L) or (N, C, H, W), got "
                         f"shape {x.shape}")
    C = x.shape[1]
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{owner}: running_mean and running_var must both be arrays or both "
                         f"None, got {type(running_mean).__name__} and "
                         f"{type(running_var).__name__}")
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        _channel_vector(v, C, owner, name)
    w = _channel_vector(weight, C, owner, "weight")
    _channel_vector(bias, C, owner, "bias")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)) \
            or not 0 <= momentum <= 1:
        raise ValueError(f"{owner}: momentum must be a number in [0, 1], got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps > 0:
        raise ValueError(f"{owner}: eps must be a positive number, got {eps!r}")
    x3 = _as_ncl(x)
    M = x3.shape[0] * x3.shape[2]
    batch_statistics = bool(training) or running_mean is None
    need = 2 if training else 1
    if batch_statistics and M < need:
        raise ValueError(f"{owner}: batch statistics need at least {need} value(s) per channel"
                         f"{' when training' if training else ''}, got input shape {x.shape}")
    threads = threads_for(x.size)
    if batch_statistics:
        mean, var = np.empty(C), np.empty(C)
        _bn.batch_stats(x3, mean, var, threads)
        if training and running_mean is not None:
            m = float(momentum)
            running_mean[...] = (1 - m) * running_mean + m * mean
            running_var[...] = (1 - m) * running_var + m * var * (M / (M - 1))
    else:
        mean = np.array(running_mean, dtype=np.float64)
        var = np.array(running_var, dtype=np.float64)
    invstd = 1 / np.sqrt(var + eps)
    scale = invstd if w is None else w * invstd
    shift = np.zeros(C) if bias is None else np.asarray(bias, dtype=np.float64)
    out = np.empty(x3.shape, x.dtype)
    _bn.normalize(x3, mean, np.ascontiguousarray(scale), np.ascontiguousarray(shift), out,
                  threads)
    cache = {"x": x3, "shape": x.shape, "mean": mean, "invstd": invstd, "weight": w,
             "has_bias": bias is not None, "batch_statistics": batch_statistics,
             "owner": owner}
    return out.reshape(x.shape), cache


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, owner="batch_norm"):
    """batch_norm_forward's output alone."""
    return batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum,
                              eps, owner)[0]


def batch_norm_backward(dout, cache, need_dx=True):
    """(dx, dweight, dbias) from the cache of batch_norm_forward; dweight and dbias are
    None without weight and bias, dx None without need_dx."""
    x3, shape, owner = cache["x"], cache["shape"], cache["owner"]
    dout = real_array(dout, owner, "dout")
    if dout.shape != shape:
        raise ValueError(f"{owner}: dout must have shape {shape}, got {dout.shape}")
    C = x3.shape[1]
    d3 = _as_ncl(dout.astype(x3.dtype, copy=False))
    dx = np.empty(x3.shape, x3.dtype) if need_dx else np.empty((1, 1, 1), x3.dtype)
    w = cache["weight"] if cache["weight"] is not None else np.ones(C)
    dweight, dbias = np.empty(C), np.empty(C)
    _bn.backward(d3, x3, cache["mean"], cache["invstd"], w, cache["batch_statistics"],
                 bool(need_dx), dx, dweight, dbias, threads_for(x3.size))
    dtype = x3.dtype
    return (dx.reshape(shape) if need_dx else None,
            dweight.astype(dtype) if cache["weight"] is not None else None,
            dbias.astype(dtype) if cache["has_bias"] else None)
