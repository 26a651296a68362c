"""The ways minicnn computes one convolution, and the rule that picks one.

Every path computes the same cross-correlation (readable version:
minicnn/reference/conv.py); they differ in how the work meets the memory:

=========== ==================================================================================
depthwise   groups == channels: one small loop per channel (a GEMM of one input channel per
            group would be all overhead)
pointwise   1x1, stride 1, unpadded: the column matrix is the input itself, channel-major, so
            a transpose replaces im2col, then one GEMM over the batch
gemm        im2col over the whole batch, one GEMM (per group), the product laid out as images
image       image by image: im2col, GEMM, bias and ReLU while the image is in cache
            (conv_image.py); nothing kept between the passes
direct      stride 1: the GEMM's micro kernel reads each tap's inputs in place, no columns at
            all (conv_direct.py)
winograd    3x3 stride 1, many channels: F(2x2, 3x3), 1/2.25 the multiply-adds
            (conv_winograd.py); a pass with a non-finite value is redone on the direct path
=========== ==================================================================================

``choose`` decides from the shapes alone (never the thread count, so the bits do not follow
it), with the sizes in ``thresholds``; ``conv.plan`` calls it once per layer and input shape.
Each path is a class with a ``forward`` and a ``backward``; ``PATHS`` maps the name a cache
records to its class. ``forward`` returns what backward reads back (``saved``) and the name of
the path that ran; ``backward`` returns (dxp, dw, db): the padded input's gradient (None without
need_dx), the weight's and the bias's (None without a bias).
"""
import numpy as np

from .. import gemm
from .._kernels import activation as _act
from .._kernels import conv as _conv
from . import conv_direct, conv_image, conv_winograd, thresholds
from ._common import scratch, threads_for
from .activation import relu_backward

__all__ = ["choose", "PATHS", "DepthwisePath", "PointwisePath", "GemmPath", "ImagePath",
           "DirectPath", "WinogradPath"]


def choose(dtype, n, w_shape, stride, dilation, groups, padded_shape, out_hw, padded):
    """(path class, kernel name or None, image_dx) for a convolution of these shapes;
    image_dx: whether the direct path's unfused input gradient goes image by image."""
    o, cin_g, kh, kw = w_shape
    c = cin_g * groups
    if groups == c and c > 1:
        return DepthwisePath, None, False
    if kh == kw == 1 and tuple(stride) == (1, 1) and not padded:
        return PointwisePath, None, False
    kernel = gemm.float32_kernel()
    if kernel is None or dtype != np.float32 or groups != 1 or n < thresholds.BATCH_MIN:
        return GemmPath, None, False
    name = gemm.kernel_name_of(kernel)
    image = o * c * kh * kw * out_hw[0] * out_hw[1] >= max(thresholds.IMAGE_MIN, 1)
    if tuple(stride) == (1, 1) and _direct_fits(kernel, w_shape, padded_shape, out_hw):
        if (conv_winograd.ENABLED and (kh, kw) == (3, 3) and tuple(dilation) == (1, 1)
                and min(o, c) >= thresholds.WINOGRAD_MIN_CHANNELS):
            return WinogradPath, name, image
        return DirectPath, name, image
    return (ImagePath, name, True) if image else (GemmPath, None, False)


def _direct_fits(kernel, w_shape, padded_shape, out_hw):
    """A kernel larger than 1x1, at most DIRECT_TAPS_MAX taps, rows that keep at least
    DIRECT_KEEP_MIN of their wide columns, a wide row of DIRECT_WIDE_TILES register tiles,
    and one image's layout within DIRECT_CHUNK floats."""
    o, c, kh, kw = w_shape
    (oh, ow), wp = out_hw, padded_shape[3]
    return (kh * kw > 1 and o > 0 and 0 < c * kh * kw <= thresholds.DIRECT_TAPS_MAX
            and ow >= thresholds.DIRECT_KEEP_MIN * wp
            and (oh - 1) * wp + ow >= thresholds.DIRECT_WIDE_TILES * kernel.tile()[1]
            and conv_direct.image_floats(kernel, o, padded_shape) <= thresholds.DIRECT_CHUNK)


def _relu_in_place(out, relu):
    if relu:
        _act.relu_forward(out.reshape(-1), out.reshape(-1), threads_for(out.size))


class DepthwisePath:
    """One loop per channel (kernels: conv.pyx depthwise_*)."""
    name = "depthwise"

    @staticmethod
    def forward(xp, w, bias, out, relu, cache, threads):
        (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
        _conv.depthwise_forward(xp, w, bias, out, sh, sw, dh, dw, threads)
        _relu_in_place(out, relu)
        return xp, "depthwise"

    @staticmethod
    def backward(dout, cache, need_dx, threads):
        w, xp = cache["w"], cache["saved"]
        (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
        if cache["relu_out"] is not None:
            dout = relu_backward(dout, cache["relu_out"])
        db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
        dw_ = np.empty_like(w)
        _conv.depthwise_backward_weight(dout, xp, dw_, sh, sw, dh, dw, threads)
        dxp = None
        if need_dx:
            dxp = np.zeros(cache["padded_shape"], dtype=w.dtype)
            _conv.depthwise_backward_input(dout, w, dxp, sh, sw, dh, dw, threads)
        return dxp, dw_, db


class GemmPath:
    """im2col over the batch, one GEMM per group: out_t (O, N*P) = w (O, C*KH*KW) @ cols, laid
    out as images with the bias (and ReLU) added; backward dw = dout_t @ cols^T and dcols =
    w^T @ dout_t folded back by col2im. ``cols`` lives in the layer's workspace in training."""
    name = "gemm"

    @classmethod
    def columns(cls, xp, cache, ws, threads):
        n, c = xp.shape[:2]
        o, _, kh, kw = cache["w"].shape
        (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
        oh, ow = cache["out_hw"]
        cols = scratch(ws, "cols", (c * kh * kw, n, oh * ow), xp.dtype)
        _conv.im2col(xp, cols, kh, kw, sh, sw, dh, dw, ow, threads)
        return cols

    @classmethod
    def forward(cls, xp, w, bias, out, relu, cache, threads):
        n, c = xp.shape[:2]
        o, g = w.shape[0], cache["groups"]
        p = out.shape[2] * out.shape[3]
        ws = cache["workspace"]
        cols = cls.columns(xp, cache, ws, threads)
        out_t = gemm.matmul(w.reshape(g, o // g, -1), cols.reshape(g, w[0].size, n * p),
                            scratch(ws, "gemm", (g, o // g, n * p), w.dtype), threads)
        _conv.gemm_to_images(out_t.reshape(o, n, p), bias, out.reshape(n, o, p), relu,
                             threads_for(out.size))
        return cols, cls.name

    @classmethod
    def backward(cls, dout, cache, need_dx, threads):
        dout_t = gemm_layout(dout, cache)
        dw_ = weight_grad_from_columns(dout_t, cache["saved"], cache, threads)
        dxp = cls.input_grad(dout_t, cache, threads) if need_dx else None
        return dxp, dw_, bias_grad(dout_t, cache)

    @staticmethod
    def input_grad(dout_t, cache, threads):
        """dcols = w^T @ dout_t, then col2im into the zeroed padded input's gradient."""
        n, c = cache["x_shape"][:2]
        w, ws = cache["w"], cache["workspace"]
        o, _, kh, kw = w.shape
        (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
        oh, ow = cache["out_hw"]
        g = cache["groups"]
        dcols = gemm.matmul(w.reshape(g, o // g, -1).transpose(0, 2, 1),
                            dout_t.reshape(g, o // g, n * oh * ow),
                            scratch(ws, "dcols", (g, c // g * kh * kw, n * oh * ow), w.dtype),
                            threads)
        dxp = dxp_buffer(cache)
        _conv.col2im(dcols.reshape(c * kh * kw, n, oh * ow), dxp, kh, kw, sh, sw, dh, dw, ow,
                     threads)
        return dxp


class PointwisePath(GemmPath):
    """1x1, stride 1, unpadded: GemmPath with a transpose for im2col and for col2im."""
    name = "pointwise"

    @classmethod
    def columns(cls, xp, cache, ws, threads):
        n, c, h, wd = xp.shape
        if n == 1:
            return xp.reshape(c, 1, h * wd)           # one image: already channel-major
        cols = scratch(ws, "cols", (c, n, h * wd), xp.dtype)
        x3 = xp.reshape(n, c, h * wd)
        _conv.images_to_gemm(x3, x3, cols, False, threads_for(xp.size))
        return cols

    @staticmethod
    def input_grad(dout_t, cache, threads):
        n, c, h, wd = cache["x_shape"]
        w = cache["w"]
        o, g = w.shape[0], cache["groups"]
        dcols = gemm.matmul(w.reshape(g, o // g, -1).transpose(0, 2, 1),
                            dout_t.reshape(g, o // g, n * h * wd),
                            scratch(cache["workspace"], "dcols", (g, c // g, n * h * wd),
                                    w.dtype), threads)
        dxp = np.empty(cache["padded_shape"], dtype=w.dtype)
        _conv.gemm_to_images(dcols.reshape(c, n, h * wd), np.zeros(c, dtype=w.dtype),
                             dxp.reshape(n, c, h * wd), False, threads_for(dxp.size))
        return dxp


class ImagePath:
    """Image by image (conv_image.py): each image's columns made in cache, forward and
    backward."""
    name = "image"

    @staticmethod
    def forward(xp, w, bias, out, relu, cache, threads):
        n, o = out.shape[:2]
        conv_image.forward(gemm.kernel_of(cache["kernel"]), w.reshape(o, -1), xp, bias,
                           out.reshape(n, o, -1), relu, image_geometry(cache), threads)
        return xp, "image"

    @staticmethod
    def backward(dout, cache, need_dx, threads):
        w, xp = cache["w"], cache["saved"]
        dout_t = gemm_layout(dout, cache)
        kern = gemm.kernel_of(cache["kernel"])
        dw_ = np.empty((w.shape[0], w[0].size), w.dtype)
        conv_image.backward_weight(kern, dout_t, xp, dw_, image_geometry(cache), threads)
        dxp = ImagePath.input_grad(dout_t, cache, kern, threads) if need_dx else None
        return dxp, dw_.reshape(w.shape), bias_grad(dout_t, cache)

    @staticmethod
    def input_grad(dout_t, cache, kern, threads):
        """Each image's dcols = w^T @ its dout, folded back (col2im) while in cache."""
        w = cache["w"]
        dxp = dxp_buffer(cache)
        conv_image.backward_input(kern, w.reshape(w.shape[0], -1), dout_t, dxp,
                                  image_geometry(cache), threads)
        return dxp


class DirectPath:
    """Stride 1, read in place (conv_direct.py). One backward pass gates dout by the fused
    ReLU, lays it out beside the saved padded input and sums it; from that layout come the
    weight and bias gradients and, where it fits (a wide row of a register tile, a finite
    weight), the input gradient; else the input gradient comes as on the image path (large
    images) or the batch path."""
    name = "direct"

    @staticmethod
    def forward(xp, w, bias, out, relu, cache, threads):
        conv_direct.forward(gemm.kernel_of(cache["kernel"]), w, xp, bias, out, relu,
                            cache["dilation"], threads)
        return xp, "direct"

    @staticmethod
    def backward(dout, cache, need_dx, threads):
        w, xp = cache["w"], cache["saved"]
        kern = gemm.kernel_of(cache["kernel"])
        dw_ = np.empty_like(w)
        fused = (need_dx and conv_direct.dx_fits(kern, xp.shape, *cache["out_hw"])
                 and np.isfinite(w).all())
        dxp = dxp_buffer(cache, zeroed=False) if fused else None
        db = conv_direct.backward(kern, dout, cache["relu_out"], xp, dw_, cache["dilation"],
                                  threads, w if fused else None, dxp)
        dout_t = None
        if not np.isfinite(dw_).all():
            # the kernel also multiplies the zeros of the dropped columns by input pixels, so
            # an inf or NaN there would taint taps it does not belong to: redo from columns
            dout_t = gemm_layout(dout, cache)
            cols = GemmPath.columns(xp, cache, None, threads)
            dw_ = weight_grad_from_columns(dout_t, cols, cache, threads)
        if need_dx and not fused:
            dout_t = gemm_layout(dout, cache) if dout_t is None else dout_t
            dxp = (ImagePath.input_grad(dout_t, cache, kern, threads) if cache.get("image_dx")
                   else GemmPath.input_grad(dout_t, cache, threads))
        return dxp, dw_, (db if cache["has_bias"] else None)


class WinogradPath:
    """F(2x2, 3x3) (conv_winograd.py); a pass whose numbers are not all finite (an infinite
    input can come out NaN where the direct sum keeps the infinity) is redone directly."""
    name = "winograd"

    @staticmethod
    def forward(xp, w, bias, out, relu, cache, threads):
        if conv_winograd.forward(gemm.kernel_of(cache["kernel"]), w, xp, bias, out, relu,
                                 threads):
            return xp, "winograd"
        return DirectPath.forward(xp, w, bias, out, relu, cache, threads)

    @staticmethod
    def backward(dout, cache, need_dx, threads):
        dxp = dxp_buffer(cache, zeroed=False) if need_dx else None
        dw_, db, finite = conv_winograd.backward(gemm.kernel_of(cache["kernel"]), dout,
                                                 cache["relu_out"], cache["saved"], cache["w"],
                                                 dxp, threads)
        if not finite:
            return DirectPath.backward(dout, cache, need_dx, threads)
        return dxp, dw_, (db if cache["has_bias"] else None)


PATHS = {cls.name: cls for cls in (DepthwisePath, PointwisePath, GemmPath, ImagePath,
                                   DirectPath, WinogradPath)}


# --- what the paths share ---------------------------------------------------------------------

def image_geometry(cache):
    """(kh, kw, sh, sw, dh, dw, ow): what the image-by-image kernels take."""
    (sh, sw), (dh, dw) = cache["stride"], cache["dilation"]
    return (*cache["w"].shape[2:], sh, sw, dh, dw, cache["out_hw"][1])


def gemm_layout(dout, cache):
    """dout (N, O, OH, OW) moved to the GEMMs' (O, N, OH*OW), gated by the forward's fused
    ReLU on the way."""
    n, o = dout.shape[:2]
    p = dout.shape[2] * dout.shape[3]
    relu_out = cache["relu_out"]
    dout_t = scratch(cache["workspace"], "dout_t", (o, n, p), dout.dtype)
    d3 = dout.reshape(n, o, p)
    gate = relu_out.reshape(n, o, p) if relu_out is not None else d3
    _conv.images_to_gemm(d3, gate, dout_t, relu_out is not None, threads_for(dout.size))
    return dout_t


def bias_grad(dout_t, cache):
    """The bias gradient from dout in the GEMMs' layout (already gated by a fused ReLU)."""
    return dout_t.sum(axis=(1, 2)) if cache["has_bias"] else None


def weight_grad_from_columns(dout_t, cols, cache, threads):
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


def dxp_buffer(cache, zeroed=True):
    """The gradient of the padded input, zeroed for col2im to add into (or not, for a
    kernel that writes all of it): a workspace temporary when padded (dx is made from it),
    else a new array (it is dx)."""
    if cache["padding"] != ((0, 0), (0, 0)):
        dxp = scratch(cache["workspace"], "dxp", cache["padded_shape"], cache["w"].dtype)
        if zeroed:
            dxp.fill(0)
        return dxp
    alloc = np.zeros if zeroed else np.empty
    return alloc(cache["padded_shape"], dtype=cache["w"].dtype)
