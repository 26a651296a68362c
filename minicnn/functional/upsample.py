"""Nearest-neighbour upsampling by integer factors, forward and backward, in NumPy (a copy
through a broadcast view, and a sum over blocks: each one pass over memory).
Readable version: minicnn/reference/upsample.py."""
import numpy as np

from .. import geometry
from ._common import float_array, real_array

__all__ = ["upsample_args", "upsample_nearest", "upsample_nearest_backward"]


def upsample_args(scale_factor, owner="upsample_nearest"):
    """scale_factor as an (h, w) pair of positive ints (fractional factors are not taken)."""
    if isinstance(scale_factor, float) and scale_factor.is_integer():
        scale_factor = int(scale_factor)
    return geometry.pair(scale_factor, "scale_factor", owner)


def upsample_nearest(x, scale_factor, owner="upsample_nearest"):
    """x (N, C, H, W) -> (N, C, H * sh, W * sw): out[n, c, i, j] = x[n, c, i // sh, j // sw]."""
    sh, sw = upsample_args(scale_factor, owner)
    float_array(x, owner)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected an input (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    wide = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    return np.ascontiguousarray(wide).reshape(n, c, h * sh, w * sw)


def upsample_nearest_backward(dout, scale_factor, x_shape, dtype=None,
                              owner="upsample_nearest"):
    """dx (x_shape): each pixel's gradient is the sum of dout over the sh x sw block it
    was copied to. ``dtype``: dx's (the input's), else dout's."""
    sh, sw = upsample_args(scale_factor, owner)
    dout = real_array(dout, owner, "dout")
    n, c, h, w = x_shape
    if dout.shape != (n, c, h * sh, w * sw):
        raise ValueError(f"{owner}: dout must have shape {(n, c, h * sh, w * sw)}, got "
                         f"{dout.shape}")
    dx = dout.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5))
    return dx.astype(dtype or (dout.dtype if dout.dtype.kind == "f" else np.float64), copy=False)
