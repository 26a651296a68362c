"""Slow reference implementations, written to be read, not to be fast.

Each one follows the definition with plain loops; tests compare the kernels with
them on random shapes and options.
"""
import numpy as np

# === padding (owner: pad) ====================================================

def source_index(t, n, mode):
    """Where padded position t (counted from the first real pixel, may be < 0 or >= n) reads from.

    Returns None for a constant fill. Written as the definitions say, one step at a time.
    """
    if 0 <= t < n:
        return t
    if mode in ("zeros", "constant"):
        return None
    if mode == "replicate":
        return 0 if t < 0 else n - 1
    if mode == "circular":
        return t % n
    while not 0 <= t < n:  # fold back across an edge until inside
        if mode == "reflect":
            t = -t if t < 0 else 2 * (n - 1) - t
        else:  # symmetric: the edge pixel itself is repeated
            t = -t - 1 if t < 0 else 2 * n - 1 - t
    return t


def pad_ref(x, padding, mode="zeros", value=0.0):
    (top, bottom), (left, right) = padding
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value if mode == "constant" else 0.0)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            si = source_index(i - top, h, mode)
            sj = source_index(j - left, w, mode)
            if si is not None and sj is not None:
                out[:, :, i, j] = x[:, :, si, sj]
    return out.astype(x.dtype)


# === convolution (owner: conv) ===============================================

def conv2d_ref(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1,
               padding_mode="zeros", flip_kernel=False):
    """out[n, o, i, j] = b[o] + sum over c, ki, kj of xp[n, c, i*sh + ki*dh, j*sw + kj*dw] * w[o, c, ki, kj],

    where c runs over the input channels of o's group, xp is the padded input, and
    the kernel is rotated by 180 degrees first for a true convolution.
    """
    if flip_kernel:
        w = w[:, :, ::-1, ::-1]
    xp = pad_ref(x, padding, padding_mode)
    n, c, hp, wp = xp.shape
    o, cin_g, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    per_group = o // groups
    for img in range(n):
        for oc in range(o):
            first_c = (oc // per_group) * cin_g
            for i in range(oh):
                for j in range(ow):
                    total = 0.0 if b is None else float(b[oc])
                    for ci in range(cin_g):
                        for ki in range(kh):
                            for kj in range(kw):
                                total += xp[img, first_c + ci, i * sh + ki * dh, j * sw + kj * dw] * w[oc, ci, ki, kj]
                    out[img, oc, i, j] = total
    return out


# === pooling (owner: pool) ===================================================

def pool_windows(n, k, stride, before, after, ceil_mode):
    """The window starts along one axis (in input coordinates, may be negative), by definition.

    Windows start at i*stride - before. Floor mode keeps those that end inside the
    padded input; ceil mode also keeps one that hangs over the end, as long as it
    starts inside the input or the leading padding (PyTorch's rule).
    """
    starts = []
    i = 0
    while True:
        start = i * stride - before
        end = start + k
        if ceil_mode:
            keep = start < n and end - stride < n + after
        else:
            keep = end <= n + after
        if not keep:
            return starts
        starts.append(start)
        i += 1


def max_pool2d_ref(x, kernel_size, stride, padding, ceil_mode=False):
    """(out, argmax): the largest real cell of each window (a NaN wins, the first one), the
    first of equal maxima in row-major order, and its flat index h*W + w in the plane."""
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = kernel_size, stride, padding
    n, c, h, w = x.shape
    rows = pool_windows(h, kh, sh, top, bottom, ceil_mode)
    cols = pool_windows(w, kw, sw, left, right, ceil_mode)
    out = np.zeros((n, c, len(rows), len(cols)), dtype=x.dtype)
    argmax = np.zeros(out.shape, dtype=np.intp)
    for img in range(n):
        for ch in range(c):
            for i, r0 in enumerate(rows):
                for j, c0 in enumerate(cols):
                    cells = [(x[img, ch, r, s], r * w + s)
                             for r in range(r0, r0 + kh) if 0 <= r < h
                             for s in range(c0, c0 + kw) if 0 <= s < w]
                    nans = [cell for cell in cells if np.isnan(cell[0])]
                    if nans:
                        best = nans[0]
                    else:
                        top_value = max(v for v, _ in cells)
                        best = next(cell for cell in cells if cell[0] == top_value)
                    out[img, ch, i, j], argmax[img, ch, i, j] = best
    return out, argmax


def avg_pool2d_ref(x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """The mean of each window in float64: the sum of its real cells over, with
    count_include_pad, the number of its cells inside the padded input, else the number
    of real cells."""
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = kernel_size, stride, padding
    n, c, h, w = x.shape
    rows = pool_windows(h, kh, sh, top, bottom, ceil_mode)
    cols = pool_windows(w, kw, sw, left, right, ceil_mode)
    out = np.zeros((n, c, len(rows), len(cols)))
    for img in range(n):
        for ch in range(c):
            for i, r0 in enumerate(rows):
                for j, c0 in enumerate(cols):
                    total, real, padded = 0.0, 0, 0
                    for r in range(r0, r0 + kh):
                        for s in range(c0, c0 + kw):
                            if -top <= r < h + bottom and -left <= s < w + right:
                                padded += 1
                            if 0 <= r < h and 0 <= s < w:
                                real += 1
                                total += float(x[img, ch, r, s])
                    out[img, ch, i, j] = total / (padded if count_include_pad else real)
    return out


# === dense and activations (owner: compose) ==================================

def dense_ref(x, w, b=None):
    """out[n, o] = b[o] + sum over i of x[n, i] * w[o, i]."""
    out = np.zeros((x.shape[0], w.shape[0]))
    for n in range(x.shape[0]):
        for o in range(w.shape[0]):
            out[n, o] = (0.0 if b is None else b[o]) + sum(x[n, i] * w[o, i] for i in range(w.shape[1]))
    return out


def cross_entropy_ref(logits, labels):
    """-log(exp(z_y) / sum(exp(z))) averaged over the batch, in exact (math.fsum) arithmetic."""
    import math
    total = 0.0
    for z, y in zip(logits.astype(float), labels):
        m = max(z)
        total += -(z[y] - m - math.log(math.fsum(math.exp(v - m) for v in z)))
    return total / len(labels)


def sigmoid_ref(x):
    """1 / (1 + e^-v) for each element, one at a time (e^-v taken only where it cannot overflow)."""
    import math
    flat = [1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
            for v in np.asarray(x, dtype=float).ravel()]
    return np.array(flat).reshape(np.shape(x))


def softmax_ref(z):
    """exp(z_i - max) / sum_j exp(z_j - max) along the last axis, row by row."""
    import math
    z = np.asarray(z, dtype=float)
    out = np.zeros_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        row = z[idx]
        m = max(row)
        total = math.fsum(math.exp(v - m) for v in row)
        out[idx] = [math.exp(v - m) / total for v in row]
    return out

