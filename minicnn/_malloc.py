"""Keep freed activations in the heap instead of handing them back to the kernel (glibc).

A training step allocates and frees the same arrays every step: each layer's output,
its gradient, the columns of a GEMM, from a few hundred KB to a few tens of MB. glibc's
malloc serves anything over its mmap threshold (128 KiB at start) with a fresh mmap, and
returns free memory at the top of the heap to the kernel whenever more than its trim
threshold (128 KiB, or twice the mmap threshold once glibc has raised it) is free. So an
array freed at the end of one step is given back, and the next step's array of the same
size faults its pages in again: LeNet-5 at batch 64 took ~217 page faults a step
(``perf stat -e page-faults``), ~0.45 ms of a 4.1 ms step on this VM, most of it in the
first ReLU; its 1.2 MB output was 0.30 ms instead of 0.07.

glibc raises both thresholds on its own once it frees a large mmapped block, so a process
that happened to free a big array first ran fast and one that did not ran slow. We set
them once to the values that rule tops out at (64-bit glibc: mmap above 32 MiB, trim
above 64 MiB of free top of heap). Whole-step medians of six interleaved rounds of
``python benchmarks/thread_settings.py --only now,`` (glibc's own -> these): LeNet-5
4.44 -> 3.81 ms, dwsep 12.8 -> 12.1, convnet 46.2 -> 40.1; LeNet-5 batch-256 inference
5.7 -> 5.9 (noise: an earlier sweep gave 6.2 -> 5.2). Resident memory is ~3 MB higher
(``python benchmarks/memory_flat.py``: 69.3 -> 72.3 MB, still flat): the freed top of
the heap is kept for the next step.

The setting is the whole process's: a program that imports minicnn gets it too. A user's
own ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or malloc ``GLIBC_TUNABLES`` win;
``MINICNN_TUNE_MALLOC=0`` leaves malloc alone. Other C libraries are left alone.
"""
import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1      # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for its own dynamic threshold on 64-bit
TRIM_THRESHOLD = 64 << 20  # twice that, as glibc's own rule sets it

_state = "not applied"


def tune():
    """Set glibc's thresholds (once); returns a one-line description of what was done."""
    global _state
    if _state != "not applied":
        return _state
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if os.environ.get("MINICNN_TUNE_MALLOC", "").strip().lower() in ("0", "false", "no", "off"):
        _state = "left alone (MINICNN_TUNE_MALLOC=0)"
    elif ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
          or "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables):
        _state = "left alone (MALLOC_*_THRESHOLD_ set)"
    elif not _is_glibc64():
        _state = "left alone (not 64-bit glibc)"
    else:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        _state = ("mmap above 32 MiB, trim above 64 MiB" if ok
                  else "left alone (mallopt refused the thresholds)")
    return _state


def _is_glibc64():
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    try:
        return platform.libc_ver()[0] == "glibc"
    except OSError:          # libc_ver reads sys.executable when it cannot ask the C library
        return False
