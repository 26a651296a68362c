"""Padding, forward and backward: a gather through per-axis index maps, and its adjoint.

Computes:  out[p, i, j] = x[p, rows[i], cols[j]], or the fill value where a map is -1;
           backward, dx[p, rows[i], cols[j]] += dout[p, i, j]: each padded pixel's gradient
           goes back to the pixel it copied (a constant's goes nowhere).
Layout:    planes (P, H, W), P = N*C. Every padding mode (zeros, constant, reflect,
           symmetric, replicate, circular) is one index map per axis: padded row i copies
           input row rows[i], and likewise for columns. Python builds the maps
           (minicnn.functional.pad_index: the reference's source_index at every position);
           these loops only follow them, except across the input's own columns, which every
           mode maps to themselves: there a row is a plain copy (or add), which vectorises.
Threads:   prange over planes: no two threads touch one plane.
Sum order: a pixel that several padded pixels copied (reflect, symmetric, replicate,
           circular) receives their gradients on one thread, row by row, left to right: the
           same bits on any thread count.
Must agree with minicnn.reference.padding.pad and pad_backward, value for value (both add a
pixel's copies in row-major order of dout).
"""
from cython cimport floating
from cython.parallel cimport prange


cdef inline void _gather_plane(const floating[:, :, ::1] x,      # IN  (P, H, W)
                               const Py_ssize_t[::1] rows,        # IN  (OH,)
                               const Py_ssize_t[::1] cols,        # IN  (OW,)
                               floating value,
                               floating[:, :, ::1] out,           # OUT (P, OH, OW)
                               Py_ssize_t p, Py_ssize_t left) noexcept nogil:
    cdef Py_ssize_t i, j, si, sj, W = x.shape[2], OW = out.shape[2]
    cdef floating* o
    cdef const floating* src
    for i in range(out.shape[1]):
        si = rows[i]
        o = &out[p, i, 0]
        if si < 0:
            for j in range(OW):
                o[j] = value
            continue
        src = &x[p, si, 0] if W > 0 else NULL   # (an empty row: the map is all fill)
        # the input's own columns are a plain copy in every mode (cols[left + j] == j), so
        # only the padding columns follow the map: the copy vectorises
        for j in range(left):
            sj = cols[j]
            o[j] = value if sj < 0 else src[sj]
        for j in range(W):
            o[left + j] = src[j]
        for j in range(left + W, OW):
            sj = cols[j]
            o[j] = value if sj < 0 else src[sj]


def pad_forward(const floating[:, :, ::1] x, const Py_ssize_t[::1] rows,
                const Py_ssize_t[::1] cols, floating value, floating[:, :, ::1] out,
                Py_ssize_t left, int num_threads):
    """out[p, i, j] = x[p, rows[i], cols[j]], or ``value`` where a map is negative; the
    columns left .. left + W - 1 must map to 0 .. W - 1 (as every padding mode's do)."""
    cdef Py_ssize_t p
    with nogil:
        for p in prange(x.shape[0], schedule="static", num_threads=num_threads):
            _gather_plane(x, rows, cols, value, out, p, left)


cdef inline void _scatter_plane(const floating[:, :, ::1] dout,   # IN  (P, OH, OW)
                                const Py_ssize_t[::1] rows,
                                const Py_ssize_t[::1] cols,
                                floating[:, :, ::1] dx,            # OUT (P, H, W), zeroed
                                Py_ssize_t p, Py_ssize_t left) noexcept nogil:
    cdef Py_ssize_t i, j, si, sj, W = dx.shape[2], OW = dout.shape[2]
    cdef floating* d
    cdef const floating* src
    for i in range(dout.shape[1]):
        si = rows[i]
        if si < 0:
            continue
        if W == 0:                         # nothing to add into (and no row to point at)
            continue
        d = &dx[p, si, 0]
        src = &dout[p, i, 0]
        for j in range(left):              # the padding columns follow the map
            sj = cols[j]
            if sj >= 0:
                d[sj] += src[j]
        for j in range(W):                 # the input's own columns: a vector add
            d[j] += src[left + j]
        for j in range(left + W, OW):
            sj = cols[j]
            if sj >= 0:
                d[sj] += src[j]


def pad_backward(const floating[:, :, ::1] dout, const Py_ssize_t[::1] rows,
                 const Py_ssize_t[::1] cols, floating[:, :, ::1] dx, Py_ssize_t left,
                 int num_threads):
    """dx[p, rows[i], cols[j]] += dout[p, i, j]: each gradient goes back to its source pixel
    (columns left .. left + W - 1 map to 0 .. W - 1, as in pad_forward).

    ``dx`` must be zeroed by the caller. Planes are independent, so threads never
    share an output element, and each plane is summed in a fixed order.
    """
    cdef Py_ssize_t p
    with nogil:
        for p in prange(dout.shape[0], schedule="static", num_threads=num_threads):
            _scatter_plane(dout, rows, cols, dx, p, left)
