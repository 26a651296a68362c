"""The geometry of convolution and pooling, written once.

Output sizes, 'same' padding, per-side padding normalisation and the receptive
field live here; layers, functional ops, the model summary and the tests all call
these functions, so each formula exists in one place.

Conventions: sizes are per axis; ``padding`` in normalised form is
``((top, bottom), (left, right))`` (given also as PyTorch's flat ``(left, right, top, bottom)``).
"""
import math
import numbers

__all__ = ["PADDING_MODES", "MAX_EXTENT", "is_int", "pair", "normalize_padding",
           "effective_kernel", "same_padding", "resolve_padding", "conv_output_size",
           "pool_output_size", "receptive_field_step", "check_fits", "mac_count", "pool_args",
           "pool_output_hw", "receptive_field_start_step", "scale_factor_pair"]

PADDING_MODES = ("zeros", "constant", "reflect", "symmetric", "replicate", "circular")
#: the largest kernel size, stride, dilation or padding: the kernels take them as C ints
#: (a larger Python int would not convert, and sums of them must not wrap)
MAX_EXTENT = 2**31 - 1


def is_int(v):
    """An integer (Python or NumPy), not a bool."""
    t = type(v)
    return t is int or (t is not bool and isinstance(v, numbers.Integral))


def pair(value, name, owner, minimum=1):
    """Normalise an int or an (h, w) pair of ints to a tuple, checking ``>= minimum`` and
    ``<= MAX_EXTENT``. The functional layer checks its arguments on every call."""
    if (type(value) is tuple and len(value) == 2 and type(value[0]) is int
            and type(value[1]) is int and minimum <= value[0] <= MAX_EXTENT
            and minimum <= value[1] <= MAX_EXTENT):
        return value                       # already normal: the common case, kept cheap
    if is_int(value):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{owner}: {name} must be an int or a pair of ints (h, w), got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum} in each axis, got {value!r}")
    if max(out) > MAX_EXTENT:
        raise ValueError(f"{owner}: {name} must be at most {MAX_EXTENT:,} in each axis, got "
                         f"{value!r}")
    return out


def scale_factor_pair(scale_factor, owner):
    """An upsampling factor as an (h, w) pair of positive ints; a float is taken only when it
    is a whole number (2.0), as fractional factors are not supported."""
    if isinstance(scale_factor, float) and scale_factor.is_integer():
        scale_factor = int(scale_factor)
    return pair(scale_factor, "scale_factor", owner)


def normalize_padding(padding, owner, allow_same=True):
    """Normalise a padding argument.

    Accepts an int, an (h, w) pair, ``((top, bottom), (left, right))``, the flat
    ``(left, right, top, bottom)`` in the order ``torch.nn.functional.pad`` takes for the
    last two axes, ``'valid'`` and (when ``allow_same``) ``'same'``. Returns the string
    ``'same'`` or the per-side form ``((top, bottom), (left, right))``.
    """
    try:                                   # returned before, so normal: skip the checks
        if (type(padding) is tuple and padding in _PER_SIDE
                and all(type(v) is int for side in padding for v in side)):
            return padding
    except TypeError:                      # a list inside: unhashable
        pass
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return ((0, 0), (0, 0))
        if p == "same" and allow_same:
            return "same"
        raise ValueError(f"{owner}: padding must be {_forms(allow_same)}, got {padding!r}")
    if is_int(padding):
        p = int(padding)
        sides = ((p, p), (p, p))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(is_int(v) for v in padding):
            sides = ((int(padding[0]),) * 2, (int(padding[1]),) * 2)
        elif all(
            isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(u) for u in v)
            for v in padding
        ):
            sides = tuple((int(v[0]), int(v[1])) for v in padding)
        else:
            sides = None
    elif (isinstance(padding, (tuple, list)) and len(padding) == 4
          and all(is_int(v) for v in padding)):
        left, right, top, bottom = (int(v) for v in padding)      # torch.nn.functional.pad's order
        sides = ((top, bottom), (left, right))
    else:
        sides = None
    if sides is None:
        count = ""
        if isinstance(padding, (tuple, list)) and all(is_int(v) for v in padding):
            count = (f" ({len(padding)} numbers: give one int, 2 (h, w) or 4 (left, right, "
                     f"top, bottom))")
        raise TypeError(f"{owner}: padding must be {_forms(allow_same)}, got {padding!r}{count}")
    if min(sides[0] + sides[1]) < 0:
        raise ValueError(f"{owner}: padding must be >= 0 on every side, got {padding!r}")
    if max(sides[0] + sides[1]) > MAX_EXTENT:
        raise ValueError(f"{owner}: padding must be at most {MAX_EXTENT:,} on every side, got "
                         f"{padding!r}")
    if len(_PER_SIDE) < 4096:
        _PER_SIDE.add(sides)
    return sides


def _forms(allow_same):
    """The padding forms normalize_padding accepts, for its error messages."""
    return ("an int, (h, w), ((top, bottom), (left, right)), (left, right, top, bottom) as "
            "torch.nn.functional.pad orders it, 'valid'" + (" or 'same'" if allow_same else ""))


#: per-side paddings normalize_padding has returned: each is its own normal form (the
#: functional layer normalises on every call; the layers' own are normal already)
_PER_SIDE = set()


def effective_kernel(k, dilation=1):
    """The span of a dilated kernel: dilation * (k - 1) + 1."""
    return dilation * (k - 1) + 1


def same_padding(n, k, stride=1, dilation=1):
    """(before, after) padding so that the output has ceil(n / stride) elements.

    When the total is odd the extra element goes after (bottom or right), as in
    TensorFlow.
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + effective_kernel(k, dilation) - n, 0)
    return (total // 2, total - total // 2)


def resolve_padding(padding, in_hw, kernel_size, stride, dilation=(1, 1)):
    """Per-side padding for an input of size ``in_hw``: resolves 'same', else returns it."""
    if padding == "same":
        return tuple(
            same_padding(n, k, s, d) for n, k, s, d in zip(in_hw, kernel_size, stride, dilation)
        )
    return padding


def conv_output_size(n, k, stride=1, pad_before=0, pad_after=0, dilation=1):
    """floor((n + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1.

    With symmetric padding P and no dilation this is the notes' (X + 2P - K) / S + 1.
    Returns 0 or less when the kernel does not fit; callers turn that into an error.
    """
    span = n + pad_before + pad_after - effective_kernel(k, dilation)
    if span < 0:
        return 0
    return span // stride + 1


def conv_transpose_output_size(n, k, stride=1, padding=0, output_padding=0, dilation=1):
    """(n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1: the size
    of a transposed convolution's output (the input size of the convolution it inverts).
    Returns 0 or less when the padding removes everything; callers turn that into an error.
    """
    return (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def pool_output_size(n, k, stride, pad_before=0, pad_after=0, ceil_mode=False):
    """Output size of a pooling window, with PyTorch's ceil_mode rule.

    In ceil mode the last window may hang over the end, but it must start inside
    the input or the leading padding (otherwise it is dropped).
    """
    span = n + pad_before + pad_after - k
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= n + pad_before:
        out -= 1
    return out


def receptive_field_step(r, jump, k, stride=1, dilation=1):
    """One layer of the receptive-field recurrence.

    r_l = r_{l-1} + (k_eff - 1) * j_{l-1};  j_l = j_{l-1} * stride.
    Starting from (r, j) = (1, 1) this gives r = 1 + sum((k_i - 1) * prod(s_j, j < i)).
    """
    return r + (effective_kernel(k, dilation) - 1) * jump, jump * stride


def check_fits(owner, in_hw, kernel_size, padding, dilation=(1, 1)):
    """Raise ValueError naming the layer when the kernel does not fit the padded input."""
    for axis, n, k, (before, after), d in zip("HW", in_hw, kernel_size, padding, dilation):
        span = effective_kernel(k, d)
        if n + before + after < span:
            raise ValueError(
                f"{owner}: kernel size {span}{' (dilated)' if d > 1 else ''} along {axis} does not fit the padded "
                f"input of size {n} + {before} + {after} = {n + before + after}"
            )


def mac_count(out_hw, kernel_size, in_channels, out_channels, groups=1):
    """Multiply-accumulates of one image through a convolution: OH*OW*KH*KW*Cin*Cout/groups."""
    return out_hw[0] * out_hw[1] * kernel_size[0] * kernel_size[1] * in_channels * out_channels // groups


def pool_args(kernel_size, stride=None, padding=0, owner="pool2d"):
    """Normalise pooling arguments to ((kh, kw), (sh, sw), ((top, bottom), (left, right))).

    kernel_size, stride: an int or an (h, w) pair; stride None means the kernel size.
    padding: an int, (h, w), ((top, bottom), (left, right)) or 'valid' (not 'same').
    As in PyTorch every side is at most kernel // 2 in its axis: then each window
    overlaps the input, so a max pool never returns the -inf of its virtual padding.
    """
    kernel_size = pair(kernel_size, "kernel_size", owner)
    stride = kernel_size if stride is None else pair(stride, "stride", owner)
    padding = normalize_padding(padding, owner, allow_same=False)
    for axis, k, sides in zip("HW", kernel_size, padding):
        if max(sides) > k // 2:
            raise ValueError(
                f"{owner}: padding along {axis} must be at most half the kernel size "
                f"({k} // 2 = {k // 2}) on each side, got {sides}")
    return kernel_size, stride, padding


def pool_output_hw(in_hw, kernel_size, stride, padding, ceil_mode=False, owner="pool2d"):
    """(OH, OW) for normalised pooling arguments, with PyTorch's ceil_mode rule.

    Raises ValueError when H or W is 0 or the window does not fit the padded input.
    """
    if min(in_hw) < 1:
        raise ValueError(f"{owner}: expected an input with H >= 1 and W >= 1, got H, W = "
                         f"{tuple(in_hw)}")
    check_fits(owner, in_hw, kernel_size, padding)
    return tuple(pool_output_size(n, k, s, before, after, ceil_mode)
                 for n, k, s, (before, after) in zip(in_hw, kernel_size, stride, padding))


def receptive_field_start_step(start, jump, pad_before):
    """One layer of where the first output's receptive field starts, in input pixels:
    start_l = start_{l-1} - pad_before_l * j_{l-1}, from start = 0. Output i of the layer
    then sees input pixels [start + i * j, start + i * j + r); a negative start reaches into
    the padding."""
    return start - pad_before * jump
