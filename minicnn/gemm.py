"""Matrix products for the convolutions: minicnn's own float32 GEMM, or NumPy's matmul.

At import the widest kernel this CPU runs is chosen: ``gemm_avx512`` (an 8 x 32 register
tile) on CPUs with AVX-512F, ``gemm_avx2`` (4 x 24) on CPUs with AVX2 and FMA, NumPy's
matmul (OpenBLAS) otherwise; float64 always goes to NumPy. The kernels were built with
their instruction set's flags, so one is imported only after NumPy's CPU detection says
the processor (and the OS) supports it.

``MINICNN_GEMM`` overrides the choice: ``auto`` (the default), ``avx512``, ``avx2`` or
``numpy``. An unknown value, or a kernel this CPU or build lacks, falls back to the best
available one, with a warning.

Why our own (tools/gemm_shapes.py): a convolution's GEMMs are thin and strided, where
OpenBLAS's large-matrix kernels lose: LeNet-5's first layer is 6 x 25 x 50,176, its weight
gradient 6 x 50,176 x 25 (NumPy runs that one on one core).

``matmul`` is the product the convolutions' batch path calls;
``conv_kernel``, ``conv_forward``, ``conv_backward_input`` and ``conv_backward_weight`` run
a large convolution image by image, each image's GEMM fused with the passes around it
(im2col, bias, ReLU; col2im); ``direct_kernel``, ``direct_forward``, ``direct_backward``
and ``direct_dx_fits`` run a stride-1 convolution with the micro kernel reading the
padded images in place (no im2col, no column matrix either way; direct_conv.pxi).
"""
import functools
import math
import os
import threading
import warnings

import numpy as np

from .runtime import MAX_THREADS, numpy_matmul

KERNELS = ("avx512", "avx2")
CHOICES = ("auto",) + KERNELS + ("numpy",)
#: the CPU features (NumPy's names) each kernel needs
NEEDS = {"avx512": ("AVX512F", "FMA3"), "avx2": ("AVX2", "FMA3")}


def cpu_features():
    """NumPy's run-time CPU feature dict ({} when this NumPy does not expose it)."""
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(__import__(mod, fromlist=["__cpu_features__"]).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


@functools.lru_cache(maxsize=None)
def _load(name):
    """The compiled module for kernel ``name``, or None when it was not built (kept: every
    convolution's backward asks, and an __import__ each time is not free)."""
    try:
        return __import__(f"minicnn._kernels.gemm_{name}", fromlist=["gemm"])
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def available():
    """The kernels this CPU supports and this build has, widest first."""
    features = cpu_features()
    return tuple(k for k in KERNELS if all(features.get(f) for f in NEEDS[k]) and _load(k))


def _select(request, source="MINICNN_GEMM"):
    """The kernel name for a request ('auto', a kernel or 'numpy'), None meaning NumPy.

    An unknown name or a kernel this CPU or build lacks warns and falls back to the best
    available one: a typo in the environment must not stop ``import minicnn`` (nor
    ``minicnn info``, the command that shows what was chosen).
    """
    value = (request or "auto").strip().lower()
    if value not in CHOICES:
        warnings.warn(f"{source} must be one of {', '.join(CHOICES)}, got {request!r}; "
                      f"using auto", RuntimeWarning, stacklevel=3)
        value = "auto"
    if value == "numpy":
        return None
    usable = available()
    if value != "auto" and value not in usable:
        warnings.warn(f"{source}={value}: this CPU or build has no {value} kernel; using "
                      f"{usable[0] if usable else 'numpy'}", RuntimeWarning, stacklevel=3)
    elif value != "auto":
        return value
    return usable[0] if usable else None


_name = _select(os.environ.get("MINICNN_GEMM"))
_kernel = _load(_name) if _name else None
#: at most this many K slices when N is narrow, each at least SLICE_MIN long
SLICES = 8
SLICE_MIN = 512
#: and only while the partial products stay small (floats of (SLICES - 1) x M x N)
SLICED_MAX = 1 << 20
_local = threading.local()     # per Python thread: packing space, reused between calls


def kernel_name():
    """'avx512', 'avx2' or 'numpy': what float32 convolution GEMMs run on."""
    return _name or "numpy"


def use(name):
    """Switch kernels at run time (tests and benchmarks): a name of ``CHOICES``."""
    global _name, _kernel
    chosen = _select(name, source="gemm.use")
    _name, _kernel = chosen, (_load(chosen) if chosen else None)


def _workspace(kernel, threads):
    """The kernels' packing space: a row of workspace_size() floats per OpenMP thread."""
    return _buffer("work", (threads, kernel.workspace_size()))


def _buffer(name, shape):
    """A per-Python-thread float32 scratch array of ``shape``: a view of a flat buffer that
    only grows, so calls of different sizes share it (each Python thread keeps its
    largest one)."""
    count = math.prod(shape)          # (np.prod would make an array, most of this call's cost)
    flat = getattr(_local, name, None)
    if flat is None or flat.size < count:
        flat = np.empty(count, np.float32)
        setattr(_local, name, flat)
    return flat[:count].reshape(shape)


def _check_threads(owner, threads, module="gemm"):
    """The kernels index their scratch by thread: a count below 1 would write outside it, and
    one above MAX_THREADS would ask for scratch per thread by the terabyte."""
    if (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
            or not 1 <= threads <= MAX_THREADS):
        raise ValueError(f"{module}.{owner}: num_threads must be an int from 1 to "
                         f"{MAX_THREADS}, got {threads!r}")


def _usable(x):
    return x.dtype == np.float32 and x.flags.aligned


def matmul(a, b, out, num_threads=1):
    """out = a @ b for a (M, K), b (K, N), out (M, N) C-contiguous; or a stack of them
    (G, M, K) @ (G, K, N) -> (G, M, N). Returns out.

    a and b may have any strides (transposed views are packed as they are, never copied).
    float32 runs on the selected kernel with ``num_threads`` threads; anything else (other
    dtypes, an out that overlaps a or b) or no kernel is ``np.matmul``.
    """
    if not all(isinstance(x, np.ndarray) for x in (a, b, out)):
        raise TypeError(f"gemm.matmul: a, b and out must be NumPy arrays, got "
                        f"{type(a).__name__}, {type(b).__name__}, {type(out).__name__}")
    if a.ndim != b.ndim or out.ndim != a.ndim or a.ndim not in (2, 3):
        raise ValueError(f"gemm.matmul: a, b and out must all be 2-d or 3-d, got "
                         f"{a.shape}, {b.shape}, {out.shape}")
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.shape[-2] != k or out.shape[-2:] != (m, n) or a.shape[:-2] != b.shape[:-2] \
            or out.shape[:-2] != a.shape[:-2]:
        raise ValueError(f"gemm.matmul: cannot multiply {a.shape} by {b.shape} into {out.shape}")
    _check_threads("matmul", num_threads)
    if not out.flags.writeable:
        raise ValueError("gemm.matmul: out is read-only")
    kernel = _kernel       # once: gemm.use() in another thread must not switch it mid-call
    if (kernel is None or not (_usable(a) and _usable(b) and _usable(out))
            or not out.flags.c_contiguous
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return numpy_matmul(a, b, out=out)
    if a.ndim == 3:
        for g in range(a.shape[0]):
            _product(kernel, a[g], b[g], out[g], int(num_threads))
    else:
        _product(kernel, a, b, out, int(num_threads))
    return out


def _product(kernel, a, b, out, threads):
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out.fill(0)
        return
    nr = kernel.tile()[1]
    # a narrow N (a weight gradient's taps) leaves too few column strips to share between
    # threads: cut the long K into slices and add their products afterwards. The cut
    # follows the shape alone, so results do not depend on the thread count.
    slices = 1
    if (n + nr - 1) // nr < 16 and m * n * (SLICES - 1) <= SLICED_MAX:
        slices = max(1, min(SLICES, k // SLICE_MIN))
    partial = _buffer("partial", (slices - 1, m, n))
    kernel.gemm(a, b, out, _workspace(kernel, threads), partial, slices, threads)


# --- a convolution's GEMMs image by image (gemm_conv.pxi) -----------------------------------

#: image by image only when one image's product has at least this many multiply-adds: a
#: small one (LeNet-5's 6->16 layer: 16 x 150 x 100) is too little work to run alone on a
#: thread, where the batch GEMM shares one product between threads; a large one (convnet's
#: 32->64: 10.6 M) gains from keeping each image's columns in cache (benchmarks/README.md,
#: "Why the thresholds are what they are")
IMAGE_MIN = 1 << 20
#: and a batch of at least this many images, whatever the thread count: each image runs
#: on one thread, and the choice must not follow the thread setting (the batch GEMMs may
#: cut K into slices, the image path does not: other bits)
IMAGE_BATCH_MIN = 8
#: the weight gradient sums the images in at most this many runs, added in order afterwards
#: (threads take whole runs; the cut follows the batch size only)
IMAGE_RUNS = 8


def conv_kernel(dtype, groups, batch, macs_per_image):
    """The kernel module for the image-by-image convolution, or None (use the batch path).

    A choice made from the shape alone, so any thread count gives the same bits; groups > 1
    and float64 keep the batch path.
    """
    kernel = _kernel
    if (kernel is None or dtype != np.float32 or groups != 1 or batch < IMAGE_BATCH_MIN
            or macs_per_image < max(IMAGE_MIN, 1)):
        return None
    return kernel


def kernel_name_of(kernel):
    """'avx512' or 'avx2' for a kernel module."""
    return kernel.__name__.rsplit("gemm_", 1)[1]


def kernel_of(name):
    """The kernel module of that name ('avx512' or 'avx2'), for a cache that kept the name
    (a module object would make the cache, and so the layer, impossible to deep-copy)."""
    return _load(name)


def _check_image_args(owner, w, xp, out_shape, geometry, threads):
    """The shapes the image kernels assume (they run with bounds checks off): w (O, C*KH*KW)
    against xp (N, C, Hp, Wp), and (N, O, P) against the geometry's output size; and a
    thread count of at least 1."""
    _check_threads(owner, threads)
    kh, kw, sh, sw, dh, dw, ow = geometry
    n, c, hp, wp = xp.shape
    o, k = w.shape
    if k != c * kh * kw or len(out_shape) != 3 or out_shape[:2] != (n, o) or ow < 1:
        raise ValueError(f"gemm.{owner}: shapes do not agree: w {w.shape}, input {xp.shape}, "
                         f"output {out_shape}, kernel {kh}x{kw}")
    p = out_shape[2]
    oh = p // ow
    if oh * ow != p or (oh - 1) * sh + (kh - 1) * dh >= hp or (ow - 1) * sw + (kw - 1) * dw >= wp:
        raise ValueError(f"gemm.{owner}: an output of {p} pixels in rows of {ow} does not fit "
                         f"the input {xp.shape} with this kernel, stride and dilation")


def conv_forward(kernel, w, xp, b, out, relu, geometry, threads):
    """out (N, O, P) = max?(w (O, C*KH*KW) @ im2col(xp) + b), image by image, with
    ``geometry`` = (kh, kw, sh, sw, dh, dw, ow); each image's columns live in a per-thread
    buffer (the backward pass makes them again)."""
    _check_image_args("conv_forward", w, xp, out.shape, geometry, threads)
    if b.shape != (w.shape[0],):
        raise ValueError(f"gemm.conv_forward: bias must be ({w.shape[0]},), got {b.shape}")
    k, p = w.shape[1], out.shape[2]
    kernel.conv_forward(w, xp, b, out, _buffer("cbuf", (threads, k, p)),
                        _workspace(kernel, threads), relu, *geometry, threads)


def conv_backward_input(kernel, w, dout_t, dxp, geometry, threads):
    """dxp (N, C, Hp, Wp, zeroed) += col2im(w^T @ dout_t (O, N, P)), image by image."""
    o, n, p = dout_t.shape
    _check_image_args("conv_backward_input", w, dxp, (n, o, p), geometry, threads)
    k = w.shape[1]
    kernel.conv_backward_input(w, dout_t, dxp, _buffer("cbuf", (threads, k, p)),
                               _workspace(kernel, threads), *geometry, threads)


def conv_backward_weight(kernel, dout_t, xp, dw, geometry, threads):
    """dw (O, C*KH*KW) = sum over images of dout_t[:, n, :] (O, P) @ im2col(xp[n])^T, the
    columns made again per image in cache (the forward pass keeps none)."""
    o, n, p = dout_t.shape
    _check_image_args("conv_backward_weight", dw, xp, (n, o, p), geometry, threads)
    k = dw.shape[1]
    runs = max(1, min(IMAGE_RUNS, n))
    partial = _buffer("partial", (runs - 1, o, k))
    kernel.conv_backward_weight(dout_t, xp, dw, partial, _buffer("cbuf", (threads, k, p)),
                                _workspace(kernel, threads), *geometry, runs, threads)


# --- direct convolutions, stride 1 (direct_conv.pxi) -----------------------------------------

#: direct only for at most this many taps (C*KH*KW): the forward kernel does not cut K into
#: blocks (convnet's 32->64 layer has 288)
DIRECT_TAPS_MAX = 512
#: and when one image's layout for the weight gradient fits in this many floats (2 MB), the
#: most it lays out at a time (a run of images, cut into chunks that fit)
DIRECT_CHUNK = 1 << 19
#: and when a row keeps at least this fraction of its wide columns (OW of Wp): the dropped
#: columns are computed too, so a row that keeps few (a 1x9 kernel with dilation 3 on 28 x 28
#: keeps 4 of 28) is mostly wasted work
DIRECT_KEEP_MIN = 0.5


#: and (given the output's height) a wide row (OH - 1)*Wp + OW of at least this many
#: register tiles: a narrower image goes through a loop without the register tile, which
#: the batch path beats
DIRECT_WIDE_TILES = 1


def direct_kernel(dtype, groups, batch, w_shape, padded_shape, out_w, out_h=None):
    """The kernel module for a direct convolution (stride 1, checked by the caller), or
    None. Like conv_kernel, a choice made from the shape alone: float32, groups 1, a kernel
    larger than 1x1 (1x1 has its own path), a batch of at least IMAGE_BATCH_MIN images, at
    most DIRECT_TAPS_MAX taps, rows of which at least DIRECT_KEEP_MIN are kept, with
    ``out_h`` a wide row of at least DIRECT_WIDE_TILES register tiles, and one image's
    layout within DIRECT_CHUNK floats."""
    kernel = _kernel
    o, c, kh, kw = w_shape
    if (kernel is None or dtype != np.float32 or groups != 1 or batch < IMAGE_BATCH_MIN
            or kh * kw == 1 or o == 0 or not 0 < c * kh * kw <= DIRECT_TAPS_MAX
            or out_w < DIRECT_KEEP_MIN * padded_shape[3]
            or (out_h is not None and (out_h - 1) * padded_shape[3] + out_w
                < DIRECT_WIDE_TILES * kernel.tile()[1])):
        return None
    return kernel if _image_floats(kernel, o, padded_shape) <= DIRECT_CHUNK else None


def _image_floats(kernel, o, padded_shape):
    """Floats of one image's layout in the direct weight gradient, at most (the wide
    gradient taken as long as the whole plane)."""
    _, c, hp, wp = padded_shape
    return kernel.direct_image_floats(o, c, hp, wp, hp * wp)


def _direct_out_hw(owner, w_shape, xp, dilation, threads):
    """(OH, OW) of a stride-1 convolution of the padded xp, after checking what the direct
    kernels assume (they run with bounds checks off)."""
    _check_threads(owner, threads)
    if xp.ndim != 4 or len(w_shape) != 4 or xp.shape[1] != w_shape[1] or w_shape[1] == 0:
        raise ValueError(f"gemm.{owner}: expected a weight (O, C, KH, KW) and an input "
                         f"(N, C, Hp, Wp) with one C >= 1, got {tuple(w_shape)} and {xp.shape}")
    (kh, kw), (dh, dw) = w_shape[2:], dilation
    if dh < 1 or dw < 1:
        raise ValueError(f"gemm.{owner}: dilation must be at least 1, got {dilation}")
    oh, ow = xp.shape[2] - (kh - 1) * dh, xp.shape[3] - (kw - 1) * dw
    if oh < 1 or ow < 1:
        raise ValueError(f"gemm.{owner}: a {kh}x{kw} kernel with dilation {dilation} does not "
                         f"fit the input {xp.shape}")
    return oh, ow


@functools.lru_cache(maxsize=256)
def tap_offsets(c, kh, kw, hp, wp, dh, dw, multiple=1):
    """Each tap's offset c*Hp*Wp + ki*dh*Wp + kj*dw into an (C, Hp, Wp) image, taps in
    weight order (c, ki, kj), padded with zeros to a multiple of ``multiple``. Kept per
    shape (a read-only array): making it again on every call is a cost a small network's
    step feels."""
    offs = (np.arange(c)[:, None, None] * (hp * wp) + np.arange(kh)[None, :, None] * (dh * wp)
            + np.arange(kw)[None, None, :] * dw).ravel()
    padded = np.zeros(-(-offs.size // multiple) * multiple, dtype=np.intp)
    padded[:offs.size] = offs
    padded.flags.writeable = False
    return padded


def direct_forward(kernel, w, xp, b, out, relu, dilation, threads):
    """out (N, O, OH, OW) = max?(conv(xp, w) + b): a stride-1 convolution of the padded xp
    (N, C, Hp, Wp) with w (O, C, KH, KW) and dilation (dh, dw), read in place."""
    oh, ow = _direct_out_hw("direct_forward", w.shape, xp, dilation, threads)
    o, c, kh, kw = w.shape
    if out.shape != (xp.shape[0], o, oh, ow) or b.shape != (o,):
        raise ValueError(f"gemm.direct_forward: expected an output {(xp.shape[0], o, oh, ow)} "
                         f"and a bias ({o},), got {out.shape} and {b.shape}")
    mr = kernel.tile()[0]
    offs = tap_offsets(c, kh, kw, *xp.shape[2:], *dilation)
    width = (oh - 1) * xp.shape[3] + ow
    kernel.direct_forward(w.reshape(o, -1), offs, xp, b, out,
                          _buffer("packed", (-(-o // mr) * mr * c * kh * kw,)),
                          _buffer("wide", (threads, mr * width)), relu, threads)


def direct_backward(kernel, dout, gate, xp, dw, dilation, threads, w=None, dxp=None):
    """dw (O, C, KH, KW) = the weight gradient of that convolution, and returns the bias
    gradient (O,) float32, from the output's gradient dout (N, O, OH, OW) and the padded
    input; with ``gate`` (the ReLU's output, same shape as dout) the gradient is first
    zeroed where the output is not positive (None: no ReLU). With the weight ``w`` (finite)
    and ``dxp`` (C-contiguous float32, xp's shape; see direct_dx_fits) also dxp = the padded
    input's gradient, from the same laid-out output gradient."""
    oh, ow = _direct_out_hw("direct_backward", dw.shape, xp, dilation, threads)
    o, c, kh, kw = dw.shape
    n, hp, wp = xp.shape[0], xp.shape[2], xp.shape[3]
    if dout.shape != (n, o, oh, ow) or (gate is not None and gate.shape != dout.shape):
        raise ValueError(f"gemm.direct_backward: expected dout (and gate) "
                         f"{(n, o, oh, ow)}, got {dout.shape}"
                         + ("" if gate is None else f" and {gate.shape}"))
    if not dw.flags.c_contiguous:            # the kernel writes through a (O, K) view of it
        raise ValueError("gemm.direct_backward: dw must be C-contiguous")
    width = (oh - 1) * wp + ow
    k = c * kh * kw
    _, dt, vl = kernel.direct_tile()
    want_dx = dxp is not None
    if want_dx != (w is not None):
        raise ValueError("gemm.direct_backward: the input gradient needs both w and dxp")
    if want_dx:
        if not direct_dx_fits(kernel, xp.shape, oh, ow):
            raise ValueError(f"gemm.direct_backward: an input gradient needs a wide row of at "
                             f"least {kernel.tile()[1]} columns, got {width}")
        if dxp.shape != xp.shape or dxp.dtype != np.float32 or not dxp.flags.c_contiguous:
            raise ValueError(f"gemm.direct_backward: dxp must be a C-contiguous float32 "
                             f"{xp.shape}, got {dxp.shape} {dxp.dtype}")
        if w.shape != dw.shape or w.dtype != np.float32:
            raise ValueError(f"gemm.direct_backward: w must be a float32 {dw.shape}, got "
                             f"{w.shape} {w.dtype}")
        mr = kernel.tile()[0]
        w2 = np.ascontiguousarray(w).reshape(o, k)
        wt = _buffer("packed", (-(-k // mr) * mr * o,))
        doffs = np.arange(o, dtype=np.intp) * (-(-width // vl) * vl)
        dx4 = dxp
    else:                                   # placeholders the kernel does not touch
        w2, wt, doffs, dx4 = _NO_DX
    runs = max(1, min(IMAGE_RUNS, n))
    chunk = max(1, min(-(-n // runs), DIRECT_CHUNK // _image_floats(kernel, o, xp.shape)))
    offs = tap_offsets(c, kh, kw, hp, wp, *dilation, multiple=dt)
    floats = kernel.direct_weight_floats(o, c, hp, wp, width, chunk)
    d3 = dout.reshape(n, o, oh * ow)
    db = np.empty(o, np.float32)            # each run's sums, added in run order (runs fixed
    kernel.direct_backward(d3, d3 if gate is None else gate.reshape(n, o, oh * ow),  # by n)
                           gate is not None, offs, xp, dw.reshape(o, -1),
                           np.empty((runs, o), np.float64), db,
                           _buffer("partial", (runs - 1, o, k)),
                           _buffer("direct", (threads, floats)), ow, runs, chunk,
                           w2, wt, doffs, dx4, want_dx, threads)
    return db


#: direct_backward's input-gradient arguments when it makes none
_NO_DX = (np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.intp),
          np.zeros((1, 1, 1, 1), np.float32))


def direct_dx_fits(kernel, padded_shape, oh, ow):
    """Whether direct_backward can make the input gradient: a wide row (OH - 1)*Wp + OW of
    at least one register tile (NR) columns."""
    return (oh - 1) * padded_shape[3] + ow >= kernel.tile()[1]
