# cython: language_level=3
"""Report how the kernels were compiled: with OpenMP or serial."""

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
