# The float32 matrix product C = A @ B, shared by gemm_avx512.pyx and gemm_avx2.pyx: each
# defines the register tile MR x NR and the blocking sizes as compile-time constants, then
# includes this file, and setup.py compiles each with its instruction set's flags.
#
# Computes:  c[i, j] = sum over k of a[i, k] * b[k, j], a (M, K) and b (K, N) with any strides.
# Layout:    as in BLIS and OpenBLAS. A is copied ("packed") in panels of MR rows, B in panels
#            of NR columns, both k-major, so the innermost loop reads both in order; a micro
#            kernel multiplies one A panel by one B panel (kb x MR times kb x NR) into an
#            MR x NR tile of C held in registers. K is taken in blocks whose B panels stay in
#            L1, A and B blocks in L2.
# Threads:   the N columns are cut into NR-wide strips, and each thread takes a contiguous run
#            of strips: every element of C is summed by one thread. When N is narrow (a weight
#            gradient's taps: few strips to share), K is cut into slices instead, each
#            slice's product in its own buffer.
# Sum order: each c[i, j] sums a K block's products in k order in a register, and adds
#            the blocks' sums into C in block order; slices, when there are any, are cut
#            from the shape alone and added afterwards in slice order (_add_partials). The
#            blocks and slices never depend on the thread count: any gives the same bits.
# Must agree with a @ b taken in float64, to float32 rounding (tests/test_gemm.py); through it
#            the convolutions and large dense layers agree with minicnn.reference.conv
#            (conv2d_forward, conv2d_backward) and minicnn.reference.fully_connected (dense,
#            dense_backward).
#
# Why our own: OpenBLAS is tuned for large square products; a convolution's GEMMs are thin
# (6 x 25 x 50176 in LeNet-5's first layer; 64 x 36864 x 288 for a weight gradient) and
# strided (cols^T, W^T), where packing straight from the strides, no copy, and splitting
# over K when N is narrow win (tools/gemm_shapes.py measures it).
from cython.parallel cimport prange, threadid
from libc.string cimport memset

cdef extern from *:
    void _prefetch "__builtin_prefetch"(const void* p, int rw, int locality) nogil


cdef inline void _micro_full(Py_ssize_t kb, const float* ap, const float* bp, float* c,
                             Py_ssize_t ldc, bint add) noexcept nogil:
    """c[:MR, :NR] (+)= ap panel (kb x MR)^T @ bp panel (kb x NR), kb >= 1.

    Plain loops over compile-time sizes: at -O3 with the ISA's flags GCC keeps acc in
    registers (16 zmm for 8 x 32 under AVX-512, 12 ymm for 4 x 24 under AVX2) and emits a
    broadcast of A and two fused multiply-adds per row and k.
    """
    cdef float acc[MR][NR]
    cdef Py_ssize_t i, j, k
    cdef float ai
    for i in range(MR):                    # C's lines arrive while the FMAs run
        _prefetch(c + i * ldc, 1, 3)
        _prefetch(c + i * ldc + NR - 1, 1, 3)
    for i in range(MR):                    # k = 0 peeled: acc starts as a product, not zeros
        ai = ap[i]
        for j in range(NR):
            acc[i][j] = ai * bp[j]
    for k in range(1, kb):
        for i in range(MR):
            ai = ap[k * MR + i]
            for j in range(NR):
                acc[i][j] += ai * bp[k * NR + j]
    if add:
        for i in range(MR):
            for j in range(NR):
                c[i * ldc + j] += acc[i][j]
    else:
        for i in range(MR):
            for j in range(NR):
                c[i * ldc + j] = acc[i][j]


cdef inline void _micro(Py_ssize_t kb, const float* ap, const float* bp, float* c,
                        Py_ssize_t ldc, Py_ssize_t mr, Py_ssize_t nr, bint add) noexcept nogil:
    """_micro_full for an mr x nr <= MR x NR tile: edge tiles go through a local tile, so the
    full kernel never indexes acc with run-time bounds (which would keep it in memory)."""
    cdef float tile[MR * NR]
    cdef Py_ssize_t i, j
    if mr == MR and nr == NR:
        _micro_full(kb, ap, bp, c, ldc, add)
        return
    _micro_full(kb, ap, bp, tile, NR, False)
    for i in range(mr):
        for j in range(nr):
            if add:
                c[i * ldc + j] += tile[i * NR + j]
            else:
                c[i * ldc + j] = tile[i * NR + j]


cdef void _pack_a(const float* a, Py_ssize_t sm, Py_ssize_t sk, Py_ssize_t mb, Py_ssize_t kb,
                  float* ap) noexcept nogil:
    """a[:mb, :kb] (element strides sm, sk) as MR-row panels, k-major, the last zero-filled."""
    cdef Py_ssize_t p, i, k, rows
    cdef const float* src
    cdef float* dst
    for p in range((mb + MR - 1) // MR):
        rows = min(MR, mb - p * MR)
        dst = ap + p * MR * kb
        for i in range(rows):
            src = a + (p * MR + i) * sm
            if sk == 1:
                for k in range(kb):
                    dst[k * MR + i] = src[k]
            else:
                for k in range(kb):
                    dst[k * MR + i] = src[k * sk]
        for i in range(rows, MR):
            for k in range(kb):
                dst[k * MR + i] = 0


cdef void _pack_b(const float* b, Py_ssize_t sk, Py_ssize_t sn, Py_ssize_t kb, Py_ssize_t nb,
                  float* bp) noexcept nogil:
    """b[:kb, :nb] (element strides sk, sn) as NR-column panels of kb rows, the last
    zero-filled. Reads along b's unit-stride axis, so whole rows stream from memory (one
    NR-wide strip at a time touched kb pages per strip and ran at memory latency)."""
    cdef Py_ssize_t j, k, s, full = nb // NR, rest = nb % NR
    cdef const float* src
    cdef float* dst
    if sn == 1:
        for k in range(kb):
            src = b + k * sk
            for s in range(full):
                dst = bp + (s * kb + k) * NR
                for j in range(NR):
                    dst[j] = src[s * NR + j]
            if rest:
                dst = bp + (full * kb + k) * NR
                for j in range(rest):
                    dst[j] = src[full * NR + j]
                for j in range(rest, NR):
                    dst[j] = 0
    else:
        if rest:
            memset(bp + full * kb * NR, 0, kb * NR * sizeof(float))
        for j in range(nb):
            src = b + j * sn
            dst = bp + (j // NR) * kb * NR + j % NR
            if sk == 1:
                for k in range(kb):
                    dst[k * NR] = src[k]
            else:
                for k in range(kb):
                    dst[k * NR] = src[k * sk]


cdef inline float* _aligned(float* p) noexcept nogil:
    return <float*>((<size_t>p + 63) & ~(<size_t>63))


cdef void _gemm_part(const float* a, Py_ssize_t sam, Py_ssize_t sak,
                     const float* b, Py_ssize_t sbk, Py_ssize_t sbn,
                     float* c, Py_ssize_t ldc, Py_ssize_t m, Py_ssize_t k0, Py_ssize_t k1,
                     Py_ssize_t n0, Py_ssize_t n1, float* work, bint add) noexcept nogil:
    """c[:m, n0:n1] = a[:m, k0:k1] @ b[k0:k1, n0:n1] (+= with add), with k1 > k0; ``work`` is
    the calling thread's row of workspace_size() floats, where A and B are packed.

    K in one block when it fits KC_ONE (each further block is another pass over C), else in
    blocks of about KC_BLOCK, whose B panels stay in L1. A blocks of at most A_BLOCK floats
    and B blocks of at most B_BLOCK floats stay in L2.
    """
    cdef float* ap = _aligned(work)
    cdef float* bp = _aligned(ap + A_BLOCK + MR * KC_ONE)
    cdef Py_ssize_t nk = k1 - k0
    cdef Py_ssize_t nblk = 1 if nk <= KC_ONE else (nk + KC_BLOCK - 1) // KC_BLOCK
    cdef Py_ssize_t kc = (nk + nblk - 1) // nblk
    cdef Py_ssize_t mc = max(MR, (A_BLOCK // kc) // MR * MR)
    cdef Py_ssize_t nc = max(NR, (B_BLOCK // kc) // NR * NR)
    cdef Py_ssize_t pc, kb, ic, mb, jb, jc, nbb, s, ir
    for pc in range(nblk):
        kb = min(kc, nk - pc * kc)
        for ic in range((m + mc - 1) // mc):
            mb = min(mc, m - ic * mc)
            _pack_a(a + ic * mc * sam + (k0 + pc * kc) * sak, sam, sak, mb, kb, ap)
            for jb in range((n1 - n0 + nc - 1) // nc):
                jc = n0 + jb * nc
                nbb = min(nc, n1 - jc)
                _pack_b(b + (k0 + pc * kc) * sbk + jc * sbn, sbk, sbn, kb, nbb, bp)
                for s in range((nbb + NR - 1) // NR):
                    for ir in range((mb + MR - 1) // MR):
                        _micro(kb, ap + ir * MR * kb, bp + s * kb * NR,
                               c + (ic * mc + ir * MR) * ldc + jc + s * NR, ldc,
                               min(MR, mb - ir * MR), min(NR, nbb - s * NR), add or pc > 0)


cdef void _add_partials(float[:, ::1] c, const float[:, :, ::1] partial, Py_ssize_t count,
                        int num_threads) noexcept nogil:
    """c += partial[0] + ... + partial[count - 1], in that order for every element, so the
    bits do not depend on how the partial products were shared between threads."""
    cdef Py_ssize_t i, j, q
    for i in prange(c.shape[0], schedule="static", num_threads=num_threads):
        for q in range(count):
            for j in range(c.shape[1]):
                c[i, j] += partial[q, i, j]


def tile():
    """(MR, NR): the register tile (minicnn.gemm cuts K when N has few NR-wide strips; the
    tests aim at the tile's edges)."""
    return MR, NR


def workspace_size():
    """Floats of packing space one thread needs, with 64 bytes of alignment slack each."""
    return A_BLOCK + MR * KC_ONE + B_BLOCK + NR * KC_ONE + 32


def gemm(const float[:, :] a,          # IN  (M, K), K >= 1, any strides
         const float[:, :] b,          # IN  (K, N), any strides
         float[:, ::1] c,              # OUT (M, N)
         float[:, ::1] work,           # scratch (>= num_threads, >= workspace_size())
         float[:, :, ::1] partial,     # scratch (slices - 1, M, N)
         int slices, int num_threads):
    """c = a @ b. With slices == 1 threads take contiguous runs of NR-column strips. With
    slices > 1, K is cut into that many slices whose products (the first in c, the others
    in partial) are summed afterwards in slice order. The cut depends on the shape only,
    never on the thread count, and no element's sum is split between threads otherwise:
    any number of threads gives the same bits."""
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1], n = b.shape[1]
    cdef Py_ssize_t sam = a.strides[0] // sizeof(float), sak = a.strides[1] // sizeof(float)
    cdef Py_ssize_t sbk = b.strides[0] // sizeof(float), sbn = b.strides[1] // sizeof(float)
    cdef Py_ssize_t strips = (n + NR - 1) // NR
    cdef Py_ssize_t t, s0, s1, k0, k1, q
    cdef float* cp
    cdef int T = num_threads
    if m == 0 or n == 0:
        return
    with nogil:
        if slices > 1:
            for q in prange(slices, schedule="static", num_threads=T):
                k0 = k * q // slices
                k1 = k * (q + 1) // slices
                cp = &c[0, 0] if q == 0 else &partial[q - 1, 0, 0]
                if k1 > k0:
                    _gemm_part(&a[0, 0], sam, sak, &b[0, 0], sbk, sbn, cp, n, m, k0, k1, 0, n,
                               &work[threadid(), 0], False)
                else:
                    memset(cp, 0, m * n * sizeof(float))
            _add_partials(c, partial, slices - 1, T)
        else:
            for t in prange(T, schedule="static", chunksize=1, num_threads=T):
                s0 = strips * t // T
                s1 = strips * (t + 1) // T
                if s1 > s0:
                    _gemm_part(&a[0, 0], sam, sak, &b[0, 0], sbk, sbn, &c[0, 0], n, m, 0, k,
                               s0 * NR, min(n, s1 * NR), &work[t, 0], False)
