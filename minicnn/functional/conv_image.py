"""A convolution's GEMMs image by image (kernels: minicnn/_kernels/gemm_conv.pxi).

For a large convolution each image's product runs on one thread with the passes around
it fused in while the image's data are in cache: im2col, GEMM, bias and ReLU forward;
the columns made again and multiplied by dout for the weight gradient; w^T @ dout folded
back (col2im) for the input gradient. No column matrix is kept between the passes.
``conv_paths.ImagePath`` decides when this runs; the functions here check every shape the
kernels assume (they run with bounds checks off).
"""
import numpy as np

from .. import gemm

__all__ = ["IMAGE_RUNS", "forward", "backward_input", "backward_weight"]

#: the weight gradient sums the images in at most this many runs, added in order afterwards
#: (threads take whole runs; the cut follows the batch size only)
IMAGE_RUNS = 8


def _check_image_args(owner, w, xp, out_shape, geometry, threads):
    """The shapes the image kernels assume (they run with bounds checks off): w (O, C*KH*KW)
    against xp (N, C, Hp, Wp), and (N, O, P) against the geometry's output size; and a
    thread count of at least 1."""
    gemm.check_threads(owner, threads, "conv_image")
    kh, kw, sh, sw, dh, dw, ow = geometry
    n, c, hp, wp = xp.shape
    o, k = w.shape
    if k != c * kh * kw or len(out_shape) != 3 or out_shape[:2] != (n, o) or ow < 1:
        raise ValueError(f"conv_image.{owner}: shapes do not agree: w {w.shape}, "
                         f"input {xp.shape}, "
                         f"output {out_shape}, kernel {kh}x{kw}")
    p = out_shape[2]
    oh = p // ow
    if oh * ow != p or (oh - 1) * sh + (kh - 1) * dh >= hp or (ow - 1) * sw + (kw - 1) * dw >= wp:
        raise ValueError(f"conv_image.{owner}: an output of {p} pixels in rows of {ow} "
                         f"does not fit "
                         f"the input {xp.shape} with this kernel, stride and dilation")


def forward(kernel, w, xp, b, out, relu, geometry, threads):
    """out (N, O, P) = max?(w (O, C*KH*KW) @ im2col(xp) + b), image by image, with
    ``geometry`` = (kh, kw, sh, sw, dh, dw, ow); each image's columns live in a per-thread
    buffer (the backward pass makes them again)."""
    _check_image_args("forward", w, xp, out.shape, geometry, threads)
    if b.shape != (w.shape[0],):
        raise ValueError(f"conv_image.forward: bias must be ({w.shape[0]},), got {b.shape}")
    k, p = w.shape[1], out.shape[2]
    kernel.conv_forward(w, xp, b, out, gemm.scratch("cbuf", (threads, k, p)),
                        gemm.packing_workspace(kernel, threads), relu, *geometry, threads)


def backward_input(kernel, w, dout_t, dxp, geometry, threads):
    """dxp (N, C, Hp, Wp, zeroed) += col2im(w^T @ dout_t (O, N, P)), image by image."""
    o, n, p = dout_t.shape
    _check_image_args("backward_input", w, dxp, (n, o, p), geometry, threads)
    k = w.shape[1]
    kernel.conv_backward_input(w, dout_t, dxp, gemm.scratch("cbuf", (threads, k, p)),
                               gemm.packing_workspace(kernel, threads), *geometry, threads)


def backward_weight(kernel, dout_t, xp, dw, geometry, threads):
    """dw (O, C*KH*KW) = sum over images of dout_t[:, n, :] (O, P) @ im2col(xp[n])^T, the
    columns made again per image in cache (the forward pass keeps none)."""
    o, n, p = dout_t.shape
    _check_image_args("backward_weight", dw, xp, (n, o, p), geometry, threads)
    k = dw.shape[1]
    runs = max(1, min(IMAGE_RUNS, n))
    partial = gemm.scratch("partial", (runs - 1, o, k))
    kernel.conv_backward_weight(dout_t, xp, dw, partial,
                                gemm.scratch("cbuf", (threads, k, p)),
                                gemm.packing_workspace(kernel, threads), *geometry, runs,
                                threads)


# --- direct convolutions, stride 1 (direct_conv.pxi) -----------------------------------------

#: direct only for at most this many taps (C*KH*KW): the forward kernel does not cut K into
