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

# === dense and activations (owner: compose) ==================================
