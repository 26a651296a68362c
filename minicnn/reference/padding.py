"""Padding, forward and backward, one padded pixel at a time.

Padding adds rows above and below an image and columns left and right of it. Each
padded pixel either holds a constant or is a copy of a pixel of the image; which pixel
is the padding mode. Along a row 1 2 3 padded by 2 on each side:

    zeros       0 0 | 1 2 3 | 0 0     a constant 0 ('constant' fills with ``value``)
    reflect     3 2 | 1 2 3 | 2 1     mirror; the edge pixel is not repeated
    symmetric   2 1 | 1 2 3 | 3 2     mirror; the edge pixel is repeated
    replicate   1 1 | 1 2 3 | 3 3     the edge pixel again and again
    circular    2 3 | 1 2 3 | 1 2     the image repeats, as on a ring

Rows and columns are padded by the same rule, independently, so padded pixel (i, j)
copies image pixel (source_index(i - top), source_index(j - left)).

The backward pass follows from the copy: a pixel copied k times receives the sum of the
k output gradients of its copies (and its own), and a constant receives nothing.
"""
import numpy as np

from .. import geometry

__all__ = ["source_index", "pad", "pad_backward", "check_pad_mode"]

#: how many more pixels than its widest side each mode needs along an axis: a reflection
#: by p reads p pixels past the edge one, so it needs p + 1 (as PyTorch)
_MIN_EXTRA = {"reflect": 1, "symmetric": 0, "circular": 0}


def source_index(t, n, mode):
    """The image index that position t along an axis of size n copies, or None for a constant.

    t counts from the first image pixel, so t < 0 is in the padding before the image and
    t >= n in the padding after it. One mirror step is enough for every t that
    ``check_pad_mode`` allows (a side at most n - 1 for reflect, n for symmetric).
    """
    if 0 <= t < n:                     # inside the image: itself
        return t
    if mode in ("zeros", "constant"):
        return None
    if mode == "replicate":
        return 0 if t < 0 else n - 1
    if mode == "circular":
        return t % n
    if mode == "reflect":              # mirror about the edge pixel: -1 -> 1, n -> n - 2
        return -t if t < 0 else 2 * (n - 1) - t
    if mode == "symmetric":            # mirror about the edge itself: -1 -> 0, n -> n - 1
        return -t - 1 if t < 0 else 2 * n - 1 - t
    raise ValueError(f"source_index: mode must be one of {geometry.PADDING_MODES}, got {mode!r}")


def check_pad_mode(owner, in_hw, padding, mode):
    """Mirror and circular padding can only copy pixels the image has (as in PyTorch)."""
    if mode not in geometry.PADDING_MODES:
        raise ValueError(f"{owner}: mode must be one of {geometry.PADDING_MODES}, got {mode!r}")
    if mode == "replicate":             # copies the edge pixel: there must be one
        for axis, n, sides in zip("HW", in_hw, padding):
            if max(sides) > 0 and n < 1:
                raise ValueError(f"{owner}: replicate padding {sides} along {axis} needs an "
                                 f"input of size at least 1, got {n}")
    if mode not in _MIN_EXTRA:
        return
    for axis, n, sides in zip("HW", in_hw, padding):
        if max(sides) + _MIN_EXTRA[mode] > n:
            raise ValueError(
                f"{owner}: {mode} padding {sides} along {axis} needs an input of size at least "
                f"{max(sides) + _MIN_EXTRA[mode]}, got {n} (at most {n - _MIN_EXTRA[mode]} for "
                f"this input)")


def pad(x, padding, mode="zeros", value=0.0, owner="pad"):
    """Pad the last two axes of x (N, C, H, W).

    padding: an int, (h, w) or ((top, bottom), (left, right)), each side >= 0.
    Returns out (N, C, H + top + bottom, W + left + right) in x's dtype.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-d input (N, C, H, W), got shape {x.shape}")
    (top, bottom), (left, right) = padding = geometry.normalize_padding(padding, owner, False)
    N, C, H, W = x.shape
    check_pad_mode(owner, (H, W), padding, mode)
    fill = value if mode == "constant" else 0
    out = np.full((N, C, H + top + bottom, W + left + right), fill, dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            si = source_index(i - top, H, mode)
            sj = source_index(j - left, W, mode)
            if si is not None and sj is not None:
                out[:, :, i, j] = x[:, :, si, sj]
    return out


def pad_backward(dout, padding, mode, in_hw, owner="pad_backward"):
    """The gradient of ``pad``: each padded pixel's gradient goes back to the pixel it copied.

    dout: (N, C, H + top + bottom, W + left + right) for in_hw = (H, W).
    Returns dx (N, C, H, W) in dout's dtype.
    """
    dout = np.asarray(dout)
    if dout.dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: expected a float32 or float64 dout, got {dout.dtype}")
    (top, bottom), (left, right) = padding = geometry.normalize_padding(padding, owner, False)
    H, W = in_hw
    check_pad_mode(owner, (H, W), padding, mode)
    padded_hw = (H + top + bottom, W + left + right)
    if dout.ndim != 4 or dout.shape[2:] != padded_hw:
        raise ValueError(f"{owner}: expected dout (N, C, {padded_hw[0]}, {padded_hw[1]}) for "
                         f"an input of {H} x {W} padded by {padding}, got {dout.shape}")
    N, C = dout.shape[:2]
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)
    for i in range(padded_hw[0]):
        for j in range(padded_hw[1]):
            si = source_index(i - top, H, mode)
            sj = source_index(j - left, W, mode)
            if si is not None and sj is not None:
                dx[:, :, si, sj] += dout[:, :, i, j]
    return dx
