"""Convolution kernels: im2col and col2im for the GEMM path, direct loops for depthwise, and
the moves between the GEMM's layout and the images'.

Computes:  the cross-correlation of the notes on an input already padded (minicnn.functional
           pads first, in any mode), so the loops only deal with stride and dilation:
               out[n, o, i, j] = b[o] + sum over c, ki, kj of
                                 xp[n, c, i*sh + ki*dh, j*sw + kj*dw] * w[o, c, ki, kj]
           - im2col copies every window into a column matrix, so the sum becomes one matrix
             product W (O, C*KH*KW) @ cols (minicnn.gemm); col2im is its adjoint, adding each
             column entry back to the pixel it came from (the input gradient's last step);
           - depthwise (groups == C: output channel o reads input channel o // M, M = O / C)
             has too little work per pixel for a GEMM, so it is summed in plain loops;
           - gemm_to_images and images_to_gemm move (O, N, P) <-> (N, O, P), P = OH*OW, and
             fold in the bias and the ReLU of Conv2D(activation='relu').
Layout:    NCHW, C-contiguous; cols (C*KH*KW, N, OH*OW), row r = (c*KH + ki)*KW + kj.
Threads:   prange over independent pieces, so no two threads write one element: im2col over
           rows of cols; col2im, the depthwise forward and input gradient over (image,
           channel) planes; the depthwise weight gradient over output channels.
Sum order: fixed by the loops alone: a plane's adds go tap by tap, row by row; each depthwise
           weight tap is four running sums (columns j mod 4) added as (a0 + a1) + (a2 + a3).
           The same bits on any thread count.
Must agree with minicnn.reference.conv.conv2d_forward and conv2d_backward (with the input
already padded, padding 0; depthwise: groups == C), to rounding: the sums run in another
order.
"""
from cython cimport floating
from cython.parallel cimport prange

# y[j] += a * x[j] over a row, as a C function whose rows are restrict parameters: GCC
# vectorises it without a run-time overlap check (Cython's memoryview indexing with a stride
# variable left the depthwise loops scalar). Each element is still one multiply and one add
# (the module is compiled with -ffp-contract=off): the same bits as the scalar loop.
cdef extern from *:
    """
    static inline void minicnn_axpy_f(float *restrict y, const float *restrict x, float a,
                                      Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) y[j] += a * x[j];
    }
    static inline void minicnn_axpy_d(double *restrict y, const double *restrict x, double a,
                                      Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) y[j] += a * x[j];
    }
    """
    void minicnn_axpy_f(float* y, const float* x, float a, Py_ssize_t n) noexcept nogil
    void minicnn_axpy_d(double* y, const double* x, double a, Py_ssize_t n) noexcept nogil


cdef inline void _axpy(floating* y, const floating* x, floating a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        minicnn_axpy_f(y, x, a, n)
    else:
        minicnn_axpy_d(y, x, a, n)


# --- im2col / col2im ---------------------------------------------------------
# cols has shape (C*KH*KW, N, OH*OW): row r = (c*KH + ki)*KW + kj holds, for every
# image and output pixel, the input value that tap (c, ki, kj) multiplies. The
# forward is then one GEMM  W(O, C*KH*KW) @ cols -> (O, N*OH*OW).

cdef inline void _im2col_row(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
                             Py_ssize_t r, int kh, int kw, int sh, int sw, int dh, int dw,
                             Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t c = r // (kh * kw)
    cdef Py_ssize_t ki = (r // kw) % kh
    cdef Py_ssize_t kj = r % kw
    cdef Py_ssize_t n, i, j, hi, base
    cdef Py_ssize_t oh = cols.shape[2] // ow
    for n in range(x.shape[0]):
        for i in range(oh):
            hi = i * sh + ki * dh
            base = i * ow
            for j in range(ow):
                cols[r, n, base + j] = x[n, c, hi, j * sw + kj * dw]


def im2col(const floating[:, :, :, ::1] x,     # IN  (N, C, Hp, Wp) padded input
           floating[:, :, ::1] cols,           # OUT (C*KH*KW, N, OH*OW)
           int kh, int kw, int sh, int sw, int dh, int dw, Py_ssize_t ow,
           int num_threads):
    cdef Py_ssize_t r
    with nogil:
        for r in prange(cols.shape[0], schedule="static", num_threads=num_threads):
            _im2col_row(x, cols, r, kh, kw, sh, sw, dh, dw, ow)


cdef inline void _col2im_plane(const floating[:, :, ::1] cols, floating[:, :, :, ::1] dx,
                               Py_ssize_t p, int kh, int kw, int sh, int sw, int dh, int dw,
                               Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t C = dx.shape[1]
    cdef Py_ssize_t n = p // C
    cdef Py_ssize_t c = p % C
    cdef Py_ssize_t oh = cols.shape[2] // ow
    cdef Py_ssize_t ki, kj, r, i, j, hi, base
    for ki in range(kh):
        for kj in range(kw):
            r = (c * kh + ki) * kw + kj
            for i in range(oh):
                hi = i * sh + ki * dh
                base = i * ow
                for j in range(ow):
                    dx[n, c, hi, j * sw + kj * dw] += cols[r, n, base + j]


def col2im(const floating[:, :, ::1] cols,     # IN  (C*KH*KW, N, OH*OW)
           floating[:, :, :, ::1] dx,          # OUT (N, C, Hp, Wp), zeroed by the caller
           int kh, int kw, int sh, int sw, int dh, int dw, Py_ssize_t ow,
           int num_threads):
    """The adjoint of im2col: each column entry is added back to its input pixel.

    Parallel over (image, channel) planes, so no two threads write one pixel.
    """
    cdef Py_ssize_t p
    with nogil:
        for p in prange(dx.shape[0] * dx.shape[1], schedule="static", num_threads=num_threads):
            _col2im_plane(cols, dx, p, kh, kw, sh, sw, dh, dw, ow)


# --- depthwise (groups == in_channels) -----------------------------------------
# Output channel o reads input channel o // M, where M = out_channels / in_channels.

cdef inline void _dw_forward_plane(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                                   const floating[::1] b, floating[:, :, :, ::1] out,
                                   Py_ssize_t p, int sh, int sw, int dh, int dw) noexcept nogil:
    cdef Py_ssize_t O = out.shape[1]
    cdef Py_ssize_t n = p // O
    cdef Py_ssize_t o = p % O
    cdef Py_ssize_t c = o // (O // x.shape[1])
    cdef Py_ssize_t i, j, ki, kj, hi, wj
    cdef floating wv
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[n, o, i, j] = b[o]
    for ki in range(w.shape[2]):
        for kj in range(w.shape[3]):
            wv = w[o, 0, ki, kj]
            wj = kj * dw
            for i in range(out.shape[2]):
                hi = i * sh + ki * dh
                if sw == 1 and out.shape[3] > 0:
                    _axpy(&out[n, o, i, 0], &x[n, c, hi, wj], wv, out.shape[3])
                    continue
                for j in range(out.shape[3]):
                    out[n, o, i, j] += wv * x[n, c, hi, j * sw + wj]


def depthwise_forward(const floating[:, :, :, ::1] x,   # IN  (N, C, Hp, Wp) padded
                      const floating[:, :, :, ::1] w,   # IN  (O, 1, KH, KW), O = C*M
                      const floating[::1] b,            # IN  (O,) (zeros when no bias)
                      floating[:, :, :, ::1] out,       # OUT (N, O, OH, OW)
                      int sh, int sw, int dh, int dw, int num_threads):
    cdef Py_ssize_t p
    with nogil:
        for p in prange(out.shape[0] * out.shape[1], schedule="static", num_threads=num_threads):
            _dw_forward_plane(x, w, b, out, p, sh, sw, dh, dw)


cdef inline void _dw_dx_plane(const floating[:, :, :, ::1] dout, const floating[:, :, :, ::1] w,
                              floating[:, :, :, ::1] dx, Py_ssize_t p,
                              int sh, int sw, int dh, int dw) noexcept nogil:
    cdef Py_ssize_t C = dx.shape[1]
    cdef Py_ssize_t M = dout.shape[1] // C
    cdef Py_ssize_t n = p // C
    cdef Py_ssize_t c = p % C
    cdef Py_ssize_t q, o, i, j, ki, kj, hi, wj
    cdef floating wv
    for q in range(M):
        o = c * M + q
        for ki in range(w.shape[2]):
            for kj in range(w.shape[3]):
                wv = w[o, 0, ki, kj]
                wj = kj * dw
                for i in range(dout.shape[2]):
                    hi = i * sh + ki * dh
                    if sw == 1 and dout.shape[3] > 0:
                        _axpy(&dx[n, c, hi, wj], &dout[n, o, i, 0], wv, dout.shape[3])
                        continue
                    for j in range(dout.shape[3]):
                        dx[n, c, hi, j * sw + wj] += wv * dout[n, o, i, j]


def depthwise_backward_input(const floating[:, :, :, ::1] dout,  # IN  (N, O, OH, OW)
                             const floating[:, :, :, ::1] w,     # IN  (O, 1, KH, KW)
                             floating[:, :, :, ::1] dx,          # OUT (N, C, Hp, Wp), zeroed
                             int sh, int sw, int dh, int dw, int num_threads):
    cdef Py_ssize_t p
    with nogil:
        for p in prange(dx.shape[0] * dx.shape[1], schedule="static", num_threads=num_threads):
            _dw_dx_plane(dout, w, dx, p, sh, sw, dh, dw)


cdef inline floating _dw_tap(const floating[:, :, :, ::1] dout, const floating[:, :, :, ::1] x,
                             Py_ssize_t o, Py_ssize_t c, Py_ssize_t ki, Py_ssize_t kj,
                             int sh, int sw, int dh, int dw) noexcept nogil:
    # Four running sums (columns j = 0, 1, 2, 3 mod 4) added together at the end: a fixed
    # order, so the result never depends on threads, and four independent additions in
    # flight instead of one chain that waits on each add's latency.
    cdef floating a0 = 0, a1 = 0, a2 = 0, a3 = 0
    cdef Py_ssize_t n, i, j, hi, wj = kj * dw
    cdef Py_ssize_t OW = dout.shape[3]
    cdef Py_ssize_t OW4 = OW - OW % 4
    for n in range(dout.shape[0]):
        for i in range(dout.shape[2]):
            hi = i * sh + ki * dh
            for j in range(0, OW4, 4):
                a0 = a0 + dout[n, o, i, j] * x[n, c, hi, j * sw + wj]
                a1 = a1 + dout[n, o, i, j + 1] * x[n, c, hi, (j + 1) * sw + wj]
                a2 = a2 + dout[n, o, i, j + 2] * x[n, c, hi, (j + 2) * sw + wj]
                a3 = a3 + dout[n, o, i, j + 3] * x[n, c, hi, (j + 3) * sw + wj]
            for j in range(OW4, OW):
                a0 = a0 + dout[n, o, i, j] * x[n, c, hi, j * sw + wj]
    return (a0 + a1) + (a2 + a3)


def depthwise_backward_weight(const floating[:, :, :, ::1] dout,  # IN  (N, O, OH, OW)
                              const floating[:, :, :, ::1] x,     # IN  (N, C, Hp, Wp) padded
                              floating[:, :, :, ::1] dw_out,      # OUT (O, 1, KH, KW)
                              int sh, int sw, int dh, int dw, int num_threads):
    """Parallel over output channels; each tap is one sum in a fixed order."""
    cdef Py_ssize_t O = dout.shape[1]
    cdef Py_ssize_t M = O // x.shape[1]
    cdef Py_ssize_t o, ki, kj
    with nogil:
        for o in prange(O, schedule="static", num_threads=num_threads):
            for ki in range(dw_out.shape[2]):
                for kj in range(dw_out.shape[3]):
                    dw_out[o, 0, ki, kj] = _dw_tap(dout, x, o, o // M, ki, kj, sh, sw, dh, dw)


# --- between the GEMM's layout and the images' ------------------------------
# The GEMM produces (O, N, OH*OW); layers take and give (N, O, OH*OW). These two
# passes move one (image, channel) row at a time, and fold in the bias and an optional
# ReLU (Conv2D(activation='relu')), so the activation costs no pass of its own.

def gemm_to_images(const floating[:, :, ::1] g,    # IN  (O, N, P) the GEMM's output
                   const floating[::1] bias,       # IN  (O,)
                   floating[:, :, ::1] out,        # OUT (N, O, P)
                   bint relu, int num_threads):
    """out[n, o, p] = g[o, n, p] + bias[o], then max(., 0) when ``relu`` (NaN stays NaN)."""
    cdef Py_ssize_t row, n, o, p
    cdef Py_ssize_t N = out.shape[0], O = out.shape[1], P = out.shape[2]
    cdef floating v
    with nogil:
        for row in prange(N * O, schedule="static", num_threads=num_threads):
            n = row // O
            o = row % O
            if relu:
                for p in range(P):
                    v = g[o, n, p] + bias[o]
                    out[n, o, p] = 0 if v <= 0 else v
            else:
                for p in range(P):
                    out[n, o, p] = g[o, n, p] + bias[o]


def images_to_gemm(const floating[:, :, ::1] dout,  # IN  (N, O, P) gradient of the output
                   const floating[:, :, ::1] out,   # IN  (N, O, P) the output (read if relu)
                   floating[:, :, ::1] dout_t,      # OUT (O, N, P)
                   bint relu, int num_threads):
    """dout_t[o, n, p] = dout[n, o, p], times the ReLU's gate (out > 0) when ``relu``."""
    cdef Py_ssize_t row, n, o, p
    cdef Py_ssize_t N = dout.shape[0], O = dout.shape[1], P = dout.shape[2]
    cdef floating d
    with nogil:
        for row in prange(N * O, schedule="static", num_threads=num_threads):
            n = row // O
            o = row % O
            if relu:
                for p in range(P):
                    d = dout[n, o, p]     # loaded unconditionally, so the select vectorises
                    dout_t[o, n, p] = d if out[n, o, p] > 0 else 0
            else:
                for p in range(P):
                    dout_t[o, n, p] = dout[n, o, p]
