# A convolution's matrix products one image at a time, each image on one thread, fused with
# the passes around them: included by gemm_<isa>.pyx after gemm.pxi (it calls _gemm_part).
#
# Computes:  the im2col + GEMM convolution of the notes, per image n (P = OH*OW pixels):
#                forward  out[n] (O, P) = W (O, C*KH*KW) @ cols_n (C*KH*KW, P) + b, then ReLU
#                input    dx[n] = col2im(W^T @ dout[n])
#                weight   dW = sum over n of dout[n] (O, P) @ cols_n^T (P, C*KH*KW)
#            where cols_n is image n's column matrix: row r = (c*KH + ki)*KW + kj holds, for
#            every output pixel, the input pixel that tap (c, ki, kj) multiplies.
# Layout:    x (N, C, Hp, Wp) already padded, NCHW. The whole-batch path (minicnn.functional)
#            writes the column matrix (C*KH*KW, N, P) to memory, the GEMM reads it back, and
#            the (O, N, P) product is then moved to (N, O, P). Per image, W @ cols_n *is*
#            out[n] in NCHW, and cols_n fits in L2, so GEMM and col2im read it from cache.
#            The weight gradient makes each image's columns again from the padded input
#            rather than keeping the whole column matrix from the forward pass (42 MB for
#            convnet's 32->64 layer at batch 64): an im2col of one image costs less than
#            streaming its share of that matrix from memory twice.
# Threads:   prange over images for the forward pass and the input gradient; for the weight
#            gradient, over runs of images (their number fixed by the caller from the batch
#            size), each run summed into its own partial dW.
# Sum order: each image's product sums in the GEMM's fixed order (gemm.pxi); a run adds its
#            images in order, and the partials are added in run order (_add_partials). The
#            cut into runs follows the shape, never the thread count: the same bits on any.
# Must agree with minicnn.reference.conv.conv2d_forward (activation None or 'relu') and
#            conv2d_backward, groups 1, input already padded, to float32 rounding.

cdef void _im2col_image(const float[:, :, :, ::1] x, Py_ssize_t n, float* dst, Py_ssize_t rs,
                        int kh, int kw, int sh, int sw, int dh, int dw,
                        Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """Image n's columns: dst[r * rs + i * ow + j] = x[n, c, i*sh + ki*dh, j*sw + kj*dw]."""
    cdef Py_ssize_t r, c, ki, kj, i, j
    cdef const float* src
    cdef float* d
    for r in range(x.shape[1] * kh * kw):
        c = r // (kh * kw)
        ki = (r // kw) % kh
        kj = r % kw
        for i in range(oh):
            src = &x[n, c, i * sh + ki * dh, kj * dw]
            d = dst + r * rs + i * ow
            if sw == 1:
                for j in range(ow):
                    d[j] = src[j]
            else:
                for j in range(ow):
                    d[j] = src[j * sw]


cdef inline void _bias_relu(const float* src, float* dst, Py_ssize_t n, float b,
                           bint relu) noexcept nogil:
    """dst[:n] = src[:n] + b, then max(., 0) when ``relu`` (NaN stays NaN, as the ReLU
    kernel); src may be dst. The epilogue of the image and direct convolutions."""
    cdef Py_ssize_t p
    cdef float v
    if relu:
        for p in range(n):
            v = src[p] + b
            dst[p] = 0 if v <= 0 else v
    else:
        for p in range(n):
            dst[p] = src[p] + b


def conv_forward(const float[:, ::1] w,          # IN  (O, C*KH*KW)
                 const float[:, :, :, ::1] x,    # IN  (N, C, Hp, Wp) padded input
                 const float[::1] b,             # IN  (O,) bias (zeros for none)
                 float[:, :, ::1] out,           # OUT (N, O, P)
                 float[:, :, ::1] cbuf,          # scratch (threads, C*KH*KW, P)
                 float[:, ::1] work,             # scratch (threads, workspace_size())
                 bint relu, int kh, int kw, int sh, int sw, int dh, int dw, Py_ssize_t ow,
                 int num_threads):
    """out[n] = max?(w @ columns of x[n] + b): im2col, GEMM, bias and ReLU, image by image."""
    cdef Py_ssize_t N = x.shape[0], O = w.shape[0], K = w.shape[1], P = out.shape[2]
    cdef Py_ssize_t oh, n, o, p, t
    cdef float* cp
    if N == 0 or O == 0 or P == 0 or K == 0:      # minicnn.gemm never sends these
        return
    oh = P // ow
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            cp = &cbuf[t, 0, 0]
            _im2col_image(x, n, cp, P, kh, kw, sh, sw, dh, dw, oh, ow)
            _gemm_part(&w[0, 0], K, 1, cp, P, 1, &out[n, 0, 0], P, O, 0, K, 0, P, &work[t, 0],
                       False)
            for o in range(O):
                _bias_relu(&out[n, o, 0], &out[n, o, 0], P, b[o], relu)


def conv_backward_input(const float[:, ::1] w,        # IN  (O, C*KH*KW)
                        const float[:, :, ::1] dout_t,  # IN  (O, N, P)
                        float[:, :, :, ::1] dx,         # OUT (N, C, Hp, Wp), zeroed by the caller
                        float[:, :, ::1] cbuf,          # scratch (threads, C*KH*KW, P)
                        float[:, ::1] work,             # scratch (threads, workspace_size())
                        int kh, int kw, int sh, int sw, int dh, int dw, Py_ssize_t ow,
                        int num_threads):
    """dx[n] = col2im(w^T @ dout_t[:, n, :]), image by image; the columns stay in cache."""
    cdef Py_ssize_t N = dx.shape[0], O = w.shape[0], K = w.shape[1]
    cdef Py_ssize_t P = dout_t.shape[2]
    cdef Py_ssize_t oh, n, t, r, c, ki, kj, i, j
    cdef float* cp
    cdef float* d
    if N == 0 or P == 0 or O == 0 or K == 0:      # minicnn.gemm never sends these
        return
    oh = P // ow
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            t = threadid()
            cp = &cbuf[t, 0, 0]
            _gemm_part(&w[0, 0], 1, K, &dout_t[0, n, 0], N * P, 1, cp, P, K, 0, O, 0, P,
                       &work[t, 0], False)
            for r in range(K):
                c = r // (kh * kw)
                ki = (r // kw) % kh
                kj = r % kw
                for i in range(oh):
                    d = &dx[n, c, i * sh + ki * dh, kj * dw]
                    for j in range(ow):
                        d[j * sw] += cp[r * P + i * ow + j]


def conv_backward_weight(const float[:, :, ::1] dout_t,  # IN  (O, N, P)
                         const float[:, :, :, ::1] x,    # IN  (N, C, Hp, Wp) padded input
                         float[:, ::1] dw,               # OUT (O, C*KH*KW)
                         float[:, :, ::1] partial,       # scratch (runs - 1, O, C*KH*KW)
                         float[:, :, ::1] cbuf,          # scratch (threads, C*KH*KW, P)
                         float[:, ::1] work,             # scratch (threads, workspace_size())
                         int kh, int kw, int sh, int sw, int dh, int dw_, Py_ssize_t ow,
                         int runs, int num_threads):
    """dw = sum over images of dout_t[:, n, :] @ columns(x[n])^T, the columns made again per
    image in cache instead of kept from the forward pass. The images are cut into ``runs``
    runs (1 <= runs <= N, fixed by the caller from the shape); a thread sums a run's images
    in order into dw (run 0) or its partial, and the partials are added in run order: the
    same bits for any thread count."""
    cdef Py_ssize_t N = x.shape[0], O = dw.shape[0], K = dw.shape[1], P = dout_t.shape[2]
    cdef Py_ssize_t oh, q, n, n0, n1, t
    cdef float* cp
    cdef float* dst
    if O == 0 or K == 0:
        return
    if N == 0 or P == 0:
        memset(&dw[0, 0], 0, O * K * sizeof(float))
        return
    oh = P // ow
    with nogil:
        for q in prange(runs, schedule="static", num_threads=num_threads):
            t = threadid()
            cp = &cbuf[t, 0, 0]
            dst = &dw[0, 0] if q == 0 else &partial[q - 1, 0, 0]
            n0 = N * q // runs
            n1 = N * (q + 1) // runs
            if n1 == n0:
                memset(dst, 0, O * K * sizeof(float))
            for n in range(n0, n1):
                _im2col_image(x, n, cp, P, kh, kw, sh, sw, dh, dw_, oh, ow)
                # (O x P) @ (P x K): the columns read transposed, strides (1, P)
                _gemm_part(&dout_t[0, n, 0], N * P, 1, cp, 1, P, dst, K, O, 0, P, 0, K,
                           &work[t, 0], n > n0)
        _add_partials(dw, partial, runs - 1, num_threads)
