"""Thread count and build configuration.

The kernels take their thread count as an argument; this module is where it lives.
It comes from ``MINICNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else every core,
and ``set_num_threads`` changes it at run time.
"""
import os
import sys

# OpenMP threads that spin after a parallel region fight NumPy's BLAS threads for the
# cores whenever a kernel and a GEMM alternate (as they do in every convolution): measured
# 8x slower LeNet layers on 2 cores. Sleeping at once avoids it. libgomp reads this when it
# loads, which is when the first kernel module is imported, after this line; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# But a sleeping thread takes 25-70 us to wake on this 2-core VM (a futex wake of an idle
# CPU), and a training step calls a dozen kernels back to back: LeNet-5 at batch 64 lost
# ~0.4 ms of its 3.8 ms that way. With an explicit spin count (which overrides the
# policy in GNU libgomp) the threads spin ~30-100 us, long enough to catch the next
# kernel, short enough not to fight a GEMM for long: a 2-thread ReLU of 64 values 55 us
# -> 1.3 us; LeNet-5 step 3.84 -> 3.40 ms, dwsep 11.7 -> 11.1 ms (medians of 4 interleaved
# runs; python benchmarks/thread_settings.py sweeps the settings). Other OpenMP runtimes
# ignore it.
os.environ.setdefault("GOMP_SPINCOUNT", "3000")
# The same fight from the other side: OpenBLAS's worker threads spin for about 2**28
# cycles (~0.1 s) after every GEMM, while the next kernel's OpenMP threads want the same
# cores. 4 (its minimum, 2**4 cycles) makes them sleep at once: dwsep's training step
# 20 -> 15 ms, convnet's 64 -> 47 ms (benchmarks/compare.py, 2 threads). OpenBLAS reads
# it when it loads, with NumPy: it only takes effect when minicnn is imported before
# NumPy (as the minicnn command and the examples do); show_config() says whether it did.
_BLAS_TIMEOUT_APPLIES = "numpy" not in sys.modules or "OPENBLAS_THREAD_TIMEOUT" in os.environ
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# OpenBLAS's kernel set (OPENBLAS_CORETYPE) is left to OpenBLAS and the user; show_config()
# reports it, because an inherited OPENBLAS_CORETYPE=Haswell on an AVX-512 machine halves
# the speed of every large GEMM (benchmarks/README.md).

# Freed arrays stay in the heap for the next step (glibc; see _malloc.py).
from . import _malloc  # noqa: E402

_malloc.tune()

import numpy as np  # noqa: E402

_num_threads = None


def _threads_from_env():
    for name in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        # OMP_NUM_THREADS may be a list such as "4,2"; the first level is ours.
        first = value.split(",")[0]
        try:
            n = int(first)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
        if n < 1 or (n > MAX_THREADS and name == "MINICNN_NUM_THREADS"):
            raise ValueError(f"{name} must be an integer from 1 to {MAX_THREADS}, got {value!r}")
        return min(n, MAX_THREADS)     # OMP_NUM_THREADS is set for other libraries too: capped
    return min(os.cpu_count() or 1, MAX_THREADS)


def get_num_threads():
    """The number of threads the kernels use."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _threads_from_env()
    return _num_threads


#: the most threads a kernel is given: their scratch is allocated per thread, and a count
#: past C's int (2**31) only failed with OverflowError inside a kernel call
MAX_THREADS = 4096


def set_num_threads(n):
    """Set the number of threads the kernels use (a positive int, at most MAX_THREADS)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to {MAX_THREADS}, "
                         f"got {n!r}")
    _num_threads = int(n)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    from ._kernels import openmp

    return openmp.openmp_enabled()


def blas_core():
    """The kernel set NumPy's OpenBLAS chose when it loaded (e.g. 'SkylakeX'), or ''."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return ""
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return ""


def config():
    """The build and run-time configuration as a dict."""
    from . import __version__, gemm, winograd
    from ._kernels import openmp

    return {
        "minicnn": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "openmp": openmp.openmp_enabled(),
        "boundscheck": openmp.boundscheck_enabled(),
        "num_threads": get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", ""),
        "openblas_thread_timeout": (os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
                                    if _BLAS_TIMEOUT_APPLIES else "not applied (NumPy loaded first)"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "blas_core": blas_core(),
        "malloc": _malloc.tune(),
        "gemm": gemm.kernel_name(),
        "gemm_kernels": list(gemm.available()),
        "winograd": bool(winograd.ENABLED and gemm.kernel_name() != "numpy"),
        "cpu_count": os.cpu_count(),
    }


def show_config(file=None):
    """Print the version, NumPy version, OpenMP status and thread count."""
    cfg = config()
    lines = [
        f"minicnn     {cfg['minicnn']}",
        f"python      {cfg['python']}",
        f"numpy       {cfg['numpy']}",
        f"openmp      {'yes' if cfg['openmp'] else 'no (serial kernels)'}",
        f"debug build {'yes (bounds checks on)' if cfg['boundscheck'] else 'no'}",
        f"threads     {cfg['num_threads']} (of {cfg['cpu_count']} cores), "
        f"OMP_WAIT_POLICY={cfg['omp_wait_policy'] or 'unset'}, "
        f"GOMP_SPINCOUNT={cfg['gomp_spincount'] or 'unset'}, "
        f"OPENBLAS_THREAD_TIMEOUT={cfg['openblas_thread_timeout'] or 'unset'}",
        f"blas        OpenBLAS kernels {cfg['blas_core'] or 'unknown (not OpenBLAS?)'}, "
        f"OPENBLAS_CORETYPE={cfg['openblas_coretype'] or 'unset'}",
        f"malloc      {cfg['malloc']}",
        f"gemm        convolutions on {_gemm_label(cfg['gemm'])} (own kernels for this CPU: "
        f"{', '.join(cfg['gemm_kernels']) or 'none'}; MINICNN_GEMM="
        f"{os.environ.get('MINICNN_GEMM') or 'unset'})",
        f"winograd    {'on' if cfg['winograd'] else 'off'} for float32 3x3 stride-1 "
        f"convolutions of 32 channels or more "
        f"(MINICNN_WINOGRAD={os.environ.get('MINICNN_WINOGRAD') or 'unset'})",
    ]
    hint = blas_hint(cfg["blas_core"], _cpu_flags())
    if hint:
        lines.append(f"            {hint}")
    print("\n".join(lines), file=file or sys.stdout)


def _gemm_label(name):
    return "NumPy's matmul" if name == "numpy" else f"minicnn's {name} kernel"


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")),
                        [])
    except OSError:
        return []


def blas_hint(core, cpu_flags):
    """A note when OpenBLAS runs AVX2 kernels on a CPU with AVX-512, else ''.

    Seen on the benchmark machine, where the environment set OPENBLAS_CORETYPE=Haswell:
    OpenBLAS would pick its SkylakeX kernels there itself, and every large float32 GEMM
    ran at about half speed (2048^3: 76 vs 40 ms; convnet's step 35 vs 31 ms).
    """
    if core.lower() in ("haswell", "zen") and "avx512f" in cpu_flags:
        how = ("unset OPENBLAS_CORETYPE" if os.environ.get("OPENBLAS_CORETYPE")
               else "try OPENBLAS_CORETYPE=SkylakeX")
        return (f"note: this CPU has AVX-512 but OpenBLAS runs its {core} (AVX2) kernels; "
                f"{how} for faster GEMMs (up to 1.9x on large float32 ones)")
    return ""
