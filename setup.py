"""Build the Cython kernels.

Every ``minicnn/_kernels/*.pyx`` becomes an extension module, compiled with
optimisation on. OpenMP is used when a tiny test program compiles and links with
``-fopenmp``; otherwise the kernels are built serial and the build says so.

Environment variables read at build time:
  MINICNN_DEBUG=1       bounds and wraparound checks on, -O0 -g (a checked build)
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


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when the compiler lacks it."""
    if env_flag("MINICNN_NO_OPENMP"):
        print("minicnn: MINICNN_NO_OPENMP set, building serial kernels")
        return None
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = compiler.split()
    if sys.platform == "darwin":
        flags = (["-Xpreprocessor", "-fopenmp"], ["-lomp"])
    else:
        flags = (["-fopenmp"], ["-fopenmp"])
    tmp = tempfile.mkdtemp(prefix="minicnn-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        exe = os.path.join(tmp, "probe")
        cmd = compiler + flags[0] + [src, "-o", exe] + flags[1]
        ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        ok = ok and subprocess.run([exe], stdout=subprocess.DEVNULL).returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print("minicnn: WARNING: the compiler does not accept OpenMP; building serial kernels")
        return None
    print("minicnn: OpenMP found, building parallel kernels")
    return flags


def extensions():
    debug = env_flag("MINICNN_DEBUG")
    omp = openmp_flags()
    compile_args = ["-O0", "-g"] if debug else ["-O3"]
    # Each multiply and add rounds on its own, as in NumPy: no fused multiply-adds, which
    # GCC on aarch64, clang everywhere and any -march with FMA would otherwise form; the
    # SGD kernel promises the NumPy expressions' exact numbers (tests/test_optim.py).
    compile_args.append("-ffp-contract=off")
    link_args = []
    if omp is not None:
        compile_args += omp[0]
        link_args += omp[1]
    if debug:
        print("minicnn: MINICNN_DEBUG set, building kernels with bounds checks")
    exts = []
    for pyx in sorted((HERE / "minicnn" / "_kernels").glob("*.pyx")):
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
