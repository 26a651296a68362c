"""Padding: every mode along the last two axes of an NCHW array, and its gradient
(kernels: minicnn/_kernels/pad.pyx). Readable version: minicnn/reference/padding.py."""
import functools

import numpy as np

from .. import functional_checks as checks
from .. import geometry
from .._kernels import pad as _pad
from ._common import threads_for

__all__ = ["pad_index", "check_pad_mode", "pad", "pad_backward"]


def pad_index(n, before, after, mode):
    """The source index of each of the n + before + after padded positions along one axis.

    -1 marks a position filled with the constant. The modes, shown on 1 2 3 padded by 2:
    zeros/constant 0 0 1 2 3 0 0; reflect (mirror, edge not repeated) 3 2 1 2 3 2 1;
    symmetric (mirror, edge repeated) 2 1 1 2 3 3 2; replicate 1 1 1 2 3 3 3;
    circular 2 3 1 2 3 1 2. A read-only array, kept per arguments (_pad_index).
    """
    _check_pad_mode_name(mode, "pad")
    return _pad_index(int(n), int(before), int(after), mode)


def _check_pad_mode_name(mode, owner):
    if mode not in geometry.PADDING_MODES:
        raise ValueError(f"{owner}: mode must be one of {geometry.PADDING_MODES}, got {mode!r}")


@functools.lru_cache(maxsize=256)
def _pad_index(n, before, after, mode):
    index = _make_pad_index(n, before, after, mode)
    index.flags.writeable = False
    return index


def _make_pad_index(n, before, after, mode):
    t = np.arange(-before, n + after)
    if mode in ("zeros", "constant"):
        return np.where((t >= 0) & (t < n), t, -1).astype(np.intp)
    if mode == "replicate":
        return np.clip(t, 0, n - 1).astype(np.intp)
    if mode == "circular":
        return np.mod(t, n).astype(np.intp)
    if mode == "reflect":
        period = 2 * (n - 1)
        t = np.mod(t, period) if period else np.zeros_like(t)
        return np.where(t < n, t, period - t).astype(np.intp)
    if mode == "symmetric":
        t = np.mod(t, 2 * n)
        return np.where(t < n, t, 2 * n - 1 - t).astype(np.intp)
    raise AssertionError(mode)


def check_pad_mode(owner, in_hw, padding, mode):
    """Mirror, circular and replicate padding can only copy pixels the input has (as in
    PyTorch): reflect needs one more than it pads, symmetric and circular as many, and
    replicate one pixel when it pads at all."""
    limits = {"reflect": 1, "symmetric": 0, "circular": 0, "replicate": None}
    if mode not in limits:
        return
    for axis, n, sides in zip("HW", in_hw, padding):
        if limits[mode] is None:
            if max(sides) > 0 and n < 1:
                raise ValueError(f"{owner}: replicate padding {sides} along {axis} needs an "
                                 f"input of size at least 1, got {n}")
        elif max(sides) > n - limits[mode]:
            raise ValueError(
                f"{owner}: {mode} padding {sides} along {axis} needs an input of size at least "
                f"{max(sides) + limits[mode]}, got {n} (at most {n - limits[mode]} for this input)")


def _planes(x):
    n, c, h, w = x.shape
    return np.ascontiguousarray(x).reshape(n * c, h, w)


def pad(x, padding, mode="zeros", value=0.0, owner="pad"):
    """Pad the last two axes of an NCHW array.

    padding: an int, (h, w), per-side ((top, bottom), (left, right)) or the flat
    (left, right, top, bottom) of torch.nn.functional.pad, each >= 0; mode: see ``pad_index``. Returns a new (N, C, H + top + bottom, W + left + right)
    array of x's dtype.
    """
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 input, got {got}")
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-d input (N, C, H, W), got shape {x.shape}")
    # the kernel copies the input's own columns to [left, left + W): every side >= 0
    (top, bottom), (left, right) = padding = geometry.normalize_padding(padding, owner, False)
    _check_pad_mode_name(mode, owner)            # here too: an empty input skips pad_index
    n, c, h, w = x.shape
    check_pad_mode(owner, (h, w), padding, mode)
    out = np.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    if out.size == 0:
        return out
    rows = pad_index(h, top, bottom, mode)
    cols = pad_index(w, left, right, mode)
    fill = value if mode == "constant" else 0.0
    _pad.pad_forward(_planes(x), rows, cols, x.dtype.type(fill), _planes(out), left,
                     threads_for(out.size))
    return out


def pad_backward(dout, padding, mode, in_hw, owner="pad_backward"):
    """The gradient of ``pad``: each output gradient is added back into its source pixel.

    dout: (N, C, H + top + bottom, W + left + right) for in_hw = (H, W); returns
    (N, C, H, W) in dout's dtype.
    """
    (top, bottom), (left, right) = geometry.normalize_padding(padding, owner, False)
    _check_pad_mode_name(mode, owner)
    h, w = checks.size_pair(in_hw, "in_hw", owner)
    check_pad_mode(owner, (h, w), ((top, bottom), (left, right)), mode)
    if not isinstance(dout, np.ndarray) or dout.dtype not in (np.float32, np.float64):
        got = dout.dtype if isinstance(dout, np.ndarray) else type(dout).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 dout, got {got}")
    padded_hw = (h + top + bottom, w + left + right)
    if dout.ndim != 4 or dout.shape[2:] != padded_hw:
        # the kernel reads the index maps at every dout position, unchecked
        raise ValueError(f"{owner}: expected dout (N, C, {padded_hw[0]}, {padded_hw[1]}) for "
                         f"an input of {h} x {w} padded by {padding}, got {dout.shape}")
    n, c = dout.shape[:2]
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    if dx.size == 0:
        return dx
    rows = pad_index(h, top, bottom, mode)
    cols = pad_index(w, left, right, mode)
    _pad.pad_backward(_planes(dout), rows, cols, _planes(dx), left, threads_for(dout.size))
    return dx
