"""Batch normalisation, forward and backward, per channel of an (N, C, L) array.

Computes:  statistics: mean[c] and the biased variance var[c] of x[:, c, :] (M = N * L values);
           normalise:  out = (x - mean[c]) * scale[c] + shift[c] (scale = weight * invstd, the
           caller folds weight, bias and the statistics into scale and shift);
           backward:   with s1 = sum(dout), s2 = sum(dout * (x - mean)) over a channel,
                       dbias = s1, dweight = s2 * invstd, and
                       dx = dout * a + (x - mean) * b + k, where a = weight * invstd and, for
                       batch statistics, b = -a * invstd**2 * s2 / M, k = -a * s1 / M
                       (for fixed statistics, b = k = 0).
Layout:    (N, C, L), C-contiguous: an image's channel is a contiguous row of L = H * W values;
           a channel's M values are N such rows.
Threads:   prange over the channels (each channel's sums on one thread, in a fixed order).
Sum order: over n then l. Statistics: in float64, four partial sums per quantity
           (positions l mod 4) added at the end of each row. Backward: eight partial sums
           (l mod 8) in the input's type within a row (so they fill vector registers),
           added into float64 totals at the end of each row. Any thread count gives the
           same bits.
           The statistics pass sums x - x[0, c, 0] and its square (a shift that keeps the
           one-pass variance from cancelling when the mean is large beside the spread).
Must agree with minicnn.reference.norm (the same values up to the order of the sums).
"""
from cython cimport floating
from cython.parallel cimport prange


cdef inline void _row_sums(const floating* row, Py_ssize_t L, double shift,
                           double* s1, double* s2) noexcept nogil:
    """s1 += sum(row - shift), s2 += sum((row - shift)**2), four partial sums each."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0
    cdef double d0, d1, d2, d3
    cdef Py_ssize_t l = 0
    while l + 4 <= L:
        d0 = row[l] - shift
        d1 = row[l + 1] - shift
        d2 = row[l + 2] - shift
        d3 = row[l + 3] - shift
        a0 += d0
        a1 += d1
        a2 += d2
        a3 += d3
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
        l += 4
    while l < L:
        d0 = row[l] - shift
        a0 += d0
        q0 += d0 * d0
        l += 1
    s1[0] += (a0 + a1) + (a2 + a3)
    s2[0] += (q0 + q1) + (q2 + q3)


def batch_stats(const floating[:, :, ::1] x,   # IN  (N, C, L), N * L >= 1
                double[::1] mean,              # OUT (C,)
                double[::1] var,               # OUT (C,) biased variance
                int num_threads):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], n, c
    cdef double shift, s1, s2, m
    cdef double M = <double>(N * L)
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            shift = x[0, c, 0]
            s1 = 0
            s2 = 0
            for n in range(N):
                _row_sums(&x[n, c, 0], L, shift, &s1, &s2)
            m = s1 / M
            mean[c] = shift + m
            var[c] = s2 / M - m * m
            if var[c] < 0:          # rounding, with every value equal
                var[c] = 0


def normalize(const floating[:, :, ::1] x,     # IN  (N, C, L)
              const double[::1] mean,          # IN  (C,)
              const double[::1] scale,         # IN  (C,) weight * invstd
              const double[::1] shift,         # IN  (C,) bias
              floating[:, :, ::1] out,         # OUT (N, C, L)
              int num_threads):
    """out = (x - mean) * scale + shift, per channel."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], n, c, l
    cdef floating m, a, b
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            m = <floating>mean[c]
            a = <floating>scale[c]
            b = <floating>shift[c]
            for n in range(N):
                for l in range(L):
                    out[n, c, l] = (x[n, c, l] - m) * a + b


cdef inline void _grad_sums(const floating* dy, const floating* xr, Py_ssize_t L, floating m,
                            double* s1, double* s2) noexcept nogil:
    """s1 += sum(dy), s2 += sum(dy * (x - m)): eight partial sums each in the input's type
    over the row (lanes the compiler turns into vector registers), added into the float64
    totals at the end of the row."""
    cdef floating a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef floating q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0
    cdef Py_ssize_t l = 0
    while l + 8 <= L:
        a0 = a0 + dy[l]
        a1 = a1 + dy[l + 1]
        a2 = a2 + dy[l + 2]
        a3 = a3 + dy[l + 3]
        a4 = a4 + dy[l + 4]
        a5 = a5 + dy[l + 5]
        a6 = a6 + dy[l + 6]
        a7 = a7 + dy[l + 7]
        q0 = q0 + dy[l] * (xr[l] - m)
        q1 = q1 + dy[l + 1] * (xr[l + 1] - m)
        q2 = q2 + dy[l + 2] * (xr[l + 2] - m)
        q3 = q3 + dy[l + 3] * (xr[l + 3] - m)
        q4 = q4 + dy[l + 4] * (xr[l + 4] - m)
        q5 = q5 + dy[l + 5] * (xr[l + 5] - m)
        q6 = q6 + dy[l + 6] * (xr[l + 6] - m)
        q7 = q7 + dy[l + 7] * (xr[l + 7] - m)
        l += 8
    while l < L:
        a0 = a0 + dy[l]
        q0 = q0 + dy[l] * (xr[l] - m)
        l += 1
    s1[0] += (<double>a0 + a1 + a2 + a3) + (<double>a4 + a5 + a6 + a7)
    s2[0] += (<double>q0 + q1 + q2 + q3) + (<double>q4 + q5 + q6 + q7)


def backward(const floating[:, :, ::1] dout,   # IN  (N, C, L)
             const floating[:, :, ::1] x,      # IN  (N, C, L), the forward's input
             const double[::1] mean,           # IN  (C,) the statistics the forward used
             const double[::1] invstd,         # IN  (C,) 1 / sqrt(var + eps)
             const double[::1] weight,         # IN  (C,) ones without affine
             bint batch_statistics,            # IN  mean and invstd came from this batch
             bint need_dx,
             floating[:, :, ::1] dx,           # OUT (N, C, L) (untouched without need_dx)
             double[::1] dweight,              # OUT (C,)
             double[::1] dbias,                # OUT (C,)
             int num_threads):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], n, c, l
    cdef double s1, s2, a_d, b_d, k_d
    cdef double M = <double>(N * L)
    cdef floating m, a, b, k
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            s1 = 0
            s2 = 0
            for n in range(N):
                _grad_sums(&dout[n, c, 0], &x[n, c, 0], L, <floating>mean[c], &s1, &s2)
            dbias[c] = s1
            dweight[c] = s2 * invstd[c]
            if not need_dx:
                continue
            a_d = weight[c] * invstd[c]
            b_d = 0
            k_d = 0
            if batch_statistics:
                b_d = -a_d * invstd[c] * invstd[c] * s2 / M
                k_d = -a_d * s1 / M
            m = <floating>mean[c]
            a = <floating>a_d
            b = <floating>b_d
            k = <floating>k_d
            for n in range(N):
                for l in range(L):
                    dx[n, c, l] = dout[n, c, l] * a + (x[n, c, l] - m) * b + k
