# Winograd F(2x2, 3x3) convolutions (3x3 kernel, stride 1, no dilation, groups 1): included
# by gemm_<isa>.pyx after gemm.pxi (it uses the register tile MR x NR and the vector
# length VL). minicnn/functional/conv_winograd.py explains the method at more length.
#
# Computes:  the convolution of the notes, output tile by output tile. The output is cut
#            into 2 x 2 tiles; tile (ty, tx) reads the 4 x 4 input patch d at (2ty, 2tx), and
#            for one pair of channels
#                y (2 x 2) = A^T [ (G g G^T) * (B^T d B) ] A            (* elementwise)
#            with g the 3 x 3 kernel and
#                B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
#                      [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
#                      [0 -1  1  0]         [1/2 -1/2  1/2]
#                      [0  1  0 -1]         [ 0    0    1 ]
#            16 multiplications per tile instead of 36. Summed over input channels, each of
#            the 16 positions xi of the transformed 4 x 4 tile is a matrix product:
#                M[xi] (tiles x O) = V[xi] (tiles x C) @ U[xi]^T (C x O)
#            with V = B^T d B (the input) and U = G g G^T (the weight, once per call:
#            wino_panels): 1/2.25 of the direct GEMM's multiply-adds, plus the transforms,
#            which are additions only.
#            The weight gradient reads the same identity for g:
#                dg = G^T [ sum over tiles (A dy A^T) * (B^T d B) ] G
#            sixteen products dU[xi] (O x C) += Y[xi]^T (O x tiles) @ X[xi] (tiles x C), with
#            Y = A dy A^T the output gradient's transformed tiles (wino_weight_grad then
#            applies G^T . G). The input gradient is this file's forward pass run on the
#            output gradient padded by 2, with the kernel rotated and its channels swapped (a
#            full correlation), in the same pass over each image.
# Layout:    the transforms are vectorised over channels, so each image is first copied
#            channels-last (pixel (i, j) of channel c at (i * wb + j) * cp + c, cp channels
#            rounded up to NR); a transformed tile is then a row of cp floats, and V's rows are
#            the A operand of the micro kernel read in place (rows cp apart). (Vectorising
#            over a tile row instead, 12 tiles for a 24-wide output, left the transforms as
#            slow as the products.) Tiles go in blocks of at most WB_FLOATS of transformed
#            data, so a block's V and M stay in L2.
# Threads:   forward, prange over images; backward, over runs of images (their number fixed
#            by the caller from the batch size), each run with its own dU and bias sums.
# Sum order: an image's sums follow its tiles, blocks and channels in a fixed order; the runs'
#            dU and bias sums are added in run order, in double (wino_weight_grad, and the
#            caller for the bias). The same bits on any thread count.
# Must agree with minicnn.reference.conv.conv2d_forward and conv2d_backward (3x3, stride 1,
#            groups 1, input already padded), to a few units in the last place of float32
#            more than the direct sum: the transforms add up to nine inputs before a
#            multiplication. An infinite input can come out NaN where the direct sum gives
#            an infinity: these kernels report it, and the caller redoes the pass directly.

cdef extern from *:
    # restrict-qualified pointers, for parameters: the transforms read and write 16 or more
    # streams, past what GCC 12 versions a loop for aliasing (scalar without these; as
    # locals, which Cython declares at function scope, GCC ignored the qualifier)
    ctypedef float* rfloat "float *__restrict__"
    ctypedef const float* rcfloat "const float *__restrict__"

cdef enum:
    WB_FLOATS = 65536   # floats of V and M per block of tiles (256 KB)
    SKEW = 16           # floats added to the stride between the 16 transformed planes: at
                        # a multiple of 4 KB all 16 streams fall in one L1 set


cdef inline Py_ssize_t _up(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b * b


cdef inline Py_ssize_t _wblock(Py_ssize_t cin, Py_ssize_t cout) noexcept nogil:
    """Tiles per block: a multiple of MR whose 16 transformed rows of cin + cout floats fit
    WB_FLOATS (at least MR)."""
    return max(MR, WB_FLOATS // (16 * (cin + cout)) // MR * MR)


cdef void _channels_last(const float* x, Py_ssize_t c, Py_ssize_t h, Py_ssize_t w,
                         const float* gate, bint relu, Py_ssize_t pad, Py_ssize_t hb,
                         Py_ssize_t wb, Py_ssize_t cp, float* dst) noexcept nogil:
    """dst[((i + pad) * wb + j + pad) * cp + ci] = x[ci, i, j] (C x h x w; gated by gate > 0
    when relu), zero everywhere else in hb x wb pixels of cp channels."""
    cdef Py_ssize_t ci, i, j
    cdef const float* s
    cdef const float* g
    cdef float* d
    cdef float v
    if pad > 0 or h + pad < hb or w + pad < wb or c < cp:
        memset(dst, 0, hb * wb * cp * sizeof(float))
    for ci in range(c):
        for i in range(h):
            s = x + (ci * h + i) * w
            d = dst + ((i + pad) * wb + pad) * cp + ci
            if relu:
                g = gate + (ci * h + i) * w
                for j in range(w):
                    v = s[j]                # loaded unconditionally, so the select vectorises
                    d[j * cp] = v if g[j] > 0 else 0
            else:
                for j in range(w):
                    d[j * cp] = s[j]


cdef inline void _bt16(
        rcfloat s00, rcfloat s01, rcfloat s02, rcfloat s03, rcfloat s10, rcfloat s11,
        rcfloat s12, rcfloat s13, rcfloat s20, rcfloat s21, rcfloat s22, rcfloat s23,
        rcfloat s30, rcfloat s31, rcfloat s32, rcfloat s33, Py_ssize_t n, rfloat o0,
        rfloat o1, rfloat o2, rfloat o3, rfloat o4, rfloat o5, rfloat o6, rfloat o7,
        rfloat o8, rfloat o9, rfloat o10, rfloat o11, rfloat o12, rfloat o13, rfloat o14,
        rfloat o15) noexcept nogil:
    """o[4r + c][i] = (B^T d B)[r, c] for i < n, d[r][c] = s<r><c>[i]: the input transform of
    n channels of one tile. Every stream a restrict parameter: GCC 12 vectorises this loop
    only so (with the pointers as locals it versions for aliasing, gives up past a dozen
    streams and leaves the loop scalar)."""
    cdef Py_ssize_t i
    cdef float a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3
    for i in range(n):
        # B^T down the patch's columns: rows a, b, c, d; then B across each row
        a0 = s00[i] - s20[i]
        a1 = s01[i] - s21[i]
        a2 = s02[i] - s22[i]
        a3 = s03[i] - s23[i]
        b0 = s10[i] + s20[i]
        b1 = s11[i] + s21[i]
        b2 = s12[i] + s22[i]
        b3 = s13[i] + s23[i]
        c0 = s20[i] - s10[i]
        c1 = s21[i] - s11[i]
        c2 = s22[i] - s12[i]
        c3 = s23[i] - s13[i]
        d0 = s10[i] - s30[i]
        d1 = s11[i] - s31[i]
        d2 = s12[i] - s32[i]
        d3 = s13[i] - s33[i]
        o0[i] = a0 - a2
        o1[i] = a1 + a2
        o2[i] = a2 - a1
        o3[i] = a1 - a3
        o4[i] = b0 - b2
        o5[i] = b1 + b2
        o6[i] = b2 - b1
        o7[i] = b1 - b3
        o8[i] = c0 - c2
        o9[i] = c1 + c2
        o10[i] = c2 - c1
        o11[i] = c1 - c3
        o12[i] = d0 - d2
        o13[i] = d1 + d2
        o14[i] = d2 - d1
        o15[i] = d1 - d3


cdef void _in_tile(const float* p, Py_ssize_t wb, Py_ssize_t cp, float* o,
                   Py_ssize_t sxi) noexcept nogil:
    """o[xi * sxi + ci] = (B^T d B)[xi // 4, xi % 4] of channel ci's 4 x 4 patch d at p in a
    channels-last image (rows wb pixels of cp floats apart)."""
    cdef const float* r0 = p                        # the patch's four rows
    cdef const float* r1 = p + wb * cp
    cdef const float* r2 = p + 2 * wb * cp
    cdef const float* r3 = p + 3 * wb * cp
    cdef Py_ssize_t s = sxi
    _bt16(r0, r0 + cp, r0 + 2 * cp, r0 + 3 * cp, r1, r1 + cp, r1 + 2 * cp, r1 + 3 * cp,
          r2, r2 + cp, r2 + 2 * cp, r2 + 3 * cp, r3, r3 + cp, r3 + 2 * cp, r3 + 3 * cp, cp,
          o, o + s, o + 2 * s, o + 3 * s, o + 4 * s, o + 5 * s, o + 6 * s, o + 7 * s,
          o + 8 * s, o + 9 * s, o + 10 * s, o + 11 * s, o + 12 * s, o + 13 * s, o + 14 * s,
          o + 15 * s)


cdef void _in_tiles(const float* xc, Py_ssize_t wb, Py_ssize_t cp, Py_ssize_t tw,
                    Py_ssize_t t0, Py_ssize_t nb, float* dst, Py_ssize_t sxi) noexcept nogil:
    """dst[xi * sxi + (t - t0) * cp + ci] = (B^T d B)[xi // 4, xi % 4] for the tiles t0 <= t
    < t0 + nb (t = ty * tw + tx) of the channels-last xc: d is the 4 x 4 patch at (2ty,
    2tx)."""
    cdef Py_ssize_t t, ty, tx
    for t in range(t0, t0 + nb):
        ty = t // tw
        tx = t - ty * tw
        _in_tile(xc + (2 * ty * wb + 2 * tx) * cp, wb, cp, dst + (t - t0) * cp, sxi)


cdef inline void _grad16(
        rcfloat pa, rcfloat pb, rcfloat pc, rcfloat pd, Py_ssize_t n, rfloat o0, rfloat o1,
        rfloat o2, rfloat o3, rfloat o4, rfloat o5, rfloat o6, rfloat o7, rfloat o8,
        rfloat o9, rfloat o10, rfloat o11, rfloat o12, rfloat o13, rfloat o14,
        rfloat o15) noexcept nogil:
    """o[4r + c][i] = (A dy A^T)[r, c] for i < n, dy = [[pa[i], pb[i]], [pc[i], pd[i]]]: the
    output gradient's transform of n channels of one tile (restrict parameters: _bt16)."""
    cdef Py_ssize_t i
    cdef float a, b, c, d, s0, s1, f0, f1
    for i in range(n):
        a = pa[i]
        b = pb[i]
        c = pc[i]
        d = pd[i]
        # A down the patch's columns: rows (a, b), (a + c, b + d), (a - c, b - d),
        # (-c, -d); then A^T across each: (p, q) -> (p, p + q, p - q, -q)
        s0 = a + c
        s1 = b + d
        f0 = a - c
        f1 = b - d
        o0[i] = a
        o1[i] = a + b
        o2[i] = a - b
        o3[i] = -b
        o4[i] = s0
        o5[i] = s0 + s1
        o6[i] = s0 - s1
        o7[i] = -s1
        o8[i] = f0
        o9[i] = f0 + f1
        o10[i] = f0 - f1
        o11[i] = -f1
        o12[i] = -c
        o13[i] = -c - d
        o14[i] = d - c
        o15[i] = d


cdef void _grad_tile(const float* p, Py_ssize_t wb, Py_ssize_t cp, float* o,
                     Py_ssize_t sxi) noexcept nogil:
    """o[xi * sxi + co] = (A dy A^T)[xi // 4, xi % 4] of channel co's 2 x 2 patch dy at p in
    a channels-last gradient (rows wb pixels apart)."""
    cdef Py_ssize_t s = sxi
    _grad16(p, p + cp, p + wb * cp, p + (wb + 1) * cp, cp,
            o, o + s, o + 2 * s, o + 3 * s, o + 4 * s, o + 5 * s, o + 6 * s, o + 7 * s,
            o + 8 * s, o + 9 * s, o + 10 * s, o + 11 * s, o + 12 * s, o + 13 * s, o + 14 * s,
            o + 15 * s)


cdef void _grad_tiles(const float* dc, Py_ssize_t wb, Py_ssize_t cp, Py_ssize_t tw,
                      Py_ssize_t t0, Py_ssize_t nb, float* dst, Py_ssize_t sxi) noexcept nogil:
    """dst[xi * sxi + (t - t0) * cp + co] = (A dy A^T)[xi // 4, xi % 4] for the tiles t0 <= t
    < t0 + nb of the channels-last output gradient dc: dy is the 2 x 2 patch at (2ty, 2tx)."""
    cdef Py_ssize_t t, ty, tx
    for t in range(t0, t0 + nb):
        ty = t // tw
        tx = t - ty * tw
        _grad_tile(dc + (2 * ty * wb + 2 * tx) * cp, wb, cp, dst + (t - t0) * cp, sxi)


cdef void _out_tiles(rcfloat m, Py_ssize_t sxi, Py_ssize_t cp, Py_ssize_t tw,
                     Py_ssize_t t0, Py_ssize_t nb, rcfloat bias, bint relu, rfloat out,
                     Py_ssize_t o, Py_ssize_t oh, Py_ssize_t ow, rfloat y,
                     rfloat chk) noexcept nogil:
    """out[co, 2ty + a, 2tx + b] = max?((A^T m A)[a, b] + bias[co]) for the tiles t0 <= t <
    t0 + nb, m[xi * sxi + (t - t0) * cp + co] (bias: cp floats); pixels past the output's
    edges (odd sizes) dropped. y: scratch of 4 * cp floats; chk[co] += 0 * each of the four
    values before the ReLU: it turns NaN at the first infinity or NaN, and only then (a sum
    of the values could overflow; a vector of flags, not a running sum, so the loop
    vectorises)."""
    cdef Py_ssize_t t, ty, tx, co, plane = oh * ow
    cdef rcfloat q
    cdef float* dst
    cdef float p0, p1, p2, p3, q0, q1, q2, q3, y0, y1, y2, y3
    cdef bint col2, row2
    for t in range(t0, t0 + nb):
        q = m + (t - t0) * cp
        for co in range(cp):
            p0 = q[co] + q[sxi + co] + q[2 * sxi + co]
            q0 = q[sxi + co] - q[2 * sxi + co] - q[3 * sxi + co]
            p1 = q[4 * sxi + co] + q[5 * sxi + co] + q[6 * sxi + co]
            q1 = q[5 * sxi + co] - q[6 * sxi + co] - q[7 * sxi + co]
            p2 = q[8 * sxi + co] + q[9 * sxi + co] + q[10 * sxi + co]
            q2 = q[9 * sxi + co] - q[10 * sxi + co] - q[11 * sxi + co]
            p3 = q[12 * sxi + co] + q[13 * sxi + co] + q[14 * sxi + co]
            q3 = q[13 * sxi + co] - q[14 * sxi + co] - q[15 * sxi + co]
            y0 = p0 + p1 + p2 + bias[co]
            y1 = q0 + q1 + q2 + bias[co]
            y2 = p1 - p2 - p3 + bias[co]
            y3 = q1 - q2 - q3 + bias[co]
            chk[co] += y0 * 0 + y1 * 0 + y2 * 0 + y3 * 0
            if relu:
                y0 = y0 if y0 > 0 else 0
                y1 = y1 if y1 > 0 else 0
                y2 = y2 if y2 > 0 else 0
                y3 = y3 if y3 > 0 else 0
            y[co] = y0
            y[cp + co] = y1
            y[2 * cp + co] = y2
            y[3 * cp + co] = y3
        ty = t // tw
        tx = t - ty * tw
        dst = out + 2 * ty * ow + 2 * tx
        col2 = 2 * tx + 1 < ow
        row2 = 2 * ty + 1 < oh
        if col2 and row2:
            for co in range(o):
                dst[co * plane] = y[co]
                dst[co * plane + 1] = y[cp + co]
                dst[co * plane + ow] = y[2 * cp + co]
                dst[co * plane + ow + 1] = y[3 * cp + co]
        else:
            for co in range(o):
                dst[co * plane] = y[co]
                if col2:
                    dst[co * plane + 1] = y[cp + co]
                if row2:
                    dst[co * plane + ow] = y[2 * cp + co]


cdef inline void _micro_s(Py_ssize_t kb, const float* a, Py_ssize_t sai, Py_ssize_t sak,
                          const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc,
                          bint add) noexcept nogil:
    """c[:MR, :NR] (+)= A (MR x kb, element (i, k) at a[i * sai + k * sak]) @ b[:kb, :NR]
    (rows ldb floats apart), kb >= 1: _micro_full with both operands read in place."""
    cdef float acc[MR][NR]
    cdef Py_ssize_t i, j, k
    cdef float ai
    for i in range(MR):
        ai = a[i * sai]
        for j in range(NR):
            acc[i][j] = ai * b[j]
    for k in range(1, kb):
        for i in range(MR):
            ai = a[i * sai + k * sak]
            for j in range(NR):
                acc[i][j] += ai * b[k * ldb + j]
    if add:
        for i in range(MR):
            for j in range(NR):
                c[i * ldc + j] += acc[i][j]
    else:
        for i in range(MR):
            for j in range(NR):
                c[i * ldc + j] = acc[i][j]


cdef bint _wino_conv(const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                     const float* gate, bint gated, Py_ssize_t pad, const float* bw,
                     const float* bias, bint relu, float* out, Py_ssize_t O, Py_ssize_t OH,
                     Py_ssize_t OW, float* buf) noexcept nogil:
    """out (O, OH, OW) = max?(the valid 3x3 correlation of x (C x H x W, gated by gate > 0
    when gated, then padded by pad on every side; OH = H + 2 pad - 2) with U, + bias), U
    given as bw: U[xi]^T (C x O) in NR-column panels, [xi][strip][c][NR]. buf: scratch of
    wino_floats(C, O, OH, OW) floats. Returns whether an output (before the ReLU) was not
    finite: the transforms' differences can turn an infinite input into NaN where the
    direct sum gives an infinity, so the caller redoes such a pass directly."""
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2, T = th * tw
    cdef Py_ssize_t hb = 2 * th + 2, wb = 2 * tw + 2, cp = _up(C, NR), op = _up(O, NR)
    cdef Py_ssize_t tb = _wblock(cp, op), strips = op // NR
    cdef Py_ssize_t sv = tb * cp + SKEW, sm = tb * op + SKEW    # the 16 planes' strides
    cdef float* xc = buf
    cdef float* v = xc + hb * wb * cp
    cdef float* m = v + 16 * sv
    cdef float* y = m + 16 * sm
    cdef float* bp = y + 4 * op
    cdef float* chk = bp + op
    cdef Py_ssize_t blk, t0, nb, nbp, xi, s, p
    for p in range(op):                             # the bias, zeros past O
        bp[p] = bias[p] if bias != NULL and p < O else 0
        chk[p] = 0
    _channels_last(x, C, H, W, gate, gated, pad, hb, wb, cp, xc)
    for blk in range((T + tb - 1) // tb):
        t0 = blk * tb
        nb = min(tb, T - t0)
        nbp = _up(nb, MR)
        _in_tiles(xc, wb, cp, tw, t0, nb, v, sv)
        if nbp > nb:                # the last panel's unused rows: zeros, never stale denormals
            for xi in range(16):
                memset(v + xi * sv + nb * cp, 0, (nbp - nb) * cp * sizeof(float))
        for xi in range(16):
            for s in range(strips):
                for p in range(nbp // MR):
                    _micro_s(C, v + xi * sv + p * MR * cp, cp, 1,
                             bw + (xi * strips + s) * C * NR, NR,
                             m + xi * sm + p * MR * op + s * NR, op, False)
        _out_tiles(m, sm, op, tw, t0, nb, bp, relu, out, O, OH, OW, y, chk)
    for p in range(O):
        if chk[p] != 0:                             # NaN: an output was not finite
            return True
    return False


def wino_floats(Py_ssize_t c, Py_ssize_t o, Py_ssize_t oh, Py_ssize_t ow):
    """Floats of one thread's scratch for wino_forward (channels c -> o, output oh x ow)."""
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2
    cdef Py_ssize_t cp = _up(c, NR), op = _up(o, NR), tb = _wblock(cp, op)
    return (2 * th + 2) * (2 * tw + 2) * cp + 16 * (tb * (cp + op) + 2 * SKEW) + 6 * op


def wino_forward(const float[:, :, :, ::1] x,     # IN  (N, C, OH + 2, OW + 2) padded input
                 const float[::1] bw,              # IN  U^T panels: [xi][strip][c][NR]
                 const float[::1] b,               # IN  (O,) bias
                 float[:, :, :, ::1] out,          # OUT (N, O, OH, OW)
                 float[:, ::1] buf,                # scratch (threads, wino_floats(C, O, OH, OW))
                 bint relu, int num_threads):
    """out = max?(x (*) g + b) by F(2x2, 3x3), image by image (_wino_conv); returns the number
    of images with an output that was not finite."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t n, bad = 0
    if N == 0 or O == 0 or C == 0:                  # conv_winograd.py never sends these
        return 0
    with nogil:
        for n in prange(N, schedule="static", num_threads=num_threads):
            bad += _wino_conv(&x[n, 0, 0, 0], C, H, W, NULL, False, 0, &bw[0], &b[0], relu,
                              &out[n, 0, 0, 0], O, OH, OW, &buf[threadid(), 0])
    return bad


cdef bint _wino_grad_image(const float* dy, const float* gate, bint gated, const float* x,
                           Py_ssize_t C, Py_ssize_t O, Py_ssize_t OH, Py_ssize_t OW,
                           float* du, double* db, const float* bwr, float* dx,
                           float* buf) noexcept nogil:
    """One image of wino_backward: du (16, Op, Cp) += its weight-gradient products, db (O,)
    += its gradient's sums, and with bwr (not NULL) dx (C, OH + 2, OW + 2) = its input
    gradient (_wino_conv of the gradient padded by 2 with the rotated kernel's panels).
    Returns whether dx had a value that was not finite."""
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2, T = th * tw
    cdef Py_ssize_t cp = _up(C, NR), op = _up(O, NR), tb = _wblock(cp, op)
    cdef Py_ssize_t sv = tb * cp + SKEW, sm = tb * op + SKEW    # the 16 planes' strides
    cdef Py_ssize_t hb = 2 * th + 2, wb = 2 * tw + 2
    cdef float* dc = buf                            # the gradient, channels-last, unpadded
    cdef float* xc = dc + 2 * th * 2 * tw * op
    cdef float* yt = xc + hb * wb * cp
    cdef float* xt = yt + 16 * sm
    cdef double sums[VL]          # in double: a float sum over a whole plane lost ~1e-5
    cdef Py_ssize_t blk, t0, nb, xi, p, s, i, co, l, g
    _channels_last(dy, O, OH, OW, gate, gated, 0, 2 * th, 2 * tw, op, dc)
    for g in range((O + VL - 1) // VL):             # bias gradient: VL channels at a time
        co = g * VL
        for l in range(VL):
            sums[l] = 0
        for i in range(OH * (2 * tw)):
            for l in range(VL):
                sums[l] += dc[i * op + co + l]
        for l in range(min(VL, O - co)):
            db[co + l] += sums[l]
    _channels_last(x, C, OH + 2, OW + 2, NULL, False, 0, hb, wb, cp, xc)
    for blk in range((T + tb - 1) // tb):
        t0 = blk * tb
        nb = min(tb, T - t0)
        _grad_tiles(dc, 2 * tw, op, tw, t0, nb, yt, sm)
        _in_tiles(xc, wb, cp, tw, t0, nb, xt, sv)
        for xi in range(16):
            for p in range(op // MR):
                for s in range(cp // NR):
                    _micro_s(nb, yt + xi * sm + p * MR, 1, op,
                             xt + xi * sv + s * NR, cp,
                             du + (xi * op + p * MR) * cp + s * NR, cp, True)
    if bwr != NULL:
        return _wino_conv(dy, O, OH, OW, gate, gated, 2, bwr, NULL, False, dx, C, OH + 2,
                          OW + 2, dc)
    return False


def wino_grad_floats(Py_ssize_t c, Py_ssize_t o, Py_ssize_t oh, Py_ssize_t ow):
    """Floats of one thread's scratch for wino_backward (channels c -> o, output oh x ow)."""
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2
    cdef Py_ssize_t cp = _up(c, NR), op = _up(o, NR), tb = _wblock(cp, op)
    return max((2 * th) * (2 * tw) * op + (2 * th + 2) * (2 * tw + 2) * cp
               + 16 * (tb * (cp + op) + 2 * SKEW),
               wino_floats(o, c, oh + 2, ow + 2))


def wino_backward(const float[:, :, :, ::1] dout,  # IN  (N, O, OH, OW)
                  const float[:, :, :, ::1] gate,  # IN  (N, O, OH, OW) ReLU output (gated)
                  bint gated,
                  const float[:, :, :, ::1] x,     # IN  (N, C, OH + 2, OW + 2) padded input
                  float[:, :, :, ::1] du,          # OUT (runs, 16, Op, Cp) per run
                  double[:, ::1] db,               # OUT (runs, O) per run
                  const float[::1] bwr,            # IN  rotated U^T panels (want_dx)
                  float[:, :, :, ::1] dx,          # OUT (N, C, OH + 2, OW + 2) (want_dx)
                  bint want_dx,
                  float[:, ::1] buf,               # scratch (threads, wino_grad_floats)
                  int runs, int num_threads):
    """du[q, xi] = sum over run q's images and tiles of (A dy A^T)[xi] (O) x (B^T d B)[xi] (C)
    (rows past O and columns past C zero) and db[q] = the sums of run q's output gradient
    (gated by gate > 0 when gated); with want_dx, dx = the padded input's gradient, from
    bwr: the panels of the rotated kernel's U^T (O x C per xi). Runs of images (fixed by
    the caller from the shape) go to threads whole; the caller adds them in run order: the
    same bits on any thread count. Returns the number of images whose dx had a value that
    was not finite."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t O = dout.shape[1], OH = dout.shape[2], OW = dout.shape[3]
    cdef Py_ssize_t q, n, bad = 0
    cdef const float* wr = &bwr[0] if want_dx else NULL
    if O == 0 or C == 0:                            # conv_winograd.py never sends these
        return 0
    memset(&du[0, 0, 0, 0], 0, du.shape[0] * du.shape[1] * du.shape[2] * du.shape[3]
           * sizeof(float))
    memset(&db[0, 0], 0, db.shape[0] * O * sizeof(double))
    if N == 0:
        return 0
    with nogil:
        for q in prange(runs, schedule="static", num_threads=num_threads):
            for n in range(N * q // runs, N * (q + 1) // runs):
                bad += _wino_grad_image(&dout[n, 0, 0, 0], &gate[n, 0, 0, 0], gated,
                                        &x[n, 0, 0, 0], C, O, OH, OW, &du[q, 0, 0, 0],
                                        &db[q, 0], wr, &dx[n, 0, 0, 0] if want_dx else NULL,
                                        &buf[threadid(), 0])
    return bad


cdef inline void _g3(double a, double b, double c, double* t) noexcept nogil:
    """t[0:4] = G @ (a, b, c): (a, (a + b + c) / 2, (a - b + c) / 2, c)."""
    t[0] = a
    t[1] = (a + b + c) * 0.5
    t[2] = (a - b + c) * 0.5
    t[3] = c


def wino_panels(const float[:, :, :, ::1] w,   # IN  (O, C, 3, 3)
                float[::1] dst,                # OUT (16 * ceil(O' / NR) * NR * C',)
                bint rotated):
    """U = G g G^T of every (out, in) pair of w, in double, rounded once, stored as the
    kernels' B operand: U[xi]^T in NR-column panels, [xi][panel][in][NR], columns past the
    out channels zero. With rotated, the input gradient's kernel: g'[c, o] = g[o, c] turned
    by 180 degrees (out channels O' = C, in channels C' = O). Serial: 84 multiply-adds a
    pair (NumPy's product woke OpenBLAS's threads, which then spun against the kernels')."""
    cdef Py_ssize_t O = w.shape[0], C = w.shape[1]
    cdef Py_ssize_t no = C if rotated else O, ni = O if rotated else C
    cdef Py_ssize_t nop = _up(no, NR), o, c, u, a, b, oc, ic
    cdef double g[3][3]
    cdef double t[3][4]
    cdef double r[4]
    with nogil:
        memset(&dst[0], 0, 16 * nop * ni * sizeof(float))
        for o in range(O):
            for c in range(C):
                for u in range(3):
                    for a in range(3):
                        g[u][a] = w[o, c, 2 - u, 2 - a] if rotated else w[o, c, u, a]
                for u in range(3):                  # G down each column of g: t[v][a]
                    _g3(g[0][u], g[1][u], g[2][u], t[u])
                oc = c if rotated else o
                ic = o if rotated else c
                for a in range(4):                  # and across: U[a][b]
                    _g3(t[0][a], t[1][a], t[2][a], r)
                    for b in range(4):
                        dst[(((4 * a + b) * (nop // NR) + oc // NR) * ni + ic) * NR
                            + oc % NR] = <float>r[b]


cdef inline void _gt4(double m0, double m1, double m2, double m3, double* t) noexcept nogil:
    """t[0:3] = G^T @ (m0, m1, m2, m3): (m0 + (m1 + m2) / 2, (m1 - m2) / 2, (m1 + m2) / 2 + m3)."""
    t[0] = m0 + (m1 + m2) * 0.5
    t[1] = (m1 - m2) * 0.5
    t[2] = (m1 + m2) * 0.5 + m3


def wino_weight_grad(const float[:, :, :, ::1] du,  # IN  (runs, 16, Op, Cp) per-run sums
                     float[:, :, :, ::1] dw):        # OUT (O, C, 3, 3)
    """dw[o, c] = G^T dU G with dU = du[0] + du[1] + ... (in double, in run order), rounded
    once: the weight gradient from wino_backward's sums. Serial and small: 16 numbers per
    pair of channels (a NumPy einsum cost more than this loop)."""
    cdef Py_ssize_t runs = du.shape[0], O = dw.shape[0], C = dw.shape[1]
    cdef Py_ssize_t o, c, q, xi, a, u
    cdef double m[16]
    cdef double t[4][3]
    cdef double r[3]
    with nogil:
        for o in range(O):
            for c in range(C):
                for xi in range(16):
                    m[xi] = 0
                    for q in range(runs):
                        m[xi] += du[q, xi, o, c]
                for a in range(4):                  # G^T across each row of dU: t[a][u]
                    _gt4(m[4 * a], m[4 * a + 1], m[4 * a + 2], m[4 * a + 3], t[a])
                for u in range(3):                  # and down: dg[v][u]
                    _gt4(t[0][u], t[1][u], t[2][u], t[3][u], r)
                    for a in range(3):
                        dw[o, c, a, u] = <float>r[a]
