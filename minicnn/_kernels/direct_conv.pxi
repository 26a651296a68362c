# Direct convolutions, stride 1: included by gemm_<isa>.pyx after gemm.pxi and gemm_conv.pxi
# (it uses the register tile MR x NR, _pack_a, _add_partials and _bias_relu).
#
# Computes:  the convolution of the notes with stride 1 (any dilation, groups 1) on a padded
#            input, forward (+ bias, + ReLU), and backward the weight, bias and input
#            gradients in one pass over each image; no im2col, no column matrix either way.
# Layout:    NCHW, and the "wide" view of an image. In a padded plane Hp x Wp, output pixel
#            (i, j) is the wide position q = i*Wp + j, and tap t = (c, ki, kj) reads input
#            element q + off[t], off[t] = c*Hp*Wp + ki*dh*Wp + kj*dw, for every q. So over
#            q = 0 .. L-1, L = (OH-1)*Wp + OW, each tap's inputs are one contiguous run of
#            the image, and the forward pass is a GEMM
#                wide_out (O x L) = W (O x C*KH*KW) @ B,   B[t, q] = x_image[off[t] + q]
#            whose B rows are read straight from the image. The columns j >= OW of each wide
#            row (the Wp - OW that run over the padding) are computed and dropped: a waste of
#            (Wp - OW)/Wp (29% for LeNet-5's second layer, 10 of 14 columns kept), against a
#            column matrix of C*KH*KW times the image written and read back; rows that keep
#            less than half go to another path (DIRECT_KEEP_MIN).
#            The weight gradient is the same sum read the other way,
#                dw[o, t] = sum over images and q of dout_wide[o, q] * x_image[off[t] + q]
#            with dout_wide zero in the dropped columns: DO x DT dot products at once, in
#            vectors of VL positions, over a chunk of images laid out side by side.
#            The input gradient is col2im of dcols = W^T @ dout_wide: tap t's row of dcols is
#            added to the image at off[t] + q for every q, again one contiguous run, so each
#            MR x NR tile of W^T @ dout_wide (the forward's micro kernel, its B rows the
#            laid-out gradient) is added from registers straight into the image. The dropped
#            columns' zeros add nothing.
# Threads:   forward, prange over (image, panel of MR output channels) tasks; backward, over
#            runs of images (their number fixed by the caller from the batch size), each run
#            with its own partial dw and bias sums; a run's input gradients image by image.
# Sum order: an output is one sum over the taps in order (_fwd_tile); a weight-gradient tap
#            sums its VL lanes over a chunk's images and positions, then the lanes in a fixed
#            tree (_lanes), chunks added in order; a channel's bias sum adds each image's row
#            sums in double; the partials of runs are added in run order. Runs and chunks
#            follow the shape, never the thread count: the same bits on any.
# Must agree with minicnn.reference.conv.conv2d_forward and conv2d_backward (stride 1, groups 1,
#            input already padded; activation None or 'relu'), to float32 rounding.

from libc.string cimport memcpy

cdef enum:
    DT = 5              # taps per weight-gradient tile: _dw_tile writes the five out


cdef inline void _fwd_tile(Py_ssize_t K, const float* ap, const float* x, const Py_ssize_t* offs,
                           float* c, Py_ssize_t ldc) noexcept nogil:
    """c[:MR, :NR] = ap panel (K x MR)^T @ B[:, :NR], B[t, j] = x[offs[t] + j], K >= 1: the
    GEMM micro kernel with B's rows read from the image (the same registers: MR x NR)."""
    cdef float acc[MR][NR]
    cdef Py_ssize_t i, j, k
    cdef const float* xr = x + offs[0]
    cdef float ai
    for i in range(MR):
        ai = ap[i]
        for j in range(NR):
            acc[i][j] = ai * xr[j]
    for k in range(1, K):
        xr = x + offs[k]
        for i in range(MR):
            ai = ap[k * MR + i]
            for j in range(NR):
                acc[i][j] += ai * xr[j]
    for i in range(MR):
        for j in range(NR):
            c[i * ldc + j] = acc[i][j]


cdef inline void _fwd_tile_short(Py_ssize_t K, const float* ap, const float* x,
                                 const Py_ssize_t* offs, float* c,
                                 Py_ssize_t ldc) noexcept nogil:
    """_fwd_tile for a panel whose live rows fit the short tile, MS x NS (the panel's
    first MS rows, still MR apart in ap): a last panel of O % MR <= MS channels (LeNet-5's
    six) would otherwise spend a quarter or more of the MR x NR tile's multiply-adds on
    zero rows. The same sums in the same order as _fwd_tile: the same bits."""
    cdef float acc[MS][NS]
    cdef Py_ssize_t i, j, k
    cdef const float* xr = x + offs[0]
    cdef float ai
    for i in range(MS):
        ai = ap[i]
        for j in range(NS):
            acc[i][j] = ai * xr[j]
    for k in range(1, K):
        xr = x + offs[k]
        for i in range(MS):
            ai = ap[k * MR + i]
            for j in range(NS):
                acc[i][j] += ai * xr[j]
    for i in range(MS):
        for j in range(NS):
            c[i * ldc + j] = acc[i][j]


cdef void _fwd_narrow(Py_ssize_t K, const float* ap, const float* x, const Py_ssize_t* offs,
                      float* c, Py_ssize_t ldc, Py_ssize_t nq) noexcept nogil:
    """_fwd_tile for nq < NR positions (an image narrower than one tile), the same sums in
    the same order (the same bits), tap by tap into MR x nq running sums: a dot product per
    output instead waits on one dependent add per tap, and ran far slower on 4 x 4 outputs
    with hundreds of taps."""
    cdef float acc[MR][NR]
    cdef Py_ssize_t i, j, k
    cdef const float* xr = x + offs[0]
    cdef float ai
    for i in range(MR):
        ai = ap[i]
        for j in range(nq):
            acc[i][j] = ai * xr[j]
    for k in range(1, K):
        xr = x + offs[k]
        for i in range(MR):
            ai = ap[k * MR + i]
            for j in range(nq):
                acc[i][j] += ai * xr[j]
    for i in range(MR):
        for j in range(nq):
            c[i * ldc + j] = acc[i][j]


def direct_forward(const float[:, ::1] w,          # IN  (O, K) the weight, K = C*KH*KW
                   const Py_ssize_t[::1] offs,      # IN  (K,) tap offsets in an image
                   const float[:, :, :, ::1] x,     # IN  (N, C, Hp, Wp) padded input
                   const float[::1] b,              # IN  (O,) bias (zeros for none)
                   float[:, :, :, ::1] out,         # OUT (N, O, OH, OW)
                   float[::1] wp,                   # scratch (ceil(O / MR) * MR * K,)
                   float[:, ::1] wide,              # scratch (threads, MR * L)
                   bint relu, int num_threads):
    """out = max?(conv(x, w) + b) with stride 1: w packed once in MR-row panels (as the GEMM
    packs A), then one (image, panel) per task, its wide output made tile by tile in
    ``wide``, then bias and ReLU while moving the OW valid columns of each row to ``out``."""
    cdef Py_ssize_t N = x.shape[0], O = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t Wp = x.shape[3], K = w.shape[1], panels = (O + MR - 1) // MR
    cdef Py_ssize_t L = (OH - 1) * Wp + OW
    cdef Py_ssize_t task, n, pnl, q0, i, o, r
    cdef float* wb
    cdef const float* ap
    cdef const float* xn
    if N == 0 or O == 0 or OH == 0 or OW == 0 or K == 0:     # nothing to compute (minicnn.gemm
        return                                               # refuses C == 0)
    with nogil:
        _pack_a(&w[0, 0], K, 1, O, K, &wp[0])
        for task in prange(N * panels, schedule="static", num_threads=num_threads):
            n = task // panels
            pnl = task % panels
            wb = &wide[threadid(), 0]
            ap = &wp[pnl * MR * K]
            xn = &x[n, 0, 0, 0]
            if O - pnl * MR <= MS and L >= NS:
                q0 = 0
                while q0 < L:
                    q0 = min(q0, L - NS)
                    _fwd_tile_short(K, ap, xn + q0, &offs[0], wb + q0, L)
                    q0 = q0 + NS
            elif L < NR:
                _fwd_narrow(K, ap, xn, &offs[0], wb, L, L)
            else:
                q0 = 0
                while q0 < L:
                    # the last tile ends at L, overlapping the one before: the same sums again
                    q0 = min(q0, L - NR)
                    _fwd_tile(K, ap, xn + q0, &offs[0], wb + q0, L)
                    q0 = q0 + NR
            for i in range(min(MR, O - pnl * MR)):
                o = pnl * MR + i
                for r in range(OH):
                    _bias_relu(wb + i * L + r * Wp, &out[n, o, r, 0], OW, b[o], relu)


cdef inline void _dw_tile(const float* d, Py_ssize_t ldd, Py_ssize_t dimg,
                          const float* x, Py_ssize_t ximg, const Py_ssize_t* offs,
                          Py_ssize_t count, Py_ssize_t nv, float* res) noexcept nogil:
    """res[i*DT + t] = sum over images m < count and positions q < nv*VL of
    d[m*dimg + i*ldd + q] * x[m*ximg + offs[t] + q], for i < DO, t < DT = 5: DO x 5 vector
    accumulators in registers, reduced once at the end in a fixed order.

    The five taps are written out: GCC unrolls only the innermost constant loop completely,
    and an accumulator indexed by a loop it keeps lives in memory (a load, FMA and store per
    step: seen in perf annotate).
    """
    cdef float a0[DO][VL]
    cdef float a1[DO][VL]
    cdef float a2[DO][VL]
    cdef float a3[DO][VL]
    cdef float a4[DO][VL]
    cdef Py_ssize_t i, l, m, v
    cdef const float* dr
    cdef const float* x0
    cdef const float* x1
    cdef const float* x2
    cdef const float* x3
    cdef const float* x4
    cdef float dv
    for i in range(DO):
        for l in range(VL):
            a0[i][l] = 0
            a1[i][l] = 0
            a2[i][l] = 0
            a3[i][l] = 0
            a4[i][l] = 0
    for m in range(count):
        x0 = x + m * ximg + offs[0]
        x1 = x + m * ximg + offs[1]
        x2 = x + m * ximg + offs[2]
        x3 = x + m * ximg + offs[3]
        x4 = x + m * ximg + offs[4]
        dr = d + m * dimg
        for v in range(nv):
            for i in range(DO):
                for l in range(VL):
                    dv = dr[i * ldd + l]
                    a0[i][l] += dv * x0[l]
                    a1[i][l] += dv * x1[l]
                    a2[i][l] += dv * x2[l]
                    a3[i][l] += dv * x3[l]
                    a4[i][l] += dv * x4[l]
            dr += VL
            x0 += VL
            x1 += VL
            x2 += VL
            x3 += VL
            x4 += VL
    for i in range(DO):
        res[i * DT] = _lanes(a0[i])
        res[i * DT + 1] = _lanes(a1[i])
        res[i * DT + 2] = _lanes(a2[i])
        res[i * DT + 3] = _lanes(a3[i])
        res[i * DT + 4] = _lanes(a4[i])


cdef inline float _row_sum(const float* row, Py_ssize_t n) noexcept nogil:
    """row[0] + ... + row[n - 1] for n a multiple of VL: VL float running sums (one vector),
    then _lanes; a fixed order (the caller adds the rows' sums in double)."""
    cdef float acc[VL]
    cdef Py_ssize_t v, l
    for l in range(VL):
        acc[l] = 0
    for v in range(n // VL):
        for l in range(VL):
            acc[l] += row[v * VL + l]
    return _lanes(acc)


cdef inline float _lanes(float* a) noexcept nogil:
    """The sum of a[:VL] (VL = 8 or 16) by halving, a[l] += a[l + h] for h = VL/2, VL/4, .. 1:
    vector adds in a fixed order, where a running sum would be VL dependent additions.
    Overwrites a. Each step is written out with a constant trip count: as a loop over h,
    GCC made it scalar adds through memory, which the short tiles of small layers feel
    most."""
    cdef Py_ssize_t l
    if VL >= 16:
        for l in range(8):
            a[l] = a[l] + a[l + 8]
    for l in range(4):
        a[l] = a[l] + a[l + 4]
    for l in range(2):
        a[l] = a[l] + a[l + 2]
    return a[0] + a[1]


def direct_weight_floats(Py_ssize_t o, Py_ssize_t c, Py_ssize_t hp, Py_ssize_t wp,
                         Py_ssize_t l, Py_ssize_t images):
    """Floats of scratch one thread needs in direct_backward for chunks of ``images``:
    each image's layout (direct_image_floats) and a DO x DT tile of results."""
    return images * direct_image_floats(o, c, hp, wp, l) + DO * DT


cpdef Py_ssize_t direct_image_floats(Py_ssize_t o, Py_ssize_t c, Py_ssize_t hp, Py_ssize_t wp,
                                     Py_ssize_t l) noexcept nogil:
    """Floats of one image's layout in direct_backward: its wide gradient (O rounded
    up to DO rows of L rounded up to VL) and its input copied with VL to 2*VL - 1 floats of
    zeros after it (the last vector reads past the plane)."""
    return (o + DO - 1) // DO * DO * _wide_len(l) + _input_len(c, hp, wp)


cdef inline Py_ssize_t _wide_len(Py_ssize_t l) noexcept nogil:
    return (l + VL - 1) // VL * VL


cdef inline Py_ssize_t _input_len(Py_ssize_t c, Py_ssize_t hp, Py_ssize_t wp) noexcept nogil:
    return (c * hp * wp + VL + VL - 1) // VL * VL


cdef void _dw_chunk(const float[:, :, ::1] dout, const float[:, :, ::1] gate, bint relu,
                    const Py_ssize_t* offs, Py_ssize_t kp, const float[:, :, :, ::1] x,
                    Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t ow, float* dst, Py_ssize_t K,
                    double* db, float* base, bint add, const float* wt,
                    float[:, :, :, ::1] dx, const Py_ssize_t* doffs) noexcept nogil:
    """dst (O, K) (+)= the weight gradient of images n0 .. n1-1, and db (O,) += the sums of
    their gradients, laid out in ``base``: their wide gradients (gated by the ReLU's output
    when ``relu``; zero outside the OW columns of each row, and in the rows past O), then
    their inputs, then a result tile. With ``wt`` (not NULL) also dx[n] for those images,
    from the same laid-out gradients (_dx_image)."""
    cdef Py_ssize_t C = x.shape[1], Hp = x.shape[2], Wp = x.shape[3], O = dout.shape[1]
    cdef Py_ssize_t OH = dout.shape[2] // ow
    cdef Py_ssize_t L = (OH - 1) * Wp + ow, lr = _wide_len(L), xs = _input_len(C, Hp, Wp)
    cdef Py_ssize_t dimg = (O + DO - 1) // DO * DO * lr, count = n1 - n0
    cdef float* xc = base + count * dimg
    cdef float* res = xc + count * xs
    cdef float* row
    cdef const float* src
    cdef const float* g
    cdef Py_ssize_t m, o, r, j, ob, tb, i, t, at
    cdef float d
    for m in range(count):
        memset(base + m * dimg, 0, dimg * sizeof(float))
        for o in range(O):
            row = base + m * dimg + o * lr
            for r in range(OH):
                src = &dout[n0 + m, o, r * ow]
                g = &gate[n0 + m, o, r * ow]
                if relu:
                    for j in range(ow):
                        d = src[j]          # loaded unconditionally, so the select vectorises
                        row[r * Wp + j] = d if g[j] > 0 else 0
                else:
                    memcpy(row + r * Wp, src, ow * sizeof(float))
            # VL running sums: a single running sum here waits on one dependent add per pixel
            db[o] = db[o] + _row_sum(row, lr)
        memcpy(xc + m * xs, &x[n0 + m, 0, 0, 0], C * Hp * Wp * sizeof(float))
        memset(xc + m * xs + C * Hp * Wp, 0, (xs - C * Hp * Wp) * sizeof(float))
    for ob in range(dimg // lr // DO):
        for tb in range(kp // DT):
            _dw_tile(base + ob * DO * lr, lr, dimg, xc, xs, offs + tb * DT, count, lr // VL, res)
            for i in range(min(DO, O - ob * DO)):
                for t in range(min(DT, K - tb * DT)):
                    at = (ob * DO + i) * K + tb * DT + t
                    dst[at] = dst[at] + res[i * DT + t] if add else res[i * DT + t]
    if wt != NULL:
        for m in range(count):
            _dx_image(wt, O, K, base + m * dimg, lr, doffs, offs, L, &dx[n0 + m, 0, 0, 0],
                      C * Hp * Wp)


cdef inline void _dx_tile(Py_ssize_t K, const float* ap, const float* x, const Py_ssize_t* offs,
                          float* dx, const Py_ssize_t* dst_offs) noexcept nogil:
    """dx[dst_offs[i] + j] += (ap panel^T @ B)[i, j] for a whole MR x NR tile, B[t, j] =
    x[offs[t] + j]: _fwd_tile adding its registers straight into the rows of dx. (Calling
    _fwd_tile into a stack tile and adding that was slower.)"""
    cdef float acc[MR][NR]
    cdef Py_ssize_t i, j, k
    cdef const float* xr = x + offs[0]
    cdef float ai
    cdef float* dst
    for i in range(MR):
        ai = ap[i]
        for j in range(NR):
            acc[i][j] = ai * xr[j]
    for k in range(1, K):
        xr = x + offs[k]
        for i in range(MR):
            ai = ap[k * MR + i]
            for j in range(NR):
                acc[i][j] += ai * xr[j]
    for i in range(MR):
        dst = dx + dst_offs[i]
        for j in range(NR):
            dst[j] = dst[j] + acc[i][j]


cdef void _dx_image(const float* wt, Py_ssize_t O, Py_ssize_t K, const float* d, Py_ssize_t ldd,
                    const Py_ssize_t* doffs, const Py_ssize_t* offs, Py_ssize_t L, float* dx,
                    Py_ssize_t size) noexcept nogil:
    """One image's input gradient (size floats at dx) from its wide output gradient d (O rows
    of ldd, zero in the dropped columns): tap t's columns are wt^T @ d, an MR x NR tile at a
    time (the forward's _fwd_tile, its B rows d + doffs[o] = d + o*ldd), each tile row added
    to the image at offs[t] + q, where tap t read input q in the forward pass: col2im from a
    tile in L1, contiguous runs, no column matrix. L >= NR; the last tile ends at L,
    overlapping the one before, and adds only its new columns."""
    cdef float tile[MR * NR]
    cdef Py_ssize_t pnl, q0, qs, i, j, rows
    cdef float* dst
    cdef const float* src
    memset(dx, 0, size * sizeof(float))
    for pnl in range((K + MR - 1) // MR):
        rows = min(MR, K - pnl * MR)
        q0 = 0
        while q0 < L:
            qs = min(q0, L - NR)
            if rows == MR and qs == q0:
                _dx_tile(O, wt + pnl * MR * O, d + qs, doffs, dx + qs, offs + pnl * MR)
                q0 = qs + NR
                continue
            _fwd_tile(O, wt + pnl * MR * O, d + qs, doffs, tile, NR)
            for i in range(rows):
                dst = dx + offs[pnl * MR + i] + qs
                src = tile + i * NR
                for j in range(q0 - qs, NR):
                    dst[j] = dst[j] + src[j]
            q0 = qs + NR


def direct_backward(const float[:, :, ::1] dout,     # IN  (N, O, OH*OW) output gradient
                    const float[:, :, ::1] gate,     # IN  (N, O, OH*OW) ReLU output (relu)
                    bint relu,
                    const Py_ssize_t[::1] offs,      # IN  (Kp,) tap offsets, Kp % DT == 0
                    const float[:, :, :, ::1] x,     # IN  (N, C, Hp, Wp) padded input
                    float[:, ::1] dw,                # OUT (O, K), K <= Kp
                    double[:, ::1] db,               # scratch (runs, O) each run's gradient sums
                    float[::1] bias_grad,            # OUT (O,) their sum, in run order
                    float[:, :, ::1] partial,        # scratch (runs - 1, O, K)
                    float[:, ::1] buf,               # scratch (threads, direct_weight_floats)
                    Py_ssize_t ow, int runs, Py_ssize_t chunk,
                    const float[:, ::1] w,           # IN  (O, K) the weight (want_dx)
                    float[::1] wt,                   # scratch (ceil(K / MR) * MR * O) (want_dx)
                    const Py_ssize_t[::1] doffs,     # IN  (O,) o * the wide row length (want_dx)
                    float[:, :, :, ::1] dx,          # OUT (N, C, Hp, Wp) (want_dx)
                    bint want_dx, int num_threads):
    """dw = the weight gradient of a stride-1 convolution, bias_grad = the sums of the output
    gradient per channel (each run's in db[q], added in run order), and with
    ``want_dx`` dx = the padded input's gradient; with ``relu`` the output gradient is
    first gated by the ReLU's output (> 0), as the forward's fused ReLU needs. The images
    are cut into ``runs`` runs, each run into chunks of ``chunk`` images, both fixed by the
    caller from the shape: a thread lays a chunk out in its row of ``buf``, sums it in DO x
    DT tiles into dw (run 0) or the run's partial and makes each image's dx from the same
    layout (dx: image by image, the same bits on any thread count; dw: the partials are
    added in run order, so the same bits too). Offsets past K (padding to DT taps) may be
    any valid offset, e.g. 0. dx needs L = (OH - 1)*Wp + OW >= NR, doffs[o] = o * (L
    rounded up to VL), and a finite w (its products with the dropped columns' zeros must be
    zero)."""
    cdef Py_ssize_t N = x.shape[0], O = dw.shape[0], K = dw.shape[1], Kp = offs.shape[0]
    cdef Py_ssize_t q, n0, n1, c0
    cdef float* dst
    cdef const float* wtp = NULL
    if O == 0:
        return
    memset(&db[0, 0], 0, runs * O * sizeof(double))
    if K == 0 or N == 0 or dout.shape[2] == 0:
        if K > 0:
            memset(&dw[0, 0], 0, O * K * sizeof(float))
        _sum_runs(db, bias_grad)                   # zeros
        return
    with nogil:
        if want_dx:
            _pack_a(&w[0, 0], 1, K, K, O, &wt[0])        # w^T in MR-tap panels
            wtp = &wt[0]
        for q in prange(runs, schedule="static", num_threads=num_threads):
            dst = &dw[0, 0] if q == 0 else &partial[q - 1, 0, 0]
            n0 = N * q // runs
            n1 = N * (q + 1) // runs
            if n1 == n0:
                memset(dst, 0, O * K * sizeof(float))
            c0 = n0
            while c0 < n1:
                _dw_chunk(dout, gate, relu, &offs[0], Kp, x, c0, min(c0 + chunk, n1), ow, dst,
                          K, &db[q, 0], &buf[threadid(), 0], c0 > n0, wtp, dx, &doffs[0])
                c0 = c0 + chunk
        _add_partials(dw, partial, runs - 1, num_threads)
    _sum_runs(db, bias_grad)


cdef void _sum_runs(const double[:, ::1] db, float[::1] bias_grad) noexcept nogil:
    """bias_grad[o] = db[0, o] + db[1, o] + ... in double, in run order (so the same bits on
    any thread count), then rounded once."""
    cdef Py_ssize_t o, q
    cdef double total
    for o in range(db.shape[1]):
        total = 0
        for q in range(db.shape[0]):
            total += db[q, o]
        bias_grad[o] = <float>total


def direct_tile():
    """(DO, DT, VL): the weight gradient's tile of channels x taps, and its vector length
    (a wide row of the laid-out gradient is rounded up to VL floats)."""
    return DO, DT, VL
