"""Batch normalisation, forward and backward.

Each channel c is normalised over all its values in the batch (the M = N * H * W values
x[:, c, :, :]; for an input (N, C), the N values x[:, c]), then scaled and shifted:

    mean[c]  = (1/M) * sum of x[:, c]
    var[c]   = (1/M) * sum of (x[:, c] - mean[c])**2             (biased: divided by M)
    xhat     = (x - mean[c]) / sqrt(var[c] + eps)
    out      = weight[c] * xhat + bias[c]

In training the statistics are the batch's, and running estimates follow them for use
at evaluation, with the unbiased variance (divided by M - 1):

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

Backward. bias and weight enter each output once:  dbias = sum of dout,
dweight = sum of dout * xhat (sums over a channel's M values). With fixed statistics
(evaluation) dx = dout * weight / sqrt(var + eps). With the batch's, every x[:, c] also
moves mean and var, and the chain rule through them gives

    dxhat = dout * weight
    dx    = (1/M) / sqrt(var + eps) * (M * dxhat - sum of dxhat - xhat * sum of dxhat * xhat)
"""
import numpy as np

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


def _per_channel(v, x):
    """A (C,) vector shaped to broadcast against x (N, C, ...)."""
    return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))


def batch_norm_forward(x, running_mean, running_var, weight=None, bias=None, training=False,
                       momentum=0.1, eps=1e-5, owner="batch_norm"):
    """x (N, C, ...) -> (out, cache); with ``training`` the running statistics (C,) are
    updated in place."""
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{owner}: expected an input (N, C), (N, C, L) or (N, C, H, W), got "
                         f"shape {x.shape}")
    for name, v in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if v is not None and np.shape(v) != (x.shape[1],):
            raise ValueError(f"{owner}: {name} must have shape ({x.shape[1]},) (one value per "
                             f"channel of the input), got {np.shape(v)}")
    axes = (0,) + tuple(range(2, x.ndim))          # every axis but the channels
    M = x.size // x.shape[1]
    batch_statistics = training or running_mean is None
    need = 2 if training else 1
    if batch_statistics and M < need:
        raise ValueError(f"{owner}: batch statistics need at least {need} value(s) per channel"
                         f"{' when training' if training else ''}, got input shape {x.shape}")
    if batch_statistics:
        mean = x.mean(axis=axes)
        var = ((x - _per_channel(mean, x)) ** 2).mean(axis=axes)
        if training and running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * M / (M - 1)
    else:
        mean, var = running_mean, running_var
    xhat = (x - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps)
    out = xhat
    if weight is not None:
        out = out * _per_channel(weight, x)
    if bias is not None:
        out = out + _per_channel(bias, x)
    cache = {"xhat": xhat, "var": var, "eps": eps, "weight": weight, "has_bias": bias is not None,
             "batch_statistics": batch_statistics, "axes": axes, "owner": owner}
    return out.astype(x.dtype, copy=False), cache


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, owner="batch_norm"):
    return batch_norm_forward(x, running_mean, running_var, weight, bias, training, momentum,
                              eps, owner)[0]


def batch_norm_backward(dout, cache, need_dx=True):
    """(dx, dweight, dbias); dweight and dbias None without weight and bias."""
    xhat, axes, weight = cache["xhat"], cache["axes"], cache["weight"]
    dout = np.asarray(dout, dtype=xhat.dtype)
    if dout.shape != xhat.shape:
        raise ValueError(f"{cache['owner']}: dout must have shape {xhat.shape}, got {dout.shape}")
    dweight = (dout * xhat).sum(axis=axes) if weight is not None else None
    dbias = dout.sum(axis=axes) if cache["has_bias"] else None
    if not need_dx:
        return None, dweight, dbias
    invstd = _per_channel(1 / np.sqrt(cache["var"] + cache["eps"]), xhat)
    dxhat = dout if weight is None else dout * _per_channel(weight, xhat)
    if not cache["batch_statistics"]:
        return dxhat * invstd, dweight, dbias
    M = xhat.size // xhat.shape[1]
    sum_dxhat = dxhat.sum(axis=axes, keepdims=True)
    sum_dxhat_xhat = (dxhat * xhat).sum(axis=axes, keepdims=True)
    dx = invstd / M * (M * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)
    return dx, dweight, dbias
