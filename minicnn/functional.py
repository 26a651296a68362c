"""Pure functions, forward and backward, that the layers call.

Each function validates its arguments, allocates its outputs with NumPy and calls
a Cython kernel (``minicnn._kernels``); kernels run with bounds checks off, so
nothing reaches them unchecked. Arrays are NCHW; padding is in the per-side form
``((top, bottom), (left, right))`` of ``minicnn.geometry``. ``owner`` names the caller
in error messages: a string, or the calling layer itself, whose repr is only built when
a message needs it (building it on every call was a noticeable part of a batch-1 step).
"""
import functools

import numpy as np

from . import functional_checks as checks
from . import geometry
from . import gemm
from . import winograd
from .runtime import get_num_threads, numpy_matmul
from ._kernels import conv as _conv
from ._kernels import activation as _act
from ._kernels import pad as _pad

#: below this many values touched, a kernel runs on one thread: handing work to another
#: thread (waking it, a cache miss each) costs more than the work saves (measurements in
#: benchmarks/README.md, "Why the thresholds are what they are")
PARALLEL_MIN = 1 << 17
#: and a convolution below this many multiply-adds (a batch-1 LeNet-5 step stays on one
#: thread)
PARALLEL_MIN_MACS = 1 << 18


def _threads(size, floor=None):
    """The thread count for a kernel that touches ``size`` values (or, with floor =
    PARALLEL_MIN_MACS, does ``size`` multiply-adds)."""
    return get_num_threads() if size >= (PARALLEL_MIN if floor is None else floor) else 1

# === padding (owner: pad) ====================================================

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

    padding: an int, (h, w) or per-side ((top, bottom), (left, right)), each >= 0;
    mode: see ``pad_index``. Returns a new (N, C, H + top + bottom, W + left + right)
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
                     _threads(out.size))
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
    _pad.pad_backward(_planes(dout), rows, cols, _planes(dx), left, _threads(dout.size))
    return dx


def _real_array(a, owner, name):
    """``a`` as an array of real numbers (float or integer): a complex, bool or object
    gradient would otherwise be cast quietly (the imaginary part dropped)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: expected a real (float or integer) {name}, got {a.dtype}")
    return a


# === convolution (owner: conv) ===============================================

def _scratch(workspace, name, shape, dtype):
    """A buffer for a temporary: reused from ``workspace`` (a dict a layer owns) when it
    has the right shape and dtype, else allocated (and kept there).

    Large temporaries (convnet's im2col matrix is 42 MB) freshly allocated every step
    would cost a page fault per 4 KB on first touch.
    Outputs that leave the function are never scratch: only what dies inside it, or
    lives in the cache until the next forward replaces it.
    """
    if workspace is None:
        return np.empty(shape, dtype)
    buf = workspace.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = workspace[name] = np.empty(shape, dtype)
    return buf


def _check_conv_args(x, w, b, stride, padding, dilation, groups, owner):
    """Validate an input against a weight; return (stride, dilation, groups, padding), the
    padding per side and resolved for x."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 input, got {got}")
    stride, dilation, groups = checks.conv_args(stride, dilation, groups, owner)
    checks.conv_weight(w, b, owner)
    out_channels, cin_g, kh, kw = w.shape
    in_channels = cin_g * groups
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{owner}: expected input (N, {in_channels}, H, W), got {x.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"{owner}: input dtype {x.dtype} differs from weight dtype {w.dtype}")
    if out_channels % groups:
        raise ValueError(f"{owner}: out_channels={out_channels} is not divisible by groups={groups}")
    if b is not None and (b.shape != (out_channels,) or b.dtype != w.dtype):
        raise ValueError(f"{owner}: bias must be ({out_channels},) {w.dtype}, got {b.shape} {b.dtype}")
    padding = geometry.resolve_padding(geometry.normalize_padding(padding, owner), x.shape[2:],
                                       (kh, kw), stride, dilation)
    geometry.check_fits(owner, x.shape[2:], (kh, kw), padding, dilation)
    return stride, dilation, groups, padding


CONV_ACTIVATIONS = (None, "relu")


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                   groups=1, padding_mode="zeros", flip_kernel=False, training=True, owner="conv2d",
                   workspace=None, activation=None):
    """2-d cross-correlation (a true convolution when ``flip_kernel``): returns (out, cache).

    x: (N, C, H, W); w: (O, C/groups, KH, KW); b: (O,) or None. ``padding`` is an int,
    (h, w), per-side ((top, bottom), (left, right)) or 'same'; ``padding_mode`` any mode
    of ``pad``. out: (N, O, OH, OW) with OH = floor((H + top + bottom -
    dilation*(KH - 1) - 1) / stride) + 1. ``cache`` is what ``conv2d_backward``
    needs (None when not training). ``workspace``: a dict in which to keep the large
    temporaries between calls (see ``_scratch``); the cache may point into it, so
    backward must come before the next forward with the same workspace (Conv2D keeps one
    per layer, and any forward there replaces the cache backward reads anyway). The cache
    may also keep a view of ``x`` itself (depthwise, direct and image-by-image convolutions
    without padding, among them every unpadded float32 stride-1 convolution of a batch of 8
    or more; a 1x1 convolution of one image): change x in place between forward and
    backward and the weight gradient changes with it, as with PyTorch's saved tensors.
    ``activation='relu'`` returns max(conv, 0), folded into the pass that lays the GEMM's
    output out as images (or applied in place on the other paths): the same numbers as a
    ReLU after the convolution, without a pass over memory of its own.
    """
    if activation not in CONV_ACTIVATIONS:
        raise ValueError(f"{owner}: activation must be None or 'relu', got {activation!r}")
    stride, dilation, groups, padding = _check_conv_args(x, w, b, stride, padding, dilation,
                                                         groups, owner)
    if workspace is not None and not isinstance(workspace, dict):
        raise TypeError(f"{owner}: workspace must be None or a dict, got {type(workspace).__name__}")
    if flip_kernel:
        w = w[:, :, ::-1, ::-1]
    w = np.ascontiguousarray(w)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh = geometry.conv_output_size(h, kh, sh, *padding[0], dilation=dh)
    ow = geometry.conv_output_size(wd, kw, sw, *padding[1], dilation=dw)
    padded = padding != ((0, 0), (0, 0))
    xp = pad(x, padding, padding_mode, owner=owner) if padded else np.ascontiguousarray(x)
    threads = _threads(n * o * oh * ow * c // groups * kh * kw, PARALLEL_MIN_MACS)
    cache = {"x_shape": x.shape, "padding": padding, "padding_mode": padding_mode,
             "stride": stride, "dilation": dilation, "groups": groups, "w": w,
             "flip": flip_kernel, "has_bias": b is not None, "out_hw": (oh, ow)}
    relu = activation == "relu"
    bias = np.ascontiguousarray(b) if b is not None else np.zeros(o, dtype=w.dtype)

    if groups == c and c > 1:
        # depthwise: a direct loop beats a GEMM with one input channel per group
        path = "depthwise"
        out = np.empty((n, o, oh, ow), dtype=w.dtype)
        _conv.depthwise_forward(xp, w, bias, out, sh, sw, dh, dw, threads)
        if relu:
            _act.relu_forward(out.reshape(-1), out.reshape(-1), _threads(out.size))
        saved = xp
    else:
        # 1x1, stride 1, unpadded: the column matrix is the input itself, channel-major, so
        # a transpose replaces im2col (one GEMM over the batch beat NumPy's per-image
        # stacked matmul)
        path = "pointwise" if kh == kw == 1 and stride == (1, 1) and not padded else "gemm"
        g = groups
        # inference uses no workspace: two threads may run one model's forward at once
        ws = workspace if training else None
        macs = o * c * kh * kw * oh * ow                  # one image's product (groups == 1)
        kern = gemm.conv_kernel(w.dtype, g, n, macs) if path == "gemm" else None
        direct = None
        if path == "gemm" and tuple(stride) == (1, 1):
            direct = gemm.direct_kernel(w.dtype, g, n, w.shape, xp.shape, ow, oh)
        out = np.empty((n, o, oh, ow), dtype=w.dtype)
        if direct is not None:
            # stride 1: each tap's inputs are a contiguous run of the padded image, read in
            # place by a GEMM kernel (direct_conv.pxi): no columns at all
            cache.update(kernel=gemm.kernel_name_of(direct), image_dx=kern is not None)
            path = "direct"
            # 3x3 with many channels: the same convolution from 1/2.25 the multiply-adds
            # (minicnn/winograd.py), forward and backward, only where the direct kernels
            # would run (on smaller images the batch path beat it too); an output that is
            # not finite (an infinite input) is made again directly, whose infinities it keeps
            if (winograd.fits(w.dtype, g, n, w.shape, stride, dilation)
                    and winograd.forward(direct, w, xp, bias, out, relu, threads)):
                path = "winograd"
            else:
                gemm.direct_forward(direct, w, xp, bias, out, relu, dilation, threads)
            saved = xp      # as the image path: unpadded, a view of the caller's input
        elif kern is not None:
            # image by image: im2col, GEMM, bias and ReLU while the image's columns are in
            # cache, the product landing in NCHW (gemm_conv.pxi); no column matrix is kept:
            # the backward pass makes each image's columns again from the padded input
            path = "image"
            cache["kernel"] = gemm.kernel_name_of(kern)
            gemm.conv_forward(kern, w.reshape(o, -1), xp, bias, out.reshape(n, o, oh * ow),
                              relu, (kh, kw, sh, sw, dh, dw, ow), threads)
            saved = xp      # as the depthwise path: unpadded, a view of the caller's input
        else:
            if path == "pointwise" and n == 1:
                cols = xp.reshape(c, 1, h * wd)      # one image: already channel-major
            else:
                cols = _scratch(ws, "cols", (c * kh * kw, n, oh * ow), w.dtype)
                if path == "pointwise":
                    x3 = xp.reshape(n, c, h * wd)
                    _conv.images_to_gemm(x3, x3, cols, False, _threads(xp.size))
                else:
                    _conv.im2col(xp, cols, kh, kw, sh, sw, dh, dw, ow, threads)
            out_t = gemm.matmul(w.reshape(g, o // g, -1),
                                cols.reshape(g, c // g * kh * kw, n * oh * ow),
                                _scratch(ws, "gemm", (g, o // g, n * oh * ow), w.dtype), threads)
            _conv.gemm_to_images(out_t.reshape(o, n, oh * ow), bias, out.reshape(n, o, oh * ow),
                                 relu, _threads(out.size))
            saved = cols
    cache.update(path=path, saved=saved, padded_shape=xp.shape, workspace=workspace,
                 relu_out=out if relu else None)
    return out, (cache if training else None)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False, activation=None):
    """Functional 2-d convolution, forward only, with the Conv2D argument forms."""
    owner = "conv2d"
    stride = geometry.pair(stride, "stride", owner)
    dilation = geometry.pair(dilation, "dilation", owner)
    padding = geometry.normalize_padding(padding, owner)
    if padding_mode not in geometry.PADDING_MODES or padding_mode == "constant":
        raise ValueError(f"{owner}: padding_mode must be one of zeros, reflect, symmetric, "
                         f"replicate, circular, got {padding_mode!r}")
    return conv2d_forward(x, w, b, stride, padding, dilation, groups, padding_mode,
                          flip_kernel, training=False, owner=owner, activation=activation)[0]


def _conv_backward_images(dout_t, cache, need_dx, threads):
    """(dxp, dw) of an image-by-image convolution (gemm_conv.pxi): each image's columns are
    made again from the saved padded input, for the weight gradient, and the input
    gradient's are folded back (col2im) while in cache. dxp is the padded input's gradient
    (None without need_dx); dw has the weight's shape, before any flip."""
    w, xp = cache["w"], cache["saved"]
    o = dout_t.shape[0]
    kern = gemm.kernel_of(cache["kernel"])
    dw_ = np.empty((o, w[0].size), w.dtype)
    gemm.conv_backward_weight(kern, dout_t, xp, dw_, _image_geometry(cache), threads)
    dxp = _input_grad_images(dout_t, cache, kern, threads) if need_dx else None
    return dxp, dw_.reshape(w.shape)


def _gemm_layout(dout, cache):
    """dout (N, O, OH, OW) moved to the GEMMs' (O, N, OH*OW), gated by the forward's fused
    ReLU on the way."""
    n, o = dout.shape[:2]
    p = dout.shape[2] * dout.shape[3]
    relu_out = cache["relu_out"]
    dout_t = _scratch(cache["workspace"], "dout_t", (o, n, p), dout.dtype)
    d3 = dout.reshape(n, o, p)
    gate = relu_out.reshape(n, o, p) if relu_out is not None else d3
    _conv.images_to_gemm(d3, gate, dout_t, relu_out is not None, _threads(dout.size))
    return dout_t


def _conv_backward_direct(dout, cache, need_dx, threads):
    """(dxp, dw, db) of a direct convolution (direct_conv.pxi): one pass gates dout by the
    fused ReLU, lays it out beside the saved padded input (a chunk of images at a time) and
    sums it, and from that layout come the weight and bias gradients and, where it fits
    (gemm.direct_dx_fits, a finite weight), the input gradient; else the input gradient
    comes as on the image or batch path, from dout moved to the GEMMs' layout."""
    w, xp = cache["w"], cache["saved"]
    kern = gemm.kernel_of(cache["kernel"])
    dw_ = np.empty_like(w)
    fused = (need_dx and gemm.direct_dx_fits(kern, xp.shape, *cache["out_hw"])
             and np.isfinite(w).all())
    dxp = _dxp_buffer(cache["workspace"], cache, zeroed=False) if fused else None
    db = gemm.direct_backward(kern, dout, cache["relu_out"], xp, dw_, cache["dilation"],
                              threads, w if fused else None, dxp)
    dout_t = None
    if not np.isfinite(dw_).all():
        # the kernel also multiplies the zeros of the dropped columns by input pixels, so
        # an inf or NaN there would taint taps it does not belong to: redo from columns
        o, c, kh, kw = w.shape
        n, (oh, ow) = cache["x_shape"][0], cache["out_hw"]
        dout_t = _gemm_layout(dout, cache)
        cols = np.empty((c * kh * kw, n, oh * ow), w.dtype)
        _conv.im2col(xp, cols, kh, kw, 1, 1, *cache["dilation"], ow, threads)
        dw_ = _weight_grad_from_columns(dout_t, cols, cache, threads)
    if need_dx and not fused:
        dout_t = _gemm_layout(dout, cache) if dout_t is None else dout_t
        dxp = (_input_grad_images(dout_t, cache, kern, threads) if cache["image_dx"]
               else _input_grad_batch(dout_t, cache, threads))
    return dxp, dw_, (db if cache["has_bias"] else None)


def _conv_backward_batch(dout_t, cache, need_dx, threads):
    """(dxp, dw) of the batch GEMM paths: dw = dout_t @ cols^T, and dcols = w^T @ dout_t folded
    back by col2im (or transposed back, for 1x1). Same contract as _conv_backward_images."""
    dw_ = _weight_grad_from_columns(dout_t, cache["saved"], cache, threads)
    dxp = _input_grad_batch(dout_t, cache, threads) if need_dx else None
    return dxp, dw_


def _weight_grad_from_columns(dout_t, cols, cache, threads):
    """dw = dout_t (O, N*P) @ cols^T, per group, in the weight's shape."""
    n, c = cache["x_shape"][:2]
    w = cache["w"]
    o, _, kh, kw = w.shape
    p = cache["out_hw"][0] * cache["out_hw"][1]
    g = cache["groups"]
    cols = cols.reshape(g, c // g * kh * kw, n * p)       # sizes given: n may be 0
    dw_ = gemm.matmul(dout_t.reshape(g, o // g, n * p), cols.transpose(0, 2, 1),
                      np.empty((g, o // g, c // g * kh * kw), w.dtype), threads)
    return dw_.reshape(w.shape)


def _image_geometry(cache):
    """(kh, kw, sh, sw, dh, dw, ow): what the image-by-image kernels take."""
    (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
    return (*cache["w"].shape[2:], sh, sw, dh, dw, cache["out_hw"][1])


def _input_grad_images(dout_t, cache, kern, threads):
    """The padded input's gradient, image by image: each image's dcols = w^T @ its dout
    folded back (col2im) while in cache."""
    w = cache["w"]
    dxp = _dxp_buffer(cache["workspace"], cache)
    gemm.conv_backward_input(kern, w.reshape(w.shape[0], -1), dout_t, dxp,
                             _image_geometry(cache), threads)
    return dxp


def _input_grad_batch(dout_t, cache, threads):
    """The padded input's gradient over the batch: dcols = w^T @ dout_t, then col2im (or,
    for 1x1, the transpose back)."""
    n, c, h, wd = cache["x_shape"]
    w, ws = cache["w"], cache["workspace"]
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
    oh, ow = cache["out_hw"]
    g = cache["groups"]
    dcols = gemm.matmul(w.reshape(g, o // g, -1).transpose(0, 2, 1),
                        dout_t.reshape(g, o // g, n * oh * ow),
                        _scratch(ws, "dcols", (g, c // g * kh * kw, n * oh * ow), w.dtype),
                        threads)
    if cache["path"] == "pointwise":           # the transpose back, no sums
        dxp = np.empty(cache["padded_shape"], dtype=w.dtype)
        _conv.gemm_to_images(dcols.reshape(c, n, h * wd), np.zeros(c, dtype=w.dtype),
                             dxp.reshape(n, c, h * wd), False, _threads(dxp.size))
    else:
        dxp = _dxp_buffer(ws, cache)
        _conv.col2im(dcols.reshape(c * kh * kw, n, oh * ow), dxp, kh, kw, sh, sw, dh, dw, ow,
                     threads)
    return dxp


def _dxp_buffer(ws, cache, zeroed=True):
    """The gradient of the padded input, zeroed for col2im to add into (or not, for a
    kernel that writes all of it): a workspace temporary when padded (dx is made from it),
    else a new array (it is dx)."""
    if cache["padding"] != ((0, 0), (0, 0)):
        dxp = _scratch(ws, "dxp", cache["padded_shape"], cache["w"].dtype)
        if zeroed:
            dxp.fill(0)
        return dxp
    alloc = np.zeros if zeroed else np.empty
    return alloc(cache["padded_shape"], dtype=cache["w"].dtype)


def conv2d_backward(dout, cache, need_dx=True):
    """Gradients of ``conv2d_forward``: returns (dx, dw, db).

    db is None without bias; dx is None when ``need_dx`` is False (the first layer of
    a network needs no input gradient, which saves a GEMM and a col2im). The cache is
    checked first (functional_checks.conv_cache): a changed one raises a ValueError.
    """
    n, c, h, wd = checks.conv_cache(cache)
    w = cache["w"]
    o, cin_g, kh, kw = w.shape
    (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
    oh, ow = cache["out_hw"]
    dout = _real_array(dout, "conv2d_backward", "dout")
    if dout.shape != (n, o, oh, ow):
        raise ValueError(f"conv2d_backward: dout must be {(n, o, oh, ow)}, got {dout.shape}")
    dout = np.ascontiguousarray(dout, dtype=w.dtype)
    threads = _threads(dout.size * cin_g * kh * kw, PARALLEL_MIN_MACS)
    path, saved, relu_out = cache["path"], cache["saved"], cache["relu_out"]
    db = None
    if relu_out is not None and path == "depthwise":   # the GEMM paths gate dout as they move it
        dout = relu_backward(dout, relu_out)

    dxp = None
    if path == "depthwise":
        db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
        dw_ = np.empty_like(w)
        _conv.depthwise_backward_weight(dout, saved, dw_, sh, sw, dh, dw, threads)
        if need_dx:
            dxp = np.zeros(cache["padded_shape"], dtype=w.dtype)
            _conv.depthwise_backward_input(dout, w, dxp, sh, sw, dh, dw, threads)
    elif path == "direct":
        dxp, dw_, db = _conv_backward_direct(dout, cache, need_dx, threads)
    elif path == "winograd":
        dxp = _dxp_buffer(cache["workspace"], cache, zeroed=False) if need_dx else None
        dw_, db, finite = winograd.backward(gemm.kernel_of(cache["kernel"]), dout, relu_out,
                                            saved, w, dxp, threads)
        if finite:
            db = db if cache["has_bias"] else None
        else:       # an infinity or NaN: the direct kernels' numbers instead (see forward)
            dxp, dw_, db = _conv_backward_direct(dout, cache, need_dx, threads)
    else:
        dout_t = _gemm_layout(dout, cache)
        if cache["has_bias"]:
            db = dout_t.sum(axis=(1, 2))
        backward = _conv_backward_images if path == "image" else _conv_backward_batch
        dxp, dw_ = backward(dout_t, cache, need_dx, threads)

    if dxp is None:
        dx = None
    elif cache["padding"] != ((0, 0), (0, 0)):
        dx = pad_backward(dxp, cache["padding"], cache["padding_mode"], (h, wd))
    else:
        dx = dxp
    if cache["flip"]:
        dw_ = np.ascontiguousarray(dw_[:, :, ::-1, ::-1])
    return dx, dw_, db


# === pooling (owner: pool) ===================================================

from ._kernels import pool as _pool  # noqa: E402


def pool_args(kernel_size, stride=None, padding=0, owner="pool2d"):
    """Normalise pooling arguments to ((kh, kw), (sh, sw), ((top, bottom), (left, right))).

    kernel_size, stride: an int or an (h, w) pair; stride None means the kernel size.
    padding: an int, (h, w), ((top, bottom), (left, right)) or 'valid' (not 'same').
    As in PyTorch every side is at most kernel // 2 in its axis: then each window
    overlaps the input, so a max pool never returns the -inf of its virtual padding.
    """
    kernel_size = geometry.pair(kernel_size, "kernel_size", owner)
    stride = kernel_size if stride is None else geometry.pair(stride, "stride", owner)
    padding = geometry.normalize_padding(padding, owner, allow_same=False)
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
    geometry.check_fits(owner, in_hw, kernel_size, padding)
    return tuple(geometry.pool_output_size(n, k, s, before, after, ceil_mode)
                 for n, k, s, (before, after) in zip(in_hw, kernel_size, stride, padding))


def _check_pool_input(x, owner, name="input"):
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 {name}, got {got}")
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-d {name} (N, C, H, W), got shape {x.shape}")


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, owner="max_pool2d"):
    """Max pooling of each channel: returns (out, argmax).

    x: (N, C, H, W) float32/float64 (any strides). out: (N, C, OH, OW) of x's dtype;
    argmax: (N, C, OH, OW) intp, the flat index h*W + w of each maximum in its input
    plane (what ``max_pool2d_backward`` needs). Padding counts as minus infinity.
    NaN rule: a NaN in a window wins (the output is NaN, as in PyTorch; argmax is the
    first NaN); otherwise ties go to the first maximum in row-major window order.
    """
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.intp)
    if out.size:
        _pool.max_pool_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                               out.reshape(n * c, oh, ow), argmax.reshape(n * c, oh, ow),
                               *kernel_size, *stride, padding[0][0], padding[1][0],
                               _threads(out.size * kernel_size[0] * kernel_size[1]))
    return out, argmax


def max_pool2d_backward(dout, argmax, input_shape, owner="max_pool2d_backward"):
    """Gradient of ``max_pool2d``: dout (N, C, OH, OW) goes to the argmax positions.

    Returns dx with shape ``input_shape`` (N, C, H, W) and dout's dtype; a pixel that
    is the maximum of several windows receives the sum of their gradients.
    """
    n, c, h, w = checks.input_shape(input_shape, owner)
    _check_pool_input(dout, owner, "dout")
    argmax = np.asarray(argmax)
    if argmax.shape != dout.shape or dout.shape[:2] != (n, c):
        raise ValueError(f"{owner}: dout {dout.shape} and argmax {argmax.shape} must have one "
                         f"shape (N, C, OH, OW) with (N, C) = {(n, c)}")
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"{owner}: argmax must be an integer array, got {argmax.dtype}")
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    if dout.size == 0 or dx.size == 0:
        return dx
    if argmax.min() < 0 or argmax.max() >= h * w:
        # the kernel writes through these indices unchecked
        raise ValueError(f"{owner}: argmax values must lie in [0, H*W) = [0, {h * w}), got "
                         f"[{argmax.min()}, {argmax.max()}]")
    _pool.max_pool_backward(np.ascontiguousarray(dout).reshape(n * c, -1),
                            np.ascontiguousarray(argmax, dtype=np.intp).reshape(n * c, -1),
                            dx.reshape(n * c, h * w), _threads(dx.size))
    return dx


def max_pool2d_2x2(x, owner="max_pool2d_2x2"):
    """``max_pool2d(x, 2)`` in MaxPool2D(2)'s own form: returns (out, code).

    2x2 windows at stride 2, unpadded, floor mode: out (N, C, H // 2, W // 2) as
    max_pool2d's. code, of that shape, int32: the position of each maximum in its window
    (0 top left, 1 top right, 2 bottom left, 3 bottom right), the pixel max_pool2d's
    argmax names (same NaN and tie rules). Half the memory of a flat index, and
    ``max_pool2d_2x2_backward`` writes whole windows, with no zeroing pass and no index to
    check (about twice as fast as the general kernel on LeNet-5's first pool).
    """
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"{owner}: a 2x2 window needs an input of at least 2 x 2, got "
                         f"{h} x {w}")
    out = np.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    code = np.empty(out.shape, dtype=np.int32)
    if out.size:
        _pool.max_pool_2x2_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                                   out.reshape(n * c, h // 2, w // 2),
                                   code.reshape(n * c, h // 2, w // 2), _threads(x.size))
    return out, code


def max_pool2d_2x2_backward(dout, code, input_shape, owner="max_pool2d_2x2_backward"):
    """Gradient of ``max_pool2d_2x2``: each window's gradient goes to the pixel its code
    names; the other pixels, and an odd last row or column, get zero. Returns dx with
    shape ``input_shape`` (N, C, H, W) and dout's dtype."""
    n, c, h, w = checks.input_shape(input_shape, owner)
    _check_pool_input(dout, owner, "dout")
    code = np.asarray(code)
    expected = (n, c, h // 2, w // 2)
    if dout.shape != expected or code.shape != expected:
        raise ValueError(f"{owner}: dout {dout.shape} and code {code.shape} must both be "
                         f"{expected} for an input {(n, c, h, w)}")
    if code.dtype != np.int32:
        raise TypeError(f"{owner}: code must be int32 (from max_pool2d_2x2), got {code.dtype}")
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    if dout.size == 0:          # no window fits (an input of one row or column): all zero
        dx.fill(0)
    elif dx.size:
        _pool.max_pool_2x2_backward(np.ascontiguousarray(dout).reshape(n * c, h // 2, w // 2),
                                    np.ascontiguousarray(code).reshape(n * c, h // 2, w // 2),
                                    dx.reshape(n * c, h, w), _threads(dx.size))
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               owner="avg_pool2d"):
    """Average pooling of each channel: x (N, C, H, W) -> (N, C, OH, OW), x's dtype.

    Each window is clipped to the input; its sum is divided, when count_include_pad,
    by the number of window cells inside the padded input (a ceil_mode window that
    passes the padding counts only up to its end), else by the real cells only.
    Sums are accumulated in float64.
    """
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    if out.size:
        (pt, pb), (pl, pr) = padding
        _pool.avg_pool_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                               out.reshape(n * c, oh, ow), *kernel_size, *stride,
                               pt, pl, pb, pr, bool(count_include_pad),
                               _threads(out.size * kernel_size[0] * kernel_size[1]))
    return out


def avg_pool2d_backward(dout, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, owner="avg_pool2d_backward"):
    """Gradient of ``avg_pool2d`` with the same arguments: dout (N, C, OH, OW) -> dx.

    dx has shape ``input_shape`` (N, C, H, W) and dout's dtype: each output gradient
    over its divisor is added to every input cell of its window.
    """
    n, c, h, w = checks.input_shape(input_shape, owner)
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(dout, owner, "dout")
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    if dout.shape != (n, c, oh, ow):
        raise ValueError(f"{owner}: dout must be {(n, c, oh, ow)}, got {dout.shape}")
    dx = np.empty((n, c, h, w), dtype=dout.dtype)     # the kernel writes every cell
    if dx.size:
        (pt, pb), (pl, pr) = padding
        _pool.avg_pool_backward(np.ascontiguousarray(dout).reshape(n * c, oh, ow),
                                dx.reshape(n * c, h, w), *kernel_size, *stride,
                                pt, pl, pb, pr, bool(count_include_pad),
                                _threads(dout.size * kernel_size[0] * kernel_size[1]))
    return dx


def global_avg_pool2d(x, owner="global_avg_pool2d"):
    """The mean over H x W of each channel: (N, C, H, W) -> (N, C, 1, 1), x's dtype."""
    _check_pool_input(x, owner)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{owner}: expected an input with H >= 1 and W >= 1, got shape {x.shape}")
    return avg_pool2d(x, x.shape[2:], owner=owner)


def global_avg_pool2d_backward(dout, input_shape, owner="global_avg_pool2d_backward"):
    """Gradient of ``global_avg_pool2d``: dout (N, C, 1, 1) spread evenly over H x W."""
    shape = checks.input_shape(input_shape, owner)
    return avg_pool2d_backward(dout, shape, shape[2:], owner=owner)


# === dense and activations (owner: compose) ==================================

def _float_array(x, owner, name="input"):
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 {name}, got {got}")


#: a float32 product with fewer rows than this (a dense layer's forward or input gradient
#: at a batch of a few images: a matrix-vector product) goes to NumPy's BLAS on one thread,
#: which reads the weight in place where minicnn's GEMM would first pack all of it
DENSE_FEW_ROWS = 8


def _dense_product(a, b):
    """a @ b: float32 on minicnn's own GEMM (gemm.matmul), the OpenMP threads of every other
    kernel (threaded from PARALLEL_MIN_MACS multiply-adds), unless a has fewer than
    DENSE_FEW_ROWS rows; those and float64 on NumPy's, its BLAS held to one thread
    (runtime.blas_single_thread)."""
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if a.dtype == np.float32 and b.dtype == np.float32 and m >= DENSE_FEW_ROWS:
        return gemm.matmul(a, b, np.empty((m, n), np.float32),
                           _threads(m * k * n, PARALLEL_MIN_MACS))
    return numpy_matmul(a, b)


def dense(x, w, b=None):
    """x (N, in) @ w.T (in, out) + b (out,) -> (N, out), one matmul, in w's dtype."""
    _float_array(x, "dense")
    _float_array(w, "dense", "weight")
    if b is not None and not isinstance(b, np.ndarray):
        raise TypeError(f"dense: bias must be None or a NumPy array, got {type(b).__name__}")
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dense: expected x (N, {w.shape[-1]}) for weight {w.shape}, got {x.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"dense: input dtype {x.dtype} differs from weight dtype {w.dtype}")
    if b is not None and (b.shape != (w.shape[0],) or b.dtype != w.dtype):
        raise ValueError(f"dense: bias must be ({w.shape[0]},) {w.dtype}, got {b.shape} {b.dtype}")
    out = _dense_product(x, w.T)
    if b is not None:
        out += b
    return out


def dense_backward(dout, x, w, has_bias=True, need_dx=True):
    """Returns (dx, dw, db): dx = dout @ w, dw = dout.T @ x, db = sum of dout over the batch.

    dx is None when ``need_dx`` is False (the first layer of a network).
    """
    _float_array(x, "dense_backward")
    _float_array(w, "dense_backward", "weight")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dense_backward: expected x (N, {w.shape[-1]}) for weight {w.shape}, "
                         f"got {x.shape}")
    dout = _real_array(dout, "dense_backward", "dout").astype(w.dtype, copy=False)
    if dout.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"dense_backward: dout must be {(x.shape[0], w.shape[0])}, got {dout.shape}")
    return ((_dense_product(dout, w) if need_dx else None), _dense_product(dout.T, x),
            (dout.sum(axis=0) if has_bias else None))


# Activations work on any rank and keep x's dtype; each backward takes what its forward
# returned or was given (the output for ReLU, sigmoid and tanh; the input for LeakyReLU)
# and casts dout to that dtype.

def relu(x):
    """max(x, 0) in x's dtype; NaN stays NaN."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        return np.maximum(x, 0)
    out = np.empty(x.shape, x.dtype)
    if x.size:
        xc = np.ascontiguousarray(x)
        threads = _threads(x.size)
        _act.relu_forward(xc.reshape(-1), out.reshape(-1), threads)
    return out


def relu_backward(dout, out):
    """The gradient passes where the output is positive (0 at x = 0, as PyTorch).

    Where the unit is off the gradient is 0, even when dout is NaN (as PyTorch).
    """
    if np.shape(dout) != out.shape:
        raise ValueError(f"relu_backward: dout must have shape {out.shape}, got {np.shape(dout)}")
    if out.dtype not in (np.float32, np.float64):
        return np.where(out > 0, dout, 0)
    dx = np.empty(out.shape, out.dtype)
    if out.size:
        d = np.ascontiguousarray(dout, dtype=out.dtype)
        threads = _threads(out.size)
        _act.relu_backward(d.reshape(-1), np.ascontiguousarray(out).reshape(-1), dx.reshape(-1),
                           threads)
    return dx


def leaky_relu(x, negative_slope=0.01):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dout, x, negative_slope=0.01):
    dout = np.asarray(dout, dtype=x.dtype)
    return np.where(x > 0, dout, dout * x.dtype.type(negative_slope))


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dout, out):
    """d sigmoid = out * (1 - out)."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * out * (one - out)


def tanh(x):
    return np.tanh(x)


def tanh_backward(dout, out):
    """d tanh = 1 - out**2."""
    one = out.dtype.type(1)
    return np.asarray(dout, dtype=out.dtype) * (one - out * out)


def dropout_mask(shape, p, dtype, rng):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p); out = x * mask."""
    keep = rng.random(shape) >= p
    return keep.astype(dtype) / np.dtype(dtype).type(1 - p)


# === softmax and losses (owner: compose) =====================================

def log_softmax(x, axis=-1):
    """x - logsumexp(x): the max is subtracted first, so large logits never overflow."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)), computed stably (the max is subtracted first)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[n, labels[n]]: returns (loss, probs).

    logits (N, C) float; labels (N,) ints in [0, C) (not checked here). probs (N, C)
    has logits' dtype; the loss is a Python float (0.0 for an empty batch).
    """
    logp = log_softmax(logits, axis=1)
    n = logits.shape[0]
    loss = float(-logp[np.arange(n), labels].mean()) if n else 0.0
    return loss, np.exp(logp)


def softmax_cross_entropy_backward(probs, labels):
    """(probs - one_hot(labels)) / N, in probs' dtype."""
    n = probs.shape[0]
    dlogits = probs.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= max(n, 1)
    return dlogits


def mse(pred, target):
    """Mean of (pred - target)**2 over every element: returns (loss, diff)."""
    diff = pred - np.asarray(target, dtype=pred.dtype)
    return (float(np.mean(diff * diff)) if diff.size else 0.0), diff


def mse_backward(diff):
    """2 (pred - target) / number of elements, in diff's dtype."""
    return diff * diff.dtype.type(2 / max(diff.size, 1))


# === optimizer updates (owner: training) ====================================

from ._kernels import optim as _optim  # noqa: E402


def sgd_arrays_problem(w, g, buf=None):
    """Why ``sgd_update`` cannot take these arrays, or None when it can (optim.SGD falls
    back to NumPy expressions for anything else)."""
    if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
        return f"expected float32 or float64 arrays, got {getattr(w, 'dtype', type(w).__name__)}"
    arrays = (w, g) if buf is None else (w, g, buf)
    for name, a in zip(("w", "g", "buf"), arrays):
        if not isinstance(a, np.ndarray) or a.dtype != w.dtype or a.shape != w.shape \
                or not a.flags.c_contiguous:
            return f"{name} must be a C-contiguous {w.dtype} array of shape {w.shape}"
    return None


def sgd_update(w, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first=False):
    """One in-place SGD update of ``w`` (and ``buf``), torch.optim.SGD's rule (see optim.SGD).

    ``w``, ``g`` and ``buf`` (None without momentum) must be C-contiguous arrays of one
    float dtype and one shape; ``first`` marks the step that starts the momentum buffer.
    """
    problem = sgd_arrays_problem(w, g, buf)
    if problem:
        raise ValueError(f"sgd_update: {problem}")
    if momentum and buf is None:
        raise ValueError("sgd_update: momentum needs a buffer")
    sgd_update_checked(w, g, buf, lr, momentum, dampening, weight_decay, nesterov, first)


def sgd_update_checked(w, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """``sgd_update`` for arrays the caller has checked with ``sgd_arrays_problem`` (as
    optim.SGD does once per step: checking them twice cost time on every parameter). It still
    refuses, in O(1), what would make the kernel read or write outside the arrays: sizes
    that differ, or momentum without a buffer."""
    if (not all(isinstance(a, np.ndarray) for a in (w, g))
            or g.size != w.size or (buf is not None and buf.size != w.size)):
        raise ValueError("sgd_update_checked: w, g (and buf) must be arrays of one size; "
                         "check them with sgd_arrays_problem first")
    if momentum and buf is None:
        raise ValueError("sgd_update_checked: momentum needs a buffer")
    if w.size:
        flat = w.reshape(-1)
        _optim.sgd_update(flat, g.reshape(-1), flat if buf is None else buf.reshape(-1),
                          lr, momentum, dampening, weight_decay, nesterov, first,
                          _threads(w.size))
