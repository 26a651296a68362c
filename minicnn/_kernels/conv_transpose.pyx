"""Transposed-convolution kernels: the column moves of conv.pyx with the padding cut away
inside the loops, so that neither direction needs a padded copy of the output.

Computes:  with the GEMM's columns cols = w^T @ x, laid out as conv.pyx's im2col rows
           (row r = (c*KH + ki)*KW + kj, one column per input pixel (n, i, j)):
           - scatter_columns (the forward's last step, col2im onto the cropped output):
                 out[n, c, y, z] = b[c] + sum of cols[r, n, i*W + j] over the taps and input
                 pixels with y = i*sh + ki*dh - ph and z = j*sw + kj*dw - pw;
             positions outside (0 <= y < OH, 0 <= z < OW) fall in the padding and are dropped;
           - gather_columns (the backward's first step, im2col of dout):
                 cols[r, n, i*W + j] = dout[n, c, i*sh + ki*dh - ph, j*sw + kj*dw - pw],
                 0 where that position lies outside dout.
           For each tap, the rows i and columns j that land inside are one range, found
           once per tap (``_inside``), so the inner loops have no test.
Layout:    NCHW, C-contiguous; cols (C*KH*KW, N, H*W), (H, W) the input's size.
Threads:   prange over (image, channel) planes for the scatter (no two threads write one
           pixel) and over rows of cols for the gather.
Sum order: a plane starts from the bias, then adds tap by tap, row by row: fixed by the loops
           alone, the same bits on any thread count.
Must agree with minicnn.reference.conv_transpose (the same values up to the order of the
sums).
"""
from cython cimport floating
from cython.parallel cimport prange


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a (C's division truncates towards zero)."""
    if a >= 0:
        return (a + b - 1) // b
    return -((-a) // b)


cdef inline void _inside(Py_ssize_t offset, Py_ssize_t step, Py_ssize_t count,
                         Py_ssize_t size, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi): the i in [0, count) with 0 <= i*step + offset < size (empty: lo == hi)."""
    lo[0] = _ceil_div(-offset, step)
    if lo[0] < 0:
        lo[0] = 0
    hi[0] = _ceil_div(size - offset, step)
    if hi[0] > count:
        hi[0] = count
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef inline void _scatter_plane(const floating[:, :, ::1] cols, const floating[::1] bias,
                                floating[:, :, :, ::1] out, Py_ssize_t p, int kh, int kw,
                                int sh, int sw, int dh, int dw, int ph, int pw,
                                Py_ssize_t w_in) noexcept nogil:
    cdef Py_ssize_t C = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t n = p // C
    cdef Py_ssize_t c = p % C
    cdef Py_ssize_t h_in = cols.shape[2] // w_in
    cdef Py_ssize_t ki, kj, r, i, j, y, i0, i1, j0, j1, zoff
    cdef floating* dst
    cdef const floating* src
    cdef floating b = bias[c]
    for y in range(OH):
        for j in range(OW):
            out[n, c, y, j] = b
    for ki in range(kh):
        _inside(ki * dh - ph, sh, h_in, OH, &i0, &i1)
        for kj in range(kw):
            _inside(kj * dw - pw, sw, w_in, OW, &j0, &j1)
            r = (c * kh + ki) * kw + kj
            zoff = kj * dw - pw
            for i in range(i0, i1):
                dst = &out[n, c, i * sh + ki * dh - ph, 0]
                src = &cols[r, n, i * w_in]
                for j in range(j0, j1):
                    dst[j * sw + zoff] += src[j]


def scatter_columns(const floating[:, :, ::1] cols,   # IN  (C*KH*KW, N, H*W)
                    const floating[::1] bias,         # IN  (C,)
                    floating[:, :, :, ::1] out,       # OUT (N, C, OH, OW), all written
                    int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw,
                    Py_ssize_t w_in, int num_threads):
    """out = bias + the columns added onto their output pixels, padding cut away."""
    cdef Py_ssize_t p
    with nogil:
        for p in prange(out.shape[0] * out.shape[1], schedule="static",
                        num_threads=num_threads):
            _scatter_plane(cols, bias, out, p, kh, kw, sh, sw, dh, dw, ph, pw, w_in)


cdef inline void _gather_row(const floating[:, :, :, ::1] dout, floating[:, :, ::1] cols,
                             Py_ssize_t r, int kh, int kw, int sh, int sw, int dh, int dw,
                             int ph, int pw, Py_ssize_t w_in) noexcept nogil:
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3]
    cdef Py_ssize_t c = r // (kh * kw)
    cdef Py_ssize_t ki = (r // kw) % kh
    cdef Py_ssize_t kj = r % kw
    cdef Py_ssize_t h_in = cols.shape[2] // w_in
    cdef Py_ssize_t n, i, j, i0, i1, j0, j1
    cdef Py_ssize_t zoff = kj * dw - pw
    cdef floating* dst
    cdef const floating* src
    _inside(ki * dh - ph, sh, h_in, OH, &i0, &i1)
    _inside(zoff, sw, w_in, OW, &j0, &j1)
    for n in range(dout.shape[0]):
        for i in range(h_in):
            dst = &cols[r, n, i * w_in]
            if i < i0 or i >= i1:
                for j in range(w_in):
                    dst[j] = 0
                continue
            src = &dout[n, c, i * sh + ki * dh - ph, 0]
            for j in range(j0):
                dst[j] = 0
            for j in range(j0, j1):
                dst[j] = src[j * sw + zoff]
            for j in range(j1, w_in):
                dst[j] = 0


def gather_columns(const floating[:, :, :, ::1] dout,  # IN  (N, C, OH, OW)
                   floating[:, :, ::1] cols,           # OUT (C*KH*KW, N, H*W), all written
                   int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw,
                   Py_ssize_t w_in, int num_threads):
    """cols = dout's windows, one row per tap, zero where a window leaves dout."""
    cdef Py_ssize_t r
    with nogil:
        for r in prange(cols.shape[0], schedule="static", num_threads=num_threads):
            _gather_row(dout, cols, r, kh, kw, sh, sw, dh, dw, ph, pw, w_in)
