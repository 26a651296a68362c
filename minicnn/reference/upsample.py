"""Nearest-neighbour upsampling by integer factors, forward and backward.

Each pixel is copied to an sh x sw block of the output:

    out[n, c, i, j] = x[n, c, i // sh, j // sw]

so each input pixel's gradient is the sum of the gradients of its block's copies:

    dx[n, c, i, j] = sum over a < sh, b < sw of dout[n, c, i*sh + a, j*sw + b]
"""
import numpy as np

from .. import geometry

__all__ = ["upsample_args", "upsample_nearest", "upsample_nearest_backward"]


def upsample_args(scale_factor, owner="upsample_nearest"):
    """scale_factor as an (h, w) pair of positive ints."""
    if isinstance(scale_factor, float) and scale_factor.is_integer():
        scale_factor = int(scale_factor)
    return geometry.pair(scale_factor, "scale_factor", owner)


def upsample_nearest(x, scale_factor, owner="upsample_nearest"):
    sh, sw = upsample_args(scale_factor, owner)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected an input (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    out = np.empty((n, c, h * sh, w * sw), x.dtype)
    for i in range(h * sh):
        for j in range(w * sw):
            out[:, :, i, j] = x[:, :, i // sh, j // sw]
    return out


def upsample_nearest_backward(dout, scale_factor, x_shape, dtype=None,
                              owner="upsample_nearest"):
    sh, sw = upsample_args(scale_factor, owner)
    n, c, h, w = x_shape
    if dout.shape != (n, c, h * sh, w * sw):
        raise ValueError(f"{owner}: dout must have shape {(n, c, h * sh, w * sw)}, got "
                         f"{dout.shape}")
    dx = np.zeros(x_shape, dtype or dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i // sh, j // sw] += dout[:, :, i, j]
    return dx
