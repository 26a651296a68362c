"""Upsampling by integer factors, forward and backward, in NumPy: nearest (a copy through a
broadcast view, and a sum over blocks: each one pass over memory) and bilinear (two small
interpolation matrices, one product per axis). Readable version: minicnn/reference/upsample.py."""
import numpy as np

from .. import geometry
from ._common import float_array, real_array

__all__ = ["upsample_args", "upsample_nearest", "upsample_nearest_backward",
           "interpolation_matrix", "upsample_bilinear", "upsample_bilinear_backward"]


def upsample_args(scale_factor, owner="upsample_nearest"):
    """scale_factor as an (h, w) pair of positive ints (fractional factors are not taken)."""
    return geometry.scale_factor_pair(scale_factor, owner)


def _checked_dout(dout, x_shape, sh, sw, owner):
    """dout as a real array of the upsampled shape of x_shape, or a ValueError naming both."""
    dout = real_array(dout, owner, "dout")
    n, c, h, w = x_shape
    if dout.shape != (n, c, h * sh, w * sw):
        raise ValueError(f"{owner}: dout must have shape {(n, c, h * sh, w * sw)}, got "
                         f"{dout.shape}")
    return dout


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
    dout = _checked_dout(dout, x_shape, sh, sw, owner)
    n, c, h, w = x_shape
    dx = dout.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5))
    return dx.astype(dtype or (dout.dtype if dout.dtype.kind == "f" else np.float64), copy=False)


def interpolation_matrix(n_in, scale, align_corners, dtype=np.float64):
    """The (n_in * scale, n_in) matrix A of 1-d linear interpolation (PyTorch's rule):
    output i reads src = (i + 0.5) / scale - 0.5 (clamped at 0), or i * (n_in - 1) /
    (n_out - 1) with align_corners, from its two neighbours floor(src) and the next."""
    n_out = n_in * scale
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        src = np.maximum((i + 0.5) / scale - 0.5, 0)
    lo = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    a = np.zeros((n_out, n_in), np.float64)
    np.add.at(a, (np.arange(n_out), lo), 1 - frac)
    np.add.at(a, (np.arange(n_out), hi), frac)
    return a.astype(dtype, copy=False)


def upsample_bilinear(x, scale_factor, align_corners=False, owner="upsample_bilinear"):
    """x (N, C, H, W) -> (N, C, H * sh, W * sw), bilinear: out = A_h @ x @ A_w^T per image
    and channel, with interpolation_matrix's rows."""
    sh, sw = upsample_args(scale_factor, owner)
    float_array(x, owner)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected an input (N, C, H, W), got shape {x.shape}")
    a_h = interpolation_matrix(x.shape[2], sh, align_corners, x.dtype)
    a_w = interpolation_matrix(x.shape[3], sw, align_corners, x.dtype)
    return np.ascontiguousarray(np.matmul(np.matmul(a_h, x), a_w.T))


def upsample_bilinear_backward(dout, scale_factor, x_shape, align_corners=False, dtype=None,
                               owner="upsample_bilinear"):
    """dx = A_h^T @ dout @ A_w (the adjoint of upsample_bilinear)."""
    sh, sw = upsample_args(scale_factor, owner)
    dout = _checked_dout(dout, x_shape, sh, sw, owner)
    n, c, h, w = x_shape
    dtype = dtype or (dout.dtype if dout.dtype.kind == "f" else np.float64)
    dout = dout.astype(dtype, copy=False)
    a_h = interpolation_matrix(h, sh, align_corners, dtype)
    a_w = interpolation_matrix(w, sw, align_corners, dtype)
    return np.ascontiguousarray(np.matmul(np.matmul(a_h.T, dout), a_w))
