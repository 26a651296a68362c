"""What this installation is: versions, build options, threads, kernels (``minicnn info``).

It sits above every module it reports on and nothing in minicnn imports it but the package
root and the command line.
"""
import ctypes
import os
import sys

import numpy as np

from . import __version__, gemm, runtime
from .functional import conv_winograd
from ._kernels import openmp

__all__ = ["config", "show_config", "openmp_enabled", "blas_core", "blas_hint"]


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return openmp.openmp_enabled()


def blas_core():
    """The kernel set NumPy's OpenBLAS chose when it loaded (e.g. 'SkylakeX'), or ''."""
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


def _blas_threads():
    counts = [lib.num_threads for lib in runtime.blas_libraries()]
    return counts[0] if counts else None


def config():
    """The build and run-time configuration as a dict."""
    return {
        "minicnn": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "openmp": openmp.openmp_enabled(),
        "boundscheck": openmp.boundscheck_enabled(),
        "num_threads": runtime.get_num_threads(),
        "blas_threads": _blas_threads(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "blas_core": blas_core(),
        "gemm": gemm.kernel_name(),
        "gemm_kernels": list(gemm.available()),
        "winograd": bool(conv_winograd.ENABLED and gemm.kernel_name() != "numpy"),
        "cpu_count": os.cpu_count(),
    }


def show_config(file=None):
    """Print the version, NumPy version, OpenMP status, threads and kernels."""
    cfg = config()
    blas_threads = cfg["blas_threads"]
    lines = [
        f"minicnn     {cfg['minicnn']}",
        f"python      {cfg['python']}",
        f"numpy       {cfg['numpy']}",
        f"openmp      {'yes' if cfg['openmp'] else 'no (serial kernels)'}",
        f"debug build {'yes (bounds checks on)' if cfg['boundscheck'] else 'no'}",
        f"threads     {cfg['num_threads']} (of {cfg['cpu_count']} cores; "
        f"MINICNN_NUM_THREADS={os.environ.get('MINICNN_NUM_THREADS') or 'unset'}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS') or 'unset'})",
        f"blas        OpenBLAS kernels {cfg['blas_core'] or 'unknown (not OpenBLAS?)'}, "
        f"{blas_threads if blas_threads is not None else 'unknown'} threads "
        f"(1 inside minicnn's calls), OPENBLAS_CORETYPE={cfg['openblas_coretype'] or 'unset'}",
        f"gemm        float32 products on {_gemm_label(cfg['gemm'])} (own kernels for this CPU: "
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

    An OPENBLAS_CORETYPE=Haswell inherited from the environment keeps OpenBLAS on its AVX2
    kernels where it would pick its AVX-512 ones itself, and every large float32 GEMM runs
    at about half speed (benchmarks/README.md).
    """
    if core.lower() in ("haswell", "zen") and "avx512f" in cpu_flags:
        how = ("unset OPENBLAS_CORETYPE" if os.environ.get("OPENBLAS_CORETYPE")
               else "try OPENBLAS_CORETYPE=SkylakeX")
        return (f"note: this CPU has AVX-512 but OpenBLAS runs its {core} (AVX2) kernels; "
                f"{how} for faster GEMMs (up to 1.9x on large float32 ones)")
    return ""
