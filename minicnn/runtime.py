"""Threads: how many the kernels use, and keeping NumPy's BLAS out of their way.

The kernels take their thread count as an argument; this module is where it lives. It comes
from ``MINICNN_NUM_THREADS``, else ``OMP_NUM_THREADS``, else every core, and
``set_num_threads`` changes it at run time.

Importing minicnn changes nothing outside minicnn: no environment variable, no allocator
setting, no other library's thread pool. What the kernels need is arranged inside minicnn's
own calls:

- every float32 product of a training or inference step runs on minicnn's own GEMM, on the
  same OpenMP threads as the other kernels, so one pool of threads serves a whole step;
- the products that still go to NumPy (float64, or a CPU without an own GEMM kernel) run
  inside ``blas_single_thread()``: NumPy's BLAS is held to one thread for the call and given
  its own count back afterwards. Otherwise its threads would wake for the product and then
  spin, waiting for the next one, on the cores the OpenMP threads need for the next kernel.
"""
import os
import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["MAX_THREADS", "get_num_threads", "set_num_threads", "blas_single_thread",
           "blas_libraries", "numpy_matmul"]

#: the most threads a kernel is given: their scratch is allocated per thread, and a count
#: past C's int (2**31) only failed with OverflowError inside a kernel call
MAX_THREADS = 4096

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


def set_num_threads(n):
    """Set the number of threads the kernels use (a positive int, at most MAX_THREADS)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to {MAX_THREADS}, "
                         f"got {n!r}")
    _num_threads = int(n)


# --- NumPy's BLAS, held to one thread inside minicnn's calls -------------------------------

_blas_lock = threading.Lock()
_blas_depth = 0          # how many blas_single_thread blocks are open, in any Python thread
_blas_saved = ()         # (controller, its thread count) to give back when the last closes
_blas_libraries = None   # threadpoolctl's controllers of the BLAS libraries, found once


def blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (found on
    first use; () without threadpoolctl)."""
    global _blas_libraries
    if _blas_libraries is None:
        # threadpoolctl sets KMP_DUPLICATE_LIB_OK when it is first imported; minicnn leaves
        # the environment as it found it
        kmp = os.environ.get("KMP_DUPLICATE_LIB_OK")
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_libraries = ()
        else:
            _blas_libraries = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
        finally:
            if kmp is None:
                os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
            else:
                os.environ["KMP_DUPLICATE_LIB_OK"] = kmp
    return _blas_libraries


@contextmanager
def blas_single_thread():
    """Hold NumPy's BLAS to one thread inside the block, then give back its own setting.

    Blocks nest and may be open in several Python threads at once: the first to open sets
    one thread, the last to close restores. While one is open, BLAS calls made elsewhere in
    the process also run on one thread.
    """
    global _blas_depth, _blas_saved
    with _blas_lock:
        if _blas_depth == 0:
            saved = []
            for lib in blas_libraries():
                n = lib.num_threads
                if n != 1:
                    lib.set_num_threads(1)
                    saved.append((lib, n))
            _blas_saved = tuple(saved)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for lib, n in _blas_saved:
                    lib.set_num_threads(n)
                    _release(lib)
                _blas_saved = ()


def _release(lib):
    """Give up the control threadpoolctl hands the first thread that sets OpenBLAS's count
    (its pthreads pool is shared: later settings from other threads are ignored until the
    controlling thread clears it, as threadpool_limits does on leaving). Without this, a
    minicnn call in a worker thread would make threadpool_limits in the main thread a
    silent no-op afterwards."""
    clear = getattr(type(lib), "clear_controlling_thread", None)
    if clear is not None:
        clear()


def numpy_matmul(a, b, out=None):
    """np.matmul(a, b, out=out) with NumPy's BLAS on one thread (see blas_single_thread).

    Inside an open block (Sequential's forward and backward open one for the whole pass)
    it calls np.matmul at once: setting the count costs a few microseconds a call, a tenth
    of a batch-1 LeNet-5 inference with three dense layers.
    """
    if _blas_depth:
        return np.matmul(a, b, out=out)
    with blas_single_thread():
        return np.matmul(a, b, out=out)
