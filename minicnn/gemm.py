"""Matrix products for the convolutions: minicnn's own float32 GEMM, or NumPy's matmul.

At import the widest kernel this CPU runs is chosen: ``gemm_avx512`` (an 8 x 32 register
tile) on CPUs with AVX-512F, ``gemm_avx2`` (4 x 24) on CPUs with AVX2 and FMA, NumPy's
matmul (OpenBLAS) otherwise; float64 always goes to NumPy. The kernels were built with
their instruction set's flags, so one is imported only after NumPy's CPU detection says
the processor (and the OS) supports it.

``MINICNN_GEMM`` overrides the choice: ``auto`` (the default), ``avx512``, ``avx2`` or
``numpy``. Asking for a kernel this CPU or build lacks falls back to the best available
one, with a warning.

Why our own (benchmarks/gemm_shapes.py): a convolution's GEMMs are thin and strided, where
OpenBLAS's large-matrix kernels lose: LeNet-5's first layer is 6 x 25 x 50,176, its weight
gradient 6 x 50,176 x 25 (NumPy runs that one on one core).
"""
import functools
import os
import threading
import warnings

import numpy as np

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


def _load(name):
    """The compiled module for kernel ``name``, or None when it was not built."""
    try:
        return __import__(f"minicnn._kernels.gemm_{name}", fromlist=["gemm"])
    except ImportError:
        return None


@functools.lru_cache(maxsize=None)
def available():
    """The kernels this CPU supports and this build has, widest first."""
    features = cpu_features()
    return tuple(k for k in KERNELS if all(features.get(f) for f in NEEDS[k]) and _load(k))


def _select(request):
    request = (request or "auto").strip().lower()
    if request not in CHOICES:
        raise ValueError(f"MINICNN_GEMM must be one of {', '.join(CHOICES)}, got {request!r}")
    if request == "numpy":
        return None
    usable = available()
    if request != "auto" and request not in usable:
        best = usable[0] if usable else "numpy"
        warnings.warn(f"MINICNN_GEMM={request}: this CPU or build has no {request} kernel; "
                      f"using {best}", RuntimeWarning, stacklevel=3)
    elif request != "auto":
        return request
    return usable[0] if usable else None


_name = _select(os.environ.get("MINICNN_GEMM"))
_kernel = _load(_name) if _name else None
#: at most this many K slices when N is narrow, each at least SLICE_MIN long
SLICES = 8
SLICE_MIN = 512
_local = threading.local()     # per Python thread: packing space, reused between calls


def kernel_name():
    """'avx512', 'avx2' or 'numpy': what float32 convolution GEMMs run on."""
    return _name or "numpy"


def use(name):
    """Switch kernels at run time (tests and benchmarks): a name of ``CHOICES``."""
    global _name, _kernel
    _name = _select(name)
    _kernel = _load(_name) if _name else None


def _workspace(threads):
    size = _kernel.workspace_size()
    work = getattr(_local, "work", None)
    if work is None or work.shape[0] < threads or work.shape[1] != size:
        work = _local.work = np.empty((threads, size), np.float32)
    return work


def _usable(x):
    return x.dtype == np.float32 and x.flags.aligned


def matmul(a, b, out, num_threads=1):
    """out = a @ b for a (M, K), b (K, N), out (M, N) C-contiguous; or a stack of them
    (G, M, K) @ (G, K, N) -> (G, M, N). Returns out.

    a and b may have any strides (transposed views are packed as they are, never copied).
    float32 runs on the selected kernel with ``num_threads`` threads; anything else, or
    no kernel, is ``np.matmul``.
    """
    if a.ndim != b.ndim or out.ndim != a.ndim or a.ndim not in (2, 3):
        raise ValueError(f"gemm.matmul: a, b and out must all be 2-d or 3-d, got "
                         f"{a.shape}, {b.shape}, {out.shape}")
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.shape[-2] != k or out.shape[-2:] != (m, n) or a.shape[:-2] != b.shape[:-2] \
            or out.shape[:-2] != a.shape[:-2]:
        raise ValueError(f"gemm.matmul: cannot multiply {a.shape} by {b.shape} into {out.shape}")
    if (_kernel is None or not (_usable(a) and _usable(b) and _usable(out))
            or not out.flags.c_contiguous):
        return np.matmul(a, b, out=out)
    if a.ndim == 3:
        for g in range(a.shape[0]):
            _product(a[g], b[g], out[g], num_threads)
    else:
        _product(a, b, out, num_threads)
    return out


def _product(a, b, out, threads):
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out.fill(0)
        return
    nr = _kernel.tile()[1]
    # a narrow N (a weight gradient's taps) leaves too few column strips to share between
    # threads: cut the long K into slices and add their products afterwards. The cut
    # follows the shape alone, so results do not depend on the thread count.
    slices = min(SLICES, k // SLICE_MIN) if (n + nr - 1) // nr < 16 else 1
    slices = max(slices, 1)
    partial = np.empty((slices - 1, m, n), np.float32)
    _kernel.gemm(a, b, out, _workspace(threads), partial, slices, threads)
