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

``matmul`` is the product the convolutions' batch path and the dense layers call. The
convolution algorithms built on the same kernel modules (image by image, direct, Winograd)
live with the convolution, in ``minicnn.functional.conv_*``; they reach the kernel through
``float32_kernel``, ``scratch``, ``packing_workspace`` and ``check_threads`` below.
"""
import functools
import math
import os
import threading
import warnings

import numpy as np

from .runtime import MAX_THREADS, numpy_matmul

__all__ = ["KERNELS", "CHOICES", "NEEDS", "cpu_features", "available", "SLICES", "SLICE_MIN",
           "SLICED_MAX", "kernel_name", "use", "packing_workspace", "scratch", "check_threads",
           "matmul", "float32_kernel", "kernel_name_of", "kernel_of"]

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


def packing_workspace(kernel, threads):
    """The kernels' packing space: a row of workspace_size() floats per OpenMP thread."""
    return scratch("work", (threads, kernel.workspace_size()))


def scratch(name, shape):
    """A per-Python-thread float32 scratch array of ``shape``: a view of a flat buffer that
    only grows, so calls of different sizes share it (each Python thread keeps its
    largest one)."""
    count = math.prod(shape)          # (np.prod would make an array, most of this call's cost)
    flat = getattr(_local, name, None)
    if flat is None or flat.size < count:
        flat = np.empty(count, np.float32)
        setattr(_local, name, flat)
    return flat[:count].reshape(shape)


def check_threads(owner, threads, module="gemm"):
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
    check_threads("matmul", num_threads)
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
    partial = scratch("partial", (slices - 1, m, n))
    kernel.gemm(a, b, out, packing_workspace(kernel, threads), partial, slices, threads)


def float32_kernel():
    """The selected kernel module (``gemm_avx512`` or ``gemm_avx2``), or None when float32
    products go to NumPy. Read once per call: ``use`` in another thread may switch it."""
    return _kernel



def kernel_name_of(kernel):
    """'avx512' or 'avx2' for a kernel module."""
    return kernel.__name__.rsplit("gemm_", 1)[1]


def kernel_of(name):
    """The kernel module of that name ('avx512' or 'avx2'), for an object that keeps the
    name (a module object would make it, and a layer holding it, impossible to deep-copy)."""
    return _load(name)
