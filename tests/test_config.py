"""Build configuration, thread control, and importing minicnn changes nothing else."""
import os
import subprocess
import sys

import pytest

import minicnn
from minicnn import info, runtime

from conftest import fast_kernels_only


def test_set_and_get_num_threads():
    old = minicnn.get_num_threads()
    try:
        minicnn.set_num_threads(1)
        assert minicnn.get_num_threads() == 1
    finally:
        minicnn.set_num_threads(old)
    for bad in (0, -1, 1.5, "2", True, 4097, 2**31):
        with pytest.raises(ValueError, match="n must be an integer from 1 to 4096"):
            minicnn.set_num_threads(bad)
    minicnn.set_num_threads(4096)           # allowed (each kernel's scratch is per thread)
    minicnn.set_num_threads(old)


@pytest.mark.parametrize("env,expected", [
    ({"MINICNN_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}, 3),
    ({"OMP_NUM_THREADS": "5,2"}, 5),
    ({}, os.cpu_count()),
])
def test_threads_from_env(monkeypatch, env, expected):
    monkeypatch.delenv("MINICNN_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert runtime._threads_from_env() == expected


def test_bad_thread_env(monkeypatch):
    monkeypatch.setenv("MINICNN_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="MINICNN_NUM_THREADS must be a positive integer"):
        runtime._threads_from_env()
    monkeypatch.setenv("MINICNN_NUM_THREADS", str(2**31))
    with pytest.raises(ValueError, match="MINICNN_NUM_THREADS must be an integer from 1 to 4096"):
        runtime._threads_from_env()
    # OMP_NUM_THREADS is meant for every OpenMP library: a large value is capped, not refused
    monkeypatch.delenv("MINICNN_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "5000")
    assert runtime._threads_from_env() == runtime.MAX_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be an integer from 1 to 4096"):
        runtime._threads_from_env()


def test_info_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minicnn", "info"], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert f"minicnn     {minicnn.__version__}" in out
    assert "numpy" in out and "openmp" in out and "threads" in out
    assert "OPENBLAS_CORETYPE=" in out and "1 inside minicnn's calls" in out


@pytest.mark.skipif(os.environ.get("MINICNN_EXPECT_OPENMP") != "1",
                    reason="set MINICNN_EXPECT_OPENMP=1 where the compiler has OpenMP (CI does)")
def test_openmp_was_not_lost():
    assert info.openmp_enabled(), "the kernels were built without OpenMP"


@pytest.mark.skipif(os.environ.get("MINICNN_EXPECT_DEBUG") != "1",
                    reason="set MINICNN_EXPECT_DEBUG=1 when testing a MINICNN_DEBUG=1 build")
def test_debug_build_checks_bounds():
    assert info.config()["boundscheck"]


# Imports the modules named in argv[1] in order, then reports what the rest of the process
# would see: the environment, NumPy's BLAS thread count, and whether malloc serves a 1 MiB
# block from the heap (glibc mmaps it unless someone raised M_MMAP_THRESHOLD).
SIDE_EFFECTS = """
import os, sys, json, ctypes
before = dict(os.environ)
for name in sys.argv[1].split(","):
    __import__(name)
import numpy as np
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
block = libc.malloc(1 << 20)
with open("/proc/self/maps") as f:
    heap = [tuple(int(v, 16) for v in line.split()[0].split("-"))
            for line in f if line.rstrip().endswith("[heap]")]
in_heap = any(lo <= block < hi for lo, hi in heap)
libc.free(block)
changed = {k: (before.get(k), v) for k, v in os.environ.items() if before.get(k) != v}
changed.update({k: (v, None) for k, v in before.items() if k not in os.environ})
from threadpoolctl import threadpool_info        # (it sets KMP_DUPLICATE_LIB_OK itself)
blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
print(json.dumps({"env": changed, "blas": blas, "in_heap": bool(in_heap)}))
"""


def _observe(modules, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "GOMP_", "OPENBLAS_", "MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", SIDE_EFFECTS, ",".join(modules)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    import json
    return json.loads(out)


@pytest.mark.parametrize("order", [["numpy", "minicnn"], ["minicnn", "numpy"]])
def test_import_changes_nothing_outside_minicnn(tmp_path, order):
    """os.environ, glibc's malloc thresholds and NumPy's BLAS threads are as they were
    without minicnn (run outside the checkout, so that the installed package is imported)."""
    alone = _observe(["numpy"], tmp_path)
    seen = _observe(order, tmp_path)
    assert seen["env"] == {}, f"import minicnn changed the environment: {seen['env']}"
    assert seen["blas"] == alone["blas"]
    assert seen["in_heap"] == alone["in_heap"], "import minicnn changed malloc's mmap threshold"


def test_blas_single_thread_restores_and_nests():
    libs = runtime.blas_libraries()
    if not libs:
        pytest.skip("no BLAS library that threadpoolctl can control")
    before = [lib.num_threads for lib in libs]
    with runtime.blas_single_thread():
        assert all(lib.num_threads == 1 for lib in libs)
        with runtime.blas_single_thread():
            assert all(lib.num_threads == 1 for lib in libs)
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before
    with pytest.raises(KeyError):
        with runtime.blas_single_thread():
            raise KeyError("inside")
    assert [lib.num_threads for lib in libs] == before


@fast_kernels_only
def test_a_training_step_leaves_blas_threads_alone():
    """float32 products (of 8 rows or more) run on minicnn's GEMM, float64 ones inside
    blas_single_thread:
    NumPy's BLAS thread count is the same after a step (float32 and float64) as before."""
    libs = runtime.blas_libraries()
    before = [lib.num_threads for lib in libs]
    seen = []
    real = runtime.numpy_matmul

    def spy(a, b, out=None):
        seen.append(a.dtype)
        return real(a, b, out)

    import numpy as np
    from minicnn.architectures import build
    for dtype in (np.float32, np.float64):
        model = build("lenet5", rng=np.random.default_rng(0)).astype(dtype)
        x = np.random.default_rng(1).standard_normal((8, 1, 28, 28)).astype(dtype)
        loss = minicnn.SoftmaxCrossEntropy()
        try:
            runtime.numpy_matmul = spy
            from minicnn import gemm
            from minicnn.functional import dense
            dense.numpy_matmul = gemm.numpy_matmul = spy
            loss.forward(model.forward(x, training=True), np.arange(8))
            model.backward(loss.backward())
        finally:
            runtime.numpy_matmul = dense.numpy_matmul = gemm.numpy_matmul = real
    assert [lib.num_threads for lib in libs] == before
    if minicnn.gemm.kernel_name() != "numpy":
        assert seen and all(d == np.float64 for d in seen), seen


def test_blas_hint_names_the_fix_only_when_avx512_is_idle(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    hint = info.blas_hint("Haswell", ["sse2", "avx2", "avx512f"])
    assert "AVX-512" in hint and "unset OPENBLAS_CORETYPE" in hint
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert "try OPENBLAS_CORETYPE=SkylakeX" in info.blas_hint("Zen", ["avx512f"])
    assert info.blas_hint("SkylakeX", ["avx512f"]) == ""
    assert info.blas_hint("Haswell", ["avx2"]) == ""
    assert info.blas_hint("", ["avx512f"]) == ""


def test_sequential_holds_blas_to_one_thread_for_the_whole_pass():
    """One blas_single_thread block around the whole forward and backward pass: a layer
    sees NumPy's BLAS on one thread, and the products inside skip their own block."""
    import numpy as np
    from minicnn.layers.base import Layer
    libs = runtime.blas_libraries()
    if not libs:
        pytest.skip("no BLAS library that threadpoolctl can control")
    seen = []

    class Probe(Layer):
        def forward(self, x, training=True):
            seen.append(("forward", [lib.num_threads for lib in libs], runtime._blas_depth))
            return x

        def backward(self, dout, need_dx=True):
            seen.append(("backward", [lib.num_threads for lib in libs], runtime._blas_depth))
            return dout

    before = [lib.num_threads for lib in libs]
    model = minicnn.Sequential(Probe(), minicnn.Dense(3, 2))
    model.backward(model.forward(np.ones((2, 3), np.float32)))
    assert [s[0] for s in seen] == ["forward", "backward"]
    assert all(threads == [1] * len(libs) and depth == 1 for _, threads, depth in seen)
    assert [lib.num_threads for lib in libs] == before and runtime._blas_depth == 0


def test_blas_control_is_given_back_after_a_worker_thread_call():
    """threadpoolctl lets only the first thread that sets OpenBLAS's shared pool change it
    until that thread clears control: minicnn, called from a worker thread, must give it
    back, or the main thread's threadpool_limits would silently do nothing afterwards."""
    import threading
    import numpy as np
    from threadpoolctl import threadpool_limits
    libs = runtime.blas_libraries()
    if not libs or all(lib.num_threads == 1 for lib in libs):
        pytest.skip("needs a BLAS library on more than one thread")

    def work():
        runtime.numpy_matmul(np.ones((2, 2)), np.ones((2, 2)))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    keep_alive = threading.Event()
    holder = threading.Thread(target=lambda: (work(), keep_alive.wait(10)))
    holder.start()                      # a live thread that has used minicnn
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            assert all(lib.num_threads == 1 for lib in libs)
    finally:
        keep_alive.set()
        holder.join()
