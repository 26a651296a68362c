"""Build the Cython kernels.

Every ``minicnn/_kernels/*.pyx`` becomes an extension module, compiled with
optimisation on. OpenMP is used when a tiny test program compiles and links with
``-fopenmp``; otherwise the kernels are built serial and the build says so.

``gemm_<isa>.pyx`` are the exception: each is compiled with its instruction set's flags
(ISA_FLAGS), and only when the compiler accepts them (on ARM, or an old compiler, they
are left out and minicnn.gemm uses NumPy's matmul). Their code may use instructions the
build machine lacks: minicnn.gemm imports one only after checking the running CPU.

Environment variables read at build time:
  MINICNN_DEBUG=1       bounds and wraparound checks on, -O0 -g (a checked build; the
                        gemm_<isa> modules stay -O3: their micro kernel is scalar at -O0)
  MINICNN_NO_OPENMP=1   skip the OpenMP probe and build serial kernels
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


#: compiler flags of each ``gemm_<isa>.pyx``; fused multiply-adds on (no -ffp-contract=off)
ISA_FLAGS = {
    "avx512": ["-mavx512f", "-mfma", "-mprefer-vector-width=512"],
    "avx2": ["-mavx2", "-mfma"],
}
#: added to those when the compiler takes them. GCC's IPA constant propagation cloned the
#: GEMM driver for one caller (the image-by-image convolution) and inlined the clone, and in
#: that context kept the micro kernel's accumulators in memory (a load and a store per FMA)
GEMM_TUNING = ["-fno-ipa-cp-clone"]


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def compiler_command():
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return compiler.split()


def compiles(source, compile_args, link_args=(), run=False):
    """True when ``source`` (C) compiles and links with these flags (and, with run, exits 0)."""
    tmp = tempfile.mkdtemp(prefix="minicnn-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        exe = os.path.join(tmp, "probe")
        cmd = compiler_command() + list(compile_args) + [src, "-o", exe] + list(link_args)
        ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if ok and run:
            ok = subprocess.run([exe], stdout=subprocess.DEVNULL).returncode == 0
        return ok
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: a program using each instruction set's fused multiply-add: the probe must reach the
#: assembler, which (not the compiler driver) is what an old toolchain lacks
ISA_PROBES = {
    "avx512": "__m512 v = _mm512_set1_ps(x); _mm512_storeu_ps(out, _mm512_fmadd_ps(v, v, v));",
    "avx2": "__m256 v = _mm256_set1_ps(x); _mm256_storeu_ps(out, _mm256_fmadd_ps(v, v, v));",
}


def isa_flags(isa):
    """The flags for ``gemm_<isa>.pyx``, or None when the compiler or assembler rejects them.
    The probe is compiled and linked, never run: the build machine may lack the ISA."""
    flags = ISA_FLAGS[isa]
    source = ("#include <immintrin.h>\nfloat out[16];\nint main(int argc, char **argv) {\n"
              f"    float x = (float)argc;\n    {ISA_PROBES[isa]}\n    return (int)out[0];\n}}\n")
    if compiles(source, flags + ["-Werror"]):
        return flags + [f for f in GEMM_TUNING if compiles(source, flags + [f, "-Werror"])]
    print(f"minicnn: the compiler does not accept {' '.join(flags)}; building without gemm_{isa}")
    return None


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when the compiler lacks it."""
    if env_flag("MINICNN_NO_OPENMP"):
        print("minicnn: MINICNN_NO_OPENMP set, building serial kernels")
        return None
    if sys.platform == "darwin":
        flags = (["-Xpreprocessor", "-fopenmp"], ["-lomp"])
    else:
        flags = (["-fopenmp"], ["-fopenmp"])
    ok = compiles(OPENMP_PROBE, flags[0], flags[1], run=True)
    if not ok:
        print("minicnn: WARNING: the compiler does not accept OpenMP; building serial kernels")
        return None
    print("minicnn: OpenMP found, building parallel kernels")
    return flags


def extensions():
    debug = env_flag("MINICNN_DEBUG")
    omp = openmp_flags()
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # Each multiply and add rounds on its own, as in NumPy: no fused multiply-adds, which
    # GCC on aarch64, clang everywhere and any -march with FMA would otherwise form; the
    # SGD kernel promises the NumPy expressions' exact numbers (tests/test_optim.py).
    plain = opt + ["-ffp-contract=off"]
    link_args = []
    if omp is not None:
        plain += omp[0]
        link_args += omp[1]
    if debug:
        print("minicnn: MINICNN_DEBUG set, building kernels with bounds checks")
    exts = []
    for pyx in sorted((HERE / "minicnn" / "_kernels").glob("*.pyx")):
        compile_args = plain
        if pyx.stem.startswith("gemm_"):
            flags = isa_flags(pyx.stem[len("gemm_"):])
            if flags is None:
                continue
            # optimised even in a debug build: at -O0 the micro kernel is scalar, ~50x
            # slower, and the suite's GEMMs took minutes; its index checks are the
            # directives' (memoryview accesses), which -O3 keeps
            compile_args = ["-O3", "-g"] + flags + (omp[0] if omp is not None else [])
        exts.append(
            Extension(
                f"minicnn._kernels.{pyx.stem}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args,
                extra_link_args=link_args,
            )
        )
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": True,
    }
    # Generated C goes under build/, never beside the sources. The directives are baked into
    # the C, so a debug build must regenerate it even when the .pyx files did not change.
    return cythonize(exts, compiler_directives=directives, build_dir="build/cython", force=debug)


setup(ext_modules=extensions())
