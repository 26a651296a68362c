"""Max and average pooling, forward and backward.

Computes:  output pixel (i, j) of a plane pools the window whose first row is
           i*sh - pad_top and first column j*sw - pad_left, KH x KW, clipped to the input.
           Max: the largest pixel (the first of equal ones; the first NaN wins) and its flat
           index h*W + w, where the backward sends the whole output gradient. Average: the
           window's sum over its divisor (count_include_pad: the cells inside the padded
           input; else the input pixels), and the backward spreads dout / divisor over them.
           MaxPool2D(2) has its own pair (max_pool_2x2_*): a code 0-3 per window instead of
           a flat index.
Layout:    planes (P, H, W), P = N*C. Padding is virtual: no padded copy is made. The caller
           guarantees every clipped window holds at least one input pixel (PyTorch's rule
           pad <= kernel // 2 does).
Threads:   prange over planes: each plane is pooled on its own, so threads never share an
           output element (nor, backward, an input pixel).
Sum order: an average is summed in double, row by row, left to right; a backward adds a
           pixel's gradients in the order of the windows, row by row, on one thread: the same
           bits on any thread count.
Must agree with minicnn.reference.pool.max_pool2d and max_pool2d_backward (the same values and
argmax), avg_pool2d and avg_pool2d_backward (to rounding: the reference sums in another order).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

# A window position, 0-3, as int32: with bytes, GCC's SSE2 loop packed each vector of codes
# through spills; 32-bit lanes need none.
ctypedef int code_t


cdef inline void _max_row(const floating[:, :, ::1] x,     # IN  (P, H, W)
                          floating[:, :, ::1] out,          # OUT (P, OH, OW)
                          Py_ssize_t[:, :, ::1] argmax,     # OUT (P, OH, OW) flat h*W + w
                          Py_ssize_t p, Py_ssize_t i, Py_ssize_t j0, Py_ssize_t j1,
                          int kh, int kw, int sh, int sw, int pt, int pl) noexcept nogil:
    """Output row i of plane p, columns j0 <= j < j1, any window."""
    cdef Py_ssize_t H = x.shape[1]
    cdef Py_ssize_t W = x.shape[2]
    cdef Py_ssize_t j, h, w, h0, h1, w0, w1, idx, best_at, nan_at
    cdef floating v, best
    cdef const floating* plane = &x[p, 0, 0]
    h0 = i * sh - pt
    h1 = min(h0 + kh, H)
    h0 = max(h0, 0)
    for j in range(j0, j1):
        w0 = j * sw - pl
        w1 = min(w0 + kw, W)
        w0 = max(w0, 0)
        best_at = h0 * W + w0
        best = plane[best_at]
        nan_at = -1
        for h in range(h0, h1):
            for w in range(w0, w1):
                idx = h * W + w
                v = plane[idx]
                # Selects, not branches (on random data a branch on v > best mispredicts
                # half the time). Strictly greater keeps the
                # first maximum; v != v is NaN, and the first NaN of a window wins.
                best_at = idx if v > best else best_at
                best = v if v > best else best
                nan_at = idx if (v != v) & (nan_at < 0) else nan_at
        if nan_at >= 0:
            best_at = nan_at
            best = plane[nan_at]
        out[p, i, j] = best
        argmax[p, i, j] = best_at


cdef inline bint _max_2x2_row(const floating* r0, const floating* r1, floating* o,
                              code_t* code, Py_ssize_t cols) noexcept nogil:
    """Windows j < cols of a row pair (2x2, stride 2): o[j] = the maximum of r0[2j],
    r0[2j+1], r1[2j], r1[2j+1] and code[j] the position 0-3, in that order, of the first
    pixel equal to it (strictly greater replaces: ties go to the first). No branches, so the
    compiler vectorises it. Returns whether a NaN was seen: o and code are then wrong for
    some window and the caller redoes the row (_max_2x2_row_nan)."""
    cdef Py_ssize_t j
    cdef floating a, b, c, d, m
    cdef int nb, nc, nd
    cdef int bad = 0
    for j in range(cols):
        a = r0[2 * j]
        b = r0[2 * j + 1]
        c = r1[2 * j]
        d = r1[2 * j + 1]
        m = b if b > a else a
        m = c if c > m else m
        m = d if d > m else m
        # the position as integer arithmetic (selects on it compiled to branches,
        # mispredicted on half the windows)
        nb = a != m
        nc = nb & (b != m)
        nd = nc & (c != m)
        o[j] = m
        code[j] = nb + nc + nd
        bad = bad | (a != a) | (b != b) | (c != c) | (d != d)
    return bad


cdef inline void _max_2x2_row_nan(const floating* r0, const floating* r1, floating* o,
                                  code_t* code, Py_ssize_t cols) noexcept nogil:
    """_max_2x2_row window by window, with the NaN rule: the first NaN wins."""
    cdef Py_ssize_t j
    cdef int k
    cdef floating v[4]
    cdef floating best
    cdef code_t at
    for j in range(cols):
        v[0] = r0[2 * j]
        v[1] = r0[2 * j + 1]
        v[2] = r1[2 * j]
        v[3] = r1[2 * j + 1]
        at = 0
        best = v[0]
        if best == best:
            for k in range(1, 4):
                if v[k] != v[k]:
                    at = k
                    best = v[k]
                    break
                if v[k] > best:
                    at = k
                    best = v[k]
        o[j] = best
        code[j] = at


cdef enum:
    CODE_RUN = 256      # windows per stack buffer of codes in _max_plane_2x2


cdef inline void _max_plane_2x2(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                                Py_ssize_t[:, :, ::1] argmax, Py_ssize_t p) noexcept nogil:
    """max_pool_forward for 2x2 windows at stride 2, unpadded (MaxPool2D(2)): the windows
    wholly inside the plane by _max_2x2_row, their codes turned into flat indices; ceil_mode's
    clipped last row and column by the general rule (_max_row)."""
    cdef Py_ssize_t W = x.shape[2]
    cdef Py_ssize_t rows = min(out.shape[1], x.shape[1] // 2)
    cdef Py_ssize_t cols = min(out.shape[2], W // 2)
    cdef Py_ssize_t i, j, j0, n, at
    cdef const floating* r0
    cdef code_t code[CODE_RUN]
    cdef code_t k
    cdef Py_ssize_t* am
    for i in range(rows):
        r0 = &x[p, 2 * i, 0]
        am = &argmax[p, i, 0]
        at = 2 * i * W
        j0 = 0
        while j0 < cols:
            n = min(CODE_RUN, cols - j0)
            if _max_2x2_row(r0 + 2 * j0, r0 + W + 2 * j0, &out[p, i, j0], code, n):
                _max_2x2_row_nan(r0 + 2 * j0, r0 + W + 2 * j0, &out[p, i, j0], code, n)
            for j in range(n):
                k = code[j]
                am[j0 + j] = at + 2 * (j0 + j) + (k & 1) + (k >> 1) * W
            j0 = j0 + n
        if cols < out.shape[2]:
            _max_row(x, out, argmax, p, i, cols, out.shape[2], 2, 2, 2, 2, 0, 0)
    for i in range(rows, out.shape[1]):
        _max_row(x, out, argmax, p, i, 0, out.shape[2], 2, 2, 2, 2, 0, 0)


cdef inline void _max_window_3x3(const floating* plane, Py_ssize_t W, Py_ssize_t h0,
                                 Py_ssize_t w0, floating* out,
                                 Py_ssize_t* argmax) noexcept nogil:
    """_max_row's rule for one 3x3 window that lies inside the plane, its loops of constant
    length so the compiler unrolls them: the same selects in the same row-major order. (A
    copy on purpose: one window function shared with _max_row, called with bounds h0 + 3
    and w0 + 3, was not unrolled and ran at half this speed.)"""
    cdef Py_ssize_t h, w, idx
    cdef Py_ssize_t best_at = h0 * W + w0
    cdef Py_ssize_t nan_at = -1
    cdef floating v, best = plane[best_at]
    for h in range(3):
        for w in range(3):
            idx = (h0 + h) * W + w0 + w
            v = plane[idx]
            best_at = idx if v > best else best_at
            best = v if v > best else best
            nan_at = idx if (v != v) & (nan_at < 0) else nan_at
    if nan_at >= 0:
        best_at = nan_at
        best = plane[nan_at]
    out[0] = best
    argmax[0] = best_at


cdef inline void _max_row_3x3(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                              Py_ssize_t[:, :, ::1] argmax, Py_ssize_t p, Py_ssize_t i,
                              int sh, int sw, int pt, int pl) noexcept nogil:
    """Output row i of a 3x3 pooling: the windows inside the plane on _max_window_3x3, the
    ones that reach into the padding (the row's ends, or all of a border row) on _max_row."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], OW = out.shape[2]
    cdef Py_ssize_t h0 = i * sh - pt
    cdef Py_ssize_t j, first, last
    first = (pl + sw - 1) // sw                     # the first j with j*sw - pl >= 0
    last = (W - 3 + pl) // sw + 1 if W >= 3 else 0  # past the last j with j*sw - pl + 3 <= W
    last = min(last, OW)
    if h0 < 0 or h0 + 3 > H or first >= last:
        _max_row(x, out, argmax, p, i, 0, OW, 3, 3, sh, sw, pt, pl)
        return
    _max_row(x, out, argmax, p, i, 0, first, 3, 3, sh, sw, pt, pl)
    for j in range(first, last):
        _max_window_3x3(&x[p, 0, 0], W, h0, j * sw - pl, &out[p, i, j], &argmax[p, i, j])
    _max_row(x, out, argmax, p, i, last, OW, 3, 3, sh, sw, pt, pl)


def max_pool_forward(const floating[:, :, ::1] x,    # IN  (P, H, W)
                     floating[:, :, ::1] out,         # OUT (P, OH, OW)
                     Py_ssize_t[:, :, ::1] argmax,    # OUT (P, OH, OW)
                     int kh, int kw, int sh, int sw, int pt, int pl, int num_threads):
    """out = the maximum of each window; argmax = its flat index h*W + w in the plane."""
    cdef Py_ssize_t p, i
    cdef bint two = kh == 2 and kw == 2 and sh == 2 and sw == 2 and pt == 0 and pl == 0
    cdef bint three = kh == 3 and kw == 3
    with nogil:
        for p in prange(x.shape[0], schedule="static", num_threads=num_threads):
            if two:
                _max_plane_2x2(x, out, argmax, p)
            elif three:
                for i in range(out.shape[1]):
                    _max_row_3x3(x, out, argmax, p, i, sh, sw, pt, pl)
            else:
                for i in range(out.shape[1]):
                    _max_row(x, out, argmax, p, i, 0, out.shape[2], kh, kw, sh, sw, pt, pl)


def max_pool_2x2_forward(const floating[:, :, ::1] x,     # IN  (P, H, W)
                         floating[:, :, ::1] out,          # OUT (P, H // 2, W // 2)
                         code_t[:, :, ::1] code,           # OUT (P, H // 2, W // 2)
                         int num_threads):
    """2x2 windows at stride 2, unpadded, floor mode: out = each window's maximum, code = its
    position in the window (0 top left, 1 top right, 2 bottom left, 3 bottom right): half
    the memory of a flat index, and the backward pass (max_pool_2x2_backward) writes whole
    windows without indices it must check."""
    cdef Py_ssize_t p, i, W = x.shape[2]
    cdef const floating* r0
    with nogil:
        for p in prange(x.shape[0], schedule="static", num_threads=num_threads):
            for i in range(out.shape[1]):
                r0 = &x[p, 2 * i, 0]
                if _max_2x2_row(r0, r0 + W, &out[p, i, 0], &code[p, i, 0], out.shape[2]):
                    _max_2x2_row_nan(r0, r0 + W, &out[p, i, 0], &code[p, i, 0], out.shape[2])


def max_pool_2x2_backward(const floating[:, :, ::1] dout,       # IN  (P, OH, OW)
                          const code_t[:, :, ::1] code,         # IN  (P, OH, OW)
                          floating[:, :, ::1] dx,               # OUT (P, H, W), H // 2 == OH
                          int num_threads):
    """The gradient of max_pool_2x2_forward, every pixel of dx written, plane by plane while
    it is in cache (no zeroing pass over dx first, no index checked first): the plane
    zeroed, then each window's gradient stored at the pixel its code names. Only a code's
    two low bits are read, so no code can write outside its window. (Selects writing all
    four pixels of each window compiled to branches on the code, and ran slower.)"""
    cdef Py_ssize_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t p, i, j
    cdef floating* r0
    cdef const floating* g
    cdef const code_t* k
    with nogil:
        for p in prange(P, schedule="static", num_threads=num_threads):
            memset(&dx[p, 0, 0], 0, H * W * sizeof(floating))
            for i in range(OH):
                r0 = &dx[p, 2 * i, 0]
                g = &dout[p, i, 0]
                k = &code[p, i, 0]
                for j in range(OW):
                    # + 0: a -0.0 gradient lands as +0.0, as when added into zeros
                    r0[2 * j + (k[j] & 1) + (k[j] >> 1 & 1) * W] = g[j] + 0


cdef inline void _max_scatter_plane(const floating[:, ::1] dout,     # IN  (P, OH*OW)
                                    const Py_ssize_t[:, ::1] argmax,  # IN  (P, OH*OW)
                                    floating[:, ::1] dx,              # OUT (P, H*W), zeroed
                                    Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(dout.shape[1]):
        dx[p, argmax[p, k]] += dout[p, k]


def max_pool_backward(const floating[:, ::1] dout, const Py_ssize_t[:, ::1] argmax,
                      floating[:, ::1] dx, int num_threads):
    """dx[p, argmax[p, k]] += dout[p, k]; ``dx`` zeroed by the caller, planes flattened."""
    cdef Py_ssize_t p
    with nogil:
        for p in prange(dout.shape[0], schedule="static", num_threads=num_threads):
            _max_scatter_plane(dout, argmax, dx, p)


cdef inline double _window_sum(const floating[:, :, ::1] x, Py_ssize_t p, Py_ssize_t h0,
                               Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1) noexcept nogil:
    # double accumulator: float32 windows are summed exactly enough and in a fixed order
    cdef double total = 0.0
    cdef Py_ssize_t h, w
    for h in range(h0, h1):
        for w in range(w0, w1):
            total += x[p, h, w]
    return total


cdef inline Py_ssize_t _avg_span(Py_ssize_t o, int k, int s, int pad_before, int pad_after,
                                 Py_ssize_t n, Py_ssize_t* start, Py_ssize_t* stop) noexcept nogil:
    """Clip output o's window along one axis to the input: [start, stop). Returns the
    window's length inside the padded extent, which count_include_pad divides by (as in
    PyTorch, the end is clipped to n + pad_after first: a ceil-mode window may pass even that)."""
    cdef Py_ssize_t a = o * s - pad_before
    cdef Py_ssize_t b = min(a + k, n + pad_after)
    start[0] = max(a, 0)
    stop[0] = min(b, n)
    return b - a


cdef inline void _avg_plane(const floating[:, :, ::1] x, floating[:, :, ::1] out, Py_ssize_t p,
                            int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                            bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t i, j, h0, h1, w0, w1, rows, count
    for i in range(out.shape[1]):
        rows = _avg_span(i, kh, sh, pt, pb, x.shape[1], &h0, &h1)
        for j in range(out.shape[2]):
            count = rows * _avg_span(j, kw, sw, pl, pr, x.shape[2], &w0, &w1)
            if not count_include_pad:
                count = (h1 - h0) * (w1 - w0)
            out[p, i, j] = <floating>(_window_sum(x, p, h0, h1, w0, w1) / count)


cdef inline void _avg_plane_2x2(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                                Py_ssize_t p) noexcept nogil:
    """_avg_plane for 2x2 windows at stride 2 that all lie inside the input: the same four
    additions in double, in the same order, over 4, without the clipping arithmetic per
    window (so the same bits)."""
    cdef Py_ssize_t i, j, W = x.shape[2]
    cdef const floating* r0
    cdef floating* o
    cdef double total
    for i in range(out.shape[1]):
        r0 = &x[p, 2 * i, 0]
        o = &out[p, i, 0]
        for j in range(out.shape[2]):
            total = <double>r0[2 * j]
            total = total + r0[2 * j + 1]
            total = total + r0[W + 2 * j]
            total = total + r0[W + 2 * j + 1]
            o[j] = <floating>(total / 4)


cdef inline bint _is_plain_2x2(Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                               int kh, int kw, int sh, int sw, int pt, int pl, int pb,
                               int pr) noexcept nogil:
    """2x2 windows at stride 2, unpadded, every window inside the input."""
    return (kh == 2 and kw == 2 and sh == 2 and sw == 2 and pt == 0 and pl == 0 and pb == 0
            and pr == 0 and OH > 0 and OW > 0 and 2 * OH <= H and 2 * OW <= W)


def avg_pool_forward(const floating[:, :, ::1] x,    # IN  (P, H, W)
                     floating[:, :, ::1] out,         # OUT (P, OH, OW)
                     int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                     bint count_include_pad, int num_threads):
    """out = the sum of each clipped window over its divisor (see _avg_plane)."""
    cdef Py_ssize_t p
    cdef bint plain = _is_plain_2x2(x.shape[1], x.shape[2], out.shape[1], out.shape[2],
                                    kh, kw, sh, sw, pt, pl, pb, pr)
    with nogil:
        for p in prange(x.shape[0], schedule="static", num_threads=num_threads):
            if plain:
                _avg_plane_2x2(x, out, p)
            else:
                _avg_plane(x, out, p, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad)


cdef inline void _avg_scatter_plane(const floating[:, :, ::1] dout, floating[:, :, ::1] dx,
                                    Py_ssize_t p, int kh, int kw, int sh, int sw,
                                    int pt, int pl, int pb, int pr,
                                    bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t i, j, h, w, h0, h1, w0, w1, rows, count
    cdef floating g
    for i in range(dout.shape[1]):
        rows = _avg_span(i, kh, sh, pt, pb, dx.shape[1], &h0, &h1)
        for j in range(dout.shape[2]):
            count = rows * _avg_span(j, kw, sw, pl, pr, dx.shape[2], &w0, &w1)
            if not count_include_pad:
                count = (h1 - h0) * (w1 - w0)
            g = dout[p, i, j] / count
            for h in range(h0, h1):
                for w in range(w0, w1):
                    dx[p, h, w] += g


cdef inline void _avg_scatter_plane_2x2(const floating[:, :, ::1] dout,
                                        floating[:, :, ::1] dx, Py_ssize_t p) noexcept nogil:
    """_avg_scatter_plane for _is_plain_2x2 windows: they do not overlap, so each input
    cell of a window gets its gradient over 4 added once (into the zeroed dx: the same
    bits, a -0.0 landing as +0.0)."""
    cdef Py_ssize_t i, j, W = dx.shape[2]
    cdef floating* r0
    cdef const floating* d
    cdef floating g
    for i in range(dout.shape[1]):
        r0 = &dx[p, 2 * i, 0]
        d = &dout[p, i, 0]
        for j in range(dout.shape[2]):
            g = d[j] / 4
            r0[2 * j] += g
            r0[2 * j + 1] += g
            r0[W + 2 * j] += g
            r0[W + 2 * j + 1] += g


def avg_pool_backward(const floating[:, :, ::1] dout,   # IN  (P, OH, OW)
                      floating[:, :, ::1] dx,            # OUT (P, H, W), every cell written
                      int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                      bint count_include_pad, int num_threads):
    """Each output gradient, over its divisor, is added to every input cell of its window,
    plane by plane: each plane zeroed first while it is in cache (no zeroing pass over dx)."""
    cdef Py_ssize_t p
    cdef bint plain = _is_plain_2x2(dx.shape[1], dx.shape[2], dout.shape[1], dout.shape[2],
                                    kh, kw, sh, sw, pt, pl, pb, pr)
    with nogil:
        for p in prange(dout.shape[0], schedule="static", num_threads=num_threads):
            if dx.shape[1] * dx.shape[2]:
                memset(&dx[p, 0, 0], 0, dx.shape[1] * dx.shape[2] * sizeof(floating))
            if plain:
                _avg_scatter_plane_2x2(dout, dx, p)
            else:
                _avg_scatter_plane(dout, dx, p, kh, kw, sh, sw, pt, pl, pb, pr,
                                   count_include_pad)
