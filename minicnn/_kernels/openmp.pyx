# cython: language_level=3
"""How the kernels were compiled: with OpenMP or serial, with bounds checks or without.

Computes:  nothing of a network's: three questions for ``minicnn info`` and the tests
           (was OpenMP on, how many processors does it see, is this a checked build).
Layout, threads, sum order: none; a serial build (no OpenMP) runs every prange loop of the
           other kernels on one thread, with the same results.
Must agree with no reference op (minicnn.reference has nothing to compare a build with).
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int minicnn_openmp_enabled(void) { return 1; }
    static int minicnn_omp_num_procs(void) { return omp_get_num_procs(); }
    #else
    static int minicnn_openmp_enabled(void) { return 0; }
    static int minicnn_omp_num_procs(void) { return 1; }
    #endif
    """
    int minicnn_openmp_enabled() nogil
    int minicnn_omp_num_procs() nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(minicnn_openmp_enabled())


def num_procs():
    """Processors OpenMP sees (1 in a serial build)."""
    return minicnn_omp_num_procs()


def boundscheck_enabled():
    """True in a debug build (MINICNN_DEBUG=1): an out-of-range index raises IndexError."""
    cdef double[::1] probe = __import__("numpy").zeros(1)
    try:
        probe[1] = 0.0
    except IndexError:
        return True
    return False
