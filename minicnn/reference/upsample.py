"""Upsampling by integer factors, forward and backward: nearest and bilinear.

Nearest: each pixel is copied to an sh x sw block of the output:

    out[n, c, i, j] = x[n, c, i // sh, j // sw]

so each input pixel's gradient is the sum of the gradients of its block's copies:

    dx[n, c, i, j] = sum over a < sh, b < sw of dout[n, c, i*sh + a, j*sw + b]

Bilinear: output row i sits at input row y = (i + 0.5) / sh - 0.5 (pixel centres line up;
clamped at 0), or y = i * (H - 1) / (H*sh - 1) with align_corners (the corner pixels line
up), PyTorch's two rules; likewise x for the columns. It mixes the four pixels around (y, x):

    out[i, j] = (1-fy)(1-fx) x[y0, x0] + (1-fy) fx x[y0, x1] + fy (1-fx) x[y1, x0] + fy fx x[y1, x1]

with y0 = floor(y), y1 = min(y0 + 1, H - 1), fy = y - y0 (and the same for x). Each input
pixel gets back dout[i, j] times the weight it was mixed with.
"""
import numpy as np

from .. import geometry

__all__ = ["upsample_args", "upsample_nearest", "upsample_nearest_backward",
           "upsample_bilinear", "upsample_bilinear_backward"]


def upsample_args(scale_factor, owner="upsample_nearest"):
    """scale_factor as an (h, w) pair of positive ints."""
    return geometry.scale_factor_pair(scale_factor, owner)


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


def _check_dout(dout, x_shape, sh, sw, owner):
    n, c, h, w = x_shape
    if dout.shape != (n, c, h * sh, w * sw):
        raise ValueError(f"{owner}: dout must have shape {(n, c, h * sh, w * sw)}, got "
                         f"{dout.shape}")


def upsample_nearest_backward(dout, scale_factor, x_shape, dtype=None,
                              owner="upsample_nearest"):
    sh, sw = upsample_args(scale_factor, owner)
    _check_dout(dout, x_shape, sh, sw, owner)
    dx = np.zeros(x_shape, dtype or dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i // sh, j // sw] += dout[:, :, i, j]
    return dx


def _source(i, n_in, scale, align_corners):
    """(lo, hi, frac): the two input positions output position i reads, and hi's weight."""
    n_out = n_in * scale
    if align_corners:
        src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        src = max((i + 0.5) / scale - 0.5, 0.0)
    lo = min(int(np.floor(src)), n_in - 1)
    return lo, min(lo + 1, n_in - 1), src - lo


def _taps(x_shape, scale_factor, align_corners):
    """(i, j, [(row, col, weight) x 4]) for every output pixel."""
    sh, sw = scale_factor
    _, _, h, w = x_shape
    for i in range(h * sh):
        y0, y1, fy = _source(i, h, sh, align_corners)
        for j in range(w * sw):
            x0, x1, fx = _source(j, w, sw, align_corners)
            yield i, j, [(y0, x0, (1 - fy) * (1 - fx)), (y0, x1, (1 - fy) * fx),
                         (y1, x0, fy * (1 - fx)), (y1, x1, fy * fx)]


def upsample_bilinear(x, scale_factor, align_corners=False, owner="upsample_bilinear"):
    sh, sw = upsample_args(scale_factor, owner)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected an input (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    out = np.zeros((n, c, h * sh, w * sw), x.dtype)
    for i, j, taps in _taps(x.shape, (sh, sw), align_corners):
        for row, col, weight in taps:
            out[:, :, i, j] += weight * x[:, :, row, col]
    return out


def upsample_bilinear_backward(dout, scale_factor, x_shape, align_corners=False, dtype=None,
                               owner="upsample_bilinear"):
    sh, sw = upsample_args(scale_factor, owner)
    _check_dout(dout, x_shape, sh, sw, owner)
    dx = np.zeros(x_shape, dtype or dout.dtype)
    for i, j, taps in _taps(x_shape, (sh, sw), align_corners):
        for row, col, weight in taps:
            dx[:, :, row, col] += weight * dout[:, :, i, j]
    return dx
