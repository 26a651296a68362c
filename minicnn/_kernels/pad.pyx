"""Padding kernels: a gather through per-axis index maps, and its scatter-add adjoint.

Every padding mode is an index map per axis: output row i reads input row rows[i]
(or the fill value when rows[i] < 0), and likewise for columns. Python builds the
maps (minicnn.functional.pad_index); these loops only follow them.
"""
from cython cimport floating
from cython.parallel cimport prange


cdef inline void _gather_plane(const floating[:, :, ::1] x,      # IN  (P, H, W)
                               const Py_ssize_t[::1] rows,        # IN  (OH,)
                               const Py_ssize_t[::1] cols,        # IN  (OW,)
                               floating value,
                               floating[:, :, ::1] out,           # OUT (P, OH, OW)
                               Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t i, j, si, sj
    for i in range(out.shape[1]):
        si = rows[i]
        if si < 0:
            for j in range(out.shape[2]):
                out[p, i, j] = value
            continue
        for j in range(out.shape[2]):
            sj = cols[j]
            if sj < 0:
                out[p, i, j] = value
            else:
                out[p, i, j] = x[p, si, sj]


def pad_forward(const floating[:, :, ::1] x, const Py_ssize_t[::1] rows,
                const Py_ssize_t[::1] cols, floating value, floating[:, :, ::1] out,
                int num_threads):
    """out[p, i, j] = x[p, rows[i], cols[j]], or ``value`` where a map is negative."""
    cdef Py_ssize_t p
    with nogil:
        for p in prange(x.shape[0], schedule="static", num_threads=num_threads):
            _gather_plane(x, rows, cols, value, out, p)


cdef inline void _scatter_plane(const floating[:, :, ::1] dout,   # IN  (P, OH, OW)
                                const Py_ssize_t[::1] rows,
                                const Py_ssize_t[::1] cols,
                                floating[:, :, ::1] dx,            # OUT (P, H, W), zeroed
                                Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t i, j, si, sj
    for i in range(dout.shape[1]):
        si = rows[i]
        if si < 0:
            continue
        for j in range(dout.shape[2]):
            sj = cols[j]
            if sj >= 0:
                dx[p, si, sj] += dout[p, i, j]


def pad_backward(const floating[:, :, ::1] dout, const Py_ssize_t[::1] rows,
                 const Py_ssize_t[::1] cols, floating[:, :, ::1] dx, int num_threads):
    """dx[p, rows[i], cols[j]] += dout[p, i, j]: each gradient goes back to its source pixel.

    ``dx`` must be zeroed by the caller. Planes are independent, so threads never
    share an output element, and each plane is summed in a fixed order.
    """
    cdef Py_ssize_t p
    with nogil:
        for p in prange(dout.shape[0], schedule="static", num_threads=num_threads):
            _scatter_plane(dout, rows, cols, dx, p)
