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


# The backward's per-row loops as C on restrict rows. The two sums keep eight partial sums
# each in GCC/Clang vector types (two vectors of four floats, or four of two doubles), so
# they stay in vector registers on any target; written as scalars, or as an array, GCC left
# the accumulators scalar. Each element is one add, one subtract and one multiply (the
# module is compiled with -ffp-contract=off), the lanes summed in a fixed order at the end.
cdef extern from *:
    """
    #include <string.h>
    typedef float minicnn_f4 __attribute__((vector_size(16)));
    typedef double minicnn_d2 __attribute__((vector_size(16)));

    static inline void minicnn_bn_sums_f(const float *restrict dy, const float *restrict x,
                                         float m, Py_ssize_t n, double *s1, double *s2) {
        minicnn_f4 a0 = {0}, a1 = {0}, q0 = {0}, q1 = {0}, d0, d1, x0, x1;
        minicnn_f4 vm = {m, m, m, m};
        Py_ssize_t l = 0;
        for (; l + 8 <= n; l += 8) {
            memcpy(&d0, dy + l, 16); memcpy(&d1, dy + l + 4, 16);
            memcpy(&x0, x + l, 16);  memcpy(&x1, x + l + 4, 16);
            a0 += d0; a1 += d1;
            q0 += d0 * (x0 - vm); q1 += d1 * (x1 - vm);
        }
        for (; l < n; l++) {
            a0[0] += dy[l];
            q0[0] += dy[l] * (x[l] - m);
        }
        *s1 += ((double)a0[0] + a0[1] + a0[2] + a0[3]) + ((double)a1[0] + a1[1] + a1[2] + a1[3]);
        *s2 += ((double)q0[0] + q0[1] + q0[2] + q0[3]) + ((double)q1[0] + q1[1] + q1[2] + q1[3]);
    }

    static inline void minicnn_bn_sums_d(const double *restrict dy, const double *restrict x,
                                         double m, Py_ssize_t n, double *s1, double *s2) {
        minicnn_d2 a[4] = {{0}}, q[4] = {{0}}, d, xv;
        minicnn_d2 vm = {m, m};
        Py_ssize_t l = 0;
        for (; l + 8 <= n; l += 8)
            for (int k = 0; k < 4; k++) {
                memcpy(&d, dy + l + 2 * k, 16); memcpy(&xv, x + l + 2 * k, 16);
                a[k] += d;
                q[k] += d * (xv - vm);
            }
        for (; l < n; l++) {
            a[0][0] += dy[l];
            q[0][0] += dy[l] * (x[l] - m);
        }
        *s1 += ((a[0][0] + a[0][1]) + (a[1][0] + a[1][1])) + ((a[2][0] + a[2][1]) + (a[3][0] + a[3][1]));
        *s2 += ((q[0][0] + q[0][1]) + (q[1][0] + q[1][1])) + ((q[2][0] + q[2][1]) + (q[3][0] + q[3][1]));
    }

    #define MINICNN_BN_DX(NAME, T)                                                           \
    static inline void NAME(const T *restrict dy, const T *restrict x, T *restrict dx,    \
                            T m, T a, T b, T k, Py_ssize_t n) {                             \
        for (Py_ssize_t l = 0; l < n; l++) dx[l] = dy[l] * a + (x[l] - m) * b + k;          \
    }
    MINICNN_BN_DX(minicnn_bn_dx_f, float)
    MINICNN_BN_DX(minicnn_bn_dx_d, double)
    """
    void minicnn_bn_sums_f(const float* dy, const float* x, float m, Py_ssize_t n,
                           double* s1, double* s2) noexcept nogil
    void minicnn_bn_sums_d(const double* dy, const double* x, double m, Py_ssize_t n,
                           double* s1, double* s2) noexcept nogil
    void minicnn_bn_dx_f(const float* dy, const float* x, float* dx, float m, float a,
                         float b, float k, Py_ssize_t n) noexcept nogil
    void minicnn_bn_dx_d(const double* dy, const double* x, double* dx, double m, double a,
                         double b, double k, Py_ssize_t n) noexcept nogil


cdef inline void _grad_sums(const floating* dy, const floating* xr, Py_ssize_t L, floating m,
                            double* s1, double* s2) noexcept nogil:
    """s1 += sum(dy), s2 += sum(dy * (x - m)): eight partial sums each in the input's type
    over the row, added into the float64 totals at the end of the row."""
    if floating is float:
        minicnn_bn_sums_f(dy, xr, m, L, s1, s2)
    else:
        minicnn_bn_sums_d(dy, xr, m, L, s1, s2)


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
                if floating is float:
                    minicnn_bn_dx_f(&dout[n, c, 0], &x[n, c, 0], &dx[n, c, 0], m, a, b, k, L)
                else:
                    minicnn_bn_dx_d(&dout[n, c, 0], &x[n, c, 0], &dx[n, c, 0], m, a, b, k, L)
