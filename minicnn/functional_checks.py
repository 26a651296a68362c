"""The checks minicnn.functional makes on every call, so that no argument can make a
kernel read or write outside an array.

The kernels run with bounds checks off and take sizes, strides and dilations as C ints.
Layers normalise their arguments once, but the functions are public and a layer's
attributes and caches are plain Python values a caller can change, so each public
function checks what the kernels assume: stride and dilation from 1 to
geometry.MAX_EXTENT, groups, the weight's shape, and for a convolution's backward pass
that the cache is one its forward could have made (its arrays and its geometry agree).
"""
import numpy as np

from . import gemm
from . import geometry

__all__ = ["FLOATS", "CONV_PATHS", "KERNEL_PATHS", "CACHE_KEYS", "positive_int", "conv_args",
           "conv_weight", "size_pair", "input_shape", "conv_cache"]

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: the convolution paths conv2d_forward records in its cache
CONV_PATHS = ("depthwise", "direct", "winograd", "image", "pointwise", "gemm")
#: the paths that run on one of minicnn's own GEMM kernels (named in the cache)
KERNEL_PATHS = ("direct", "winograd", "image")
CACHE_KEYS = frozenset(("x_shape", "w", "stride", "dilation", "groups", "padding",
                        "padding_mode", "flip", "has_bias", "out_hw", "path", "saved",
                        "padded_shape", "relu_out", "workspace"))


def positive_int(value, name, owner):
    """``value`` as an int >= 1 (bools refused), else a ValueError naming it."""
    if type(value) is int and value >= 1:
        return value
    if not geometry.is_int(value) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def conv_args(stride, dilation, groups, owner):
    """(stride, dilation, groups) checked and normalised: pairs from 1 to MAX_EXTENT, groups
    a positive int."""
    return (geometry.pair(stride, "stride", owner), geometry.pair(dilation, "dilation", owner),
            positive_int(groups, "groups", owner))


def conv_weight(w, b, owner):
    """A float weight (O, C/groups, KH, KW) with KH, KW >= 1, and a bias that is None or
    an array (its shape is checked against the weight's by the caller)."""
    if not isinstance(w, np.ndarray) or w.dtype not in FLOATS:
        got = w.dtype if isinstance(w, np.ndarray) else type(w).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 weight, got {got}")
    if w.ndim != 4:
        raise ValueError(f"{owner}: weight must be 4-d (out, in/groups, kh, kw), got shape "
                         f"{w.shape}")
    if min(w.shape[2:]) < 1:
        raise ValueError(f"{owner}: the weight's kernel must be at least 1 x 1, got shape "
                         f"{w.shape}")
    if b is not None and not isinstance(b, np.ndarray):
        raise TypeError(f"{owner}: bias must be None or a NumPy array, got {type(b).__name__}")


def size_pair(hw, name, owner):
    """An (H, W) pair of ints >= 0 (an input size a backward pass is told)."""
    if (not isinstance(hw, (tuple, list)) or len(hw) != 2
            or not all(geometry.is_int(v) and v >= 0 for v in hw)):
        raise ValueError(f"{owner}: {name} must be a pair of ints (H, W) >= 0, got {hw!r}")
    return int(hw[0]), int(hw[1])


def input_shape(shape, owner):
    """An (N, C, H, W) tuple of ints >= 0."""
    if type(shape) is tuple and len(shape) == 4:       # an array's own shape: the common case
        n, c, h, w = shape
        if type(n) is int and type(c) is int and type(h) is int and type(w) is int \
                and min(shape) >= 0:
            return shape
    if (not isinstance(shape, (tuple, list)) or len(shape) != 4
            or not all(geometry.is_int(v) and v >= 0 for v in shape)):
        raise ValueError(f"{owner}: input_shape must be (N, C, H, W), ints >= 0, got {shape!r}")
    return tuple(int(v) for v in shape)


def _bad_cache(what):
    return ValueError(f"conv2d_backward: the cache is not one conv2d_forward(training=True) "
                      f"made: {what}")


def _array(a, shape, dtype, name):
    if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
        got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise _bad_cache(f"{name} must be a {dtype} array of shape {shape}, got {got}")


def _cache_key(cache):
    """Everything conv_cache checks, as one hashable tuple read from the cache as it is now."""
    w, saved, relu_out = cache["w"], cache["saved"], cache["relu_out"]
    return (cache["x_shape"], type(w), w.shape, w.dtype, w.flags.c_contiguous, cache["stride"],
            cache["dilation"], cache["groups"], cache["padding"], cache["padded_shape"],
            cache["out_hw"], cache["path"], cache.get("kernel"), type(saved), saved.shape,
            saved.dtype, None if relu_out is None else (type(relu_out), relu_out.shape,
                                                        relu_out.dtype),
            type(cache["workspace"]))


#: the keys of caches conv_cache has passed: a cache that reads the same is not checked
#: again (every backward pass checks its cache; the lookup is a fraction of the full check)
_PASSED = set()


def conv_cache(cache):
    """Check a convolution's cache before its backward pass: every geometry value in range,
    the output size recomputed from them, and each array the shape its path implies.
    Returns the input's shape (N, C, H, W)."""
    try:
        if _cache_key(cache) in _PASSED:
            return cache["x_shape"]
    except (AttributeError, KeyError, TypeError):     # not a dict of arrays: checked below
        pass
    n, c, h, wd = _check_conv_cache(cache)
    if len(_PASSED) < 4096:
        _PASSED.add(_cache_key(cache))
    return n, c, h, wd


def _check_conv_cache(cache):
    if not isinstance(cache, dict):
        raise TypeError(f"conv2d_backward: cache must be the dict conv2d_forward returned, "
                        f"got {type(cache).__name__}")
    if not CACHE_KEYS <= cache.keys():
        raise _bad_cache(f"it lacks {sorted(CACHE_KEYS - cache.keys())}")
    w, path = cache["w"], cache["path"]
    try:
        conv_weight(w, None, "conv2d_backward")
        stride, dilation, groups = conv_args(cache["stride"], cache["dilation"],
                                             cache["groups"], "conv2d_backward")
        n, c, h, wd = input_shape(cache["x_shape"], "conv2d_backward")
        padding = cache["padding"]
        if geometry.normalize_padding(padding, "conv2d_backward", False) != padding:
            raise ValueError(f"padding must be per side ((top, bottom), (left, right)), got "
                             f"{padding!r}")
    except (TypeError, ValueError) as e:
        raise _bad_cache(str(e).removeprefix("conv2d_backward: ")) from None
    o, cin_g, kh, kw = w.shape
    if c != cin_g * groups or o % groups or not w.flags.c_contiguous:
        raise _bad_cache(f"a C-contiguous weight {w.shape} with groups={groups} does not take "
                         f"{c} input channels")
    (top, bottom), (left, right) = padding
    hp, wp = h + top + bottom, wd + left + right
    oh = geometry.conv_output_size(h, kh, stride[0], top, bottom, dilation[0])
    ow = geometry.conv_output_size(wd, kw, stride[1], left, right, dilation[1])
    if cache["padded_shape"] != (n, c, hp, wp) or cache["out_hw"] != (oh, ow) or min(oh, ow) < 1:
        raise _bad_cache(f"padded shape {cache['padded_shape']!r} and output size "
                         f"{cache['out_hw']!r} do not follow from its geometry")
    if cache["relu_out"] is not None:
        _array(cache["relu_out"], (n, o, oh, ow), w.dtype, "relu_out")
    if cache["workspace"] is not None and not isinstance(cache["workspace"], dict):
        raise _bad_cache("workspace must be None or a dict")
    if path not in CONV_PATHS:
        raise _bad_cache(f"path must be one of {CONV_PATHS}, got {path!r}")
    saved_shape = (n, c, hp, wp)
    if path == "depthwise" and not groups == c > 1:
        raise _bad_cache(f"a depthwise cache needs groups == channels > 1, got {groups}, {c}")
    if path in KERNEL_PATHS:
        if cache.get("kernel") not in gemm.available() or w.dtype != np.float32:
            raise _bad_cache(f"the {path} path runs float32 on one of this CPU's GEMM kernels "
                             f"{gemm.available()}, got {cache.get('kernel')!r} {w.dtype}")
    elif path == "pointwise":
        if (kh, kw) != (1, 1) or stride != (1, 1) or hp != h or wp != wd:
            raise _bad_cache("a pointwise cache needs an unpadded 1x1 kernel at stride 1")
        saved_shape = (c, n, h * wd)
    elif path == "gemm":
        saved_shape = (c * kh * kw, n, oh * ow)
    _array(cache["saved"], saved_shape, w.dtype, f"the {path} path's saved array")
    return n, c, h, wd
