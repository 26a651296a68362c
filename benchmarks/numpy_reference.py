"""A CNN written the way a careful from-scratch NumPy author would write it.

This is the benchmark's "plain NumPy" peer, not part of minicnn: im2col through
``sliding_window_view`` (stride tricks) plus one matmul, col2im by looping over the
kernel offsets, padding with ``np.pad`` and its adjoint with ``np.add.at``, max
pooling with an argmax over the window axis. It is vectorised (no Python loop over
samples or pixels), so the comparison with minicnn measures the kernels, not a
strawman. ``from_spec`` builds it from ``net_spec.describe``'s plain description and
weights (no minicnn import), ``from_minicnn`` from a minicnn Sequential: all peers compute
the same function.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_NP_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
             "circular": "wrap", "symmetric": "symmetric"}


def _pad_adjoint(dxp, pads, mode, hw):
    """Sum each padded position's gradient back into its source pixel."""
    (t, b), (l, r) = pads
    h, w = hw
    if mode == "zeros":
        return dxp[:, :, t:t + h, l:l + w]
    rows = np.pad(np.arange(h), (t, b), mode=_NP_MODES[mode])
    cols = np.pad(np.arange(w), (l, r), mode=_NP_MODES[mode])
    tmp = np.zeros(dxp.shape[:2] + (h, dxp.shape[3]), dxp.dtype)
    np.add.at(tmp, (slice(None), slice(None), rows), dxp)
    dx = np.zeros(dxp.shape[:2] + (h, w), dxp.dtype)
    np.add.at(dx, (slice(None), slice(None), slice(None), cols), tmp)
    return dx


class Conv:
    def __init__(self, weight, bias, stride, padding, padding_mode, groups):
        self.w, self.b = weight.copy(), bias.copy()
        self.stride, self.pads, self.mode, self.groups = stride, padding, padding_mode, groups

    def params(self):
        return [(self.w, "dw"), (self.b, "db")]

    def forward(self, x):
        (t, b), (l, r) = self.pads
        xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode=_NP_MODES[self.mode])
        o, cg, kh, kw = self.w.shape
        sh, sw = self.stride
        n, c = x.shape[:2]
        g = self.groups
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        oh, ow = win.shape[2:4]
        # cols: (groups, N*OH*OW, Cg*KH*KW), one row per output pixel
        cols = win.reshape(n, g, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
        cols = cols.reshape(g, n * oh * ow, cg * kh * kw)
        wmat = self.w.reshape(g, o // g, cg * kh * kw)
        out = cols @ wmat.transpose(0, 2, 1)                       # (g, N*OH*OW, O/g)
        out = out.reshape(g, n, oh, ow, o // g).transpose(1, 0, 4, 2, 3).reshape(n, o, oh, ow)
        self.cache = (x.shape, xp.shape, cols, oh, ow)
        return out + self.b.reshape(1, o, 1, 1)

    def backward(self, dout, need_dx=True):
        xshape, xpshape, cols, oh, ow = self.cache
        o, cg, kh, kw = self.w.shape
        sh, sw = self.stride
        n = dout.shape[0]
        g = self.groups
        self.db = dout.sum(axis=(0, 2, 3))
        d = dout.reshape(n, g, o // g, oh, ow).transpose(1, 0, 3, 4, 2).reshape(g, n * oh * ow, o // g)
        self.dw = (d.transpose(0, 2, 1) @ cols).reshape(self.w.shape)
        if not need_dx:
            return None
        dcols = d @ self.w.reshape(g, o // g, cg * kh * kw)        # (g, N*OH*OW, Cg*KH*KW)
        dcols = dcols.reshape(g, n, oh, ow, cg, kh, kw).transpose(1, 0, 4, 5, 6, 2, 3)
        dcols = dcols.reshape(n, g * cg, kh, kw, oh, ow)
        dxp = np.zeros(xpshape, dout.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dcols[:, :, i, j]
        return _pad_adjoint(dxp, self.pads, self.mode, xshape[2:])


class MaxPool:
    def __init__(self, kernel_size, stride, padding):
        self.k, self.s, self.p = kernel_size, stride, padding

    def forward(self, x):
        (kh, kw), (sh, sw), ((t, b), (l, r)) = self.k, self.s, self.p
        xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        n, c, oh, ow = win.shape[:4]
        flat = win.reshape(n, c, oh, ow, kh * kw)
        arg = flat.argmax(axis=-1)
        self.cache = (x.shape, xp.shape, arg)
        return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        (kh, kw), (sh, sw), ((t, b), (l, r)) = self.k, self.s, self.p
        xshape, xpshape, arg = self.cache
        oh, ow = dout.shape[2:]
        dxp = np.zeros(xpshape, dout.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dout * (arg == i * kw + j)
        return dxp[:, :, t:t + xshape[2], l:l + xshape[3]]


class AvgPool:
    """Average pooling without padding (the only form the benchmark networks use)."""

    def __init__(self, kernel_size, stride):
        self.k, self.s = kernel_size, stride

    def forward(self, x):
        (kh, kw), (sh, sw) = self.k, self.s
        win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        self.shape = x.shape
        return win.mean(axis=(-2, -1))

    def backward(self, dout):
        (kh, kw), (sh, sw) = self.k, self.s
        oh, ow = dout.shape[2:]
        dx = np.zeros(self.shape, dout.dtype)
        share = dout / (kh * kw)
        for i in range(kh):
            for j in range(kw):
                dx[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += share
        return dx


class Dense:
    def __init__(self, weight, bias):
        self.w, self.b = weight.copy(), bias.copy()

    def params(self):
        return [(self.w, "dw"), (self.b, "db")]

    def forward(self, x):
        self.x = x
        return x @ self.w.T + self.b

    def backward(self, dout, need_dx=True):
        self.dw = dout.T @ self.x
        self.db = dout.sum(axis=0)
        return dout @ self.w if need_dx else None


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class ConvReLU(ReLU):
    """A convolution followed by ReLU, as one layer (minicnn's Conv2D(activation='relu'))."""

    def __init__(self, conv):
        self.conv = conv

    def params(self):
        return self.conv.params()

    def __getattr__(self, name):          # dw, db: the convolution's gradients
        if "conv" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["conv"], name)

    def forward(self, x):
        return super().forward(self.conv.forward(x))

    def backward(self, dout, need_dx=True):
        return self.conv.backward(super().backward(dout), need_dx)


class Flatten:
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


class Network:
    def __init__(self, layers):
        self.layers = layers
        self.velocity = {}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss_and_backward(self, logits, y):
        """Softmax cross-entropy (mean over the batch) and the full backward pass."""
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = len(y)
        loss = -logp[np.arange(n), y].mean()
        d = np.exp(logp)
        d[np.arange(n), y] -= 1
        d /= n
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            if i == 0 and isinstance(layer, (Conv, ConvReLU, Dense)):
                layer.backward(d, need_dx=False)   # nobody needs the input's gradient
            else:
                d = layer.backward(d)
        return loss

    def sgd_step(self, lr, momentum, weight_decay):
        """PyTorch's SGD: g += wd * p; v = momentum * v + g; p -= lr * v."""
        for layer in self.layers:
            for p, gname in getattr(layer, "params", lambda: [])():
                g = getattr(layer, gname) + weight_decay * p
                v = self.velocity.get(id(p))
                v = g if v is None else momentum * v + g
                self.velocity[id(p)] = v
                p -= lr * v

    def train_step(self, x, y, lr=0.01, momentum=0.9, weight_decay=5e-4):
        loss = self.loss_and_backward(self.forward(x), y)
        self.sgd_step(lr, momentum, weight_decay)
        return loss


def from_minicnn(model, input_shape=(1, 28, 28)):
    """A Network computing the same function as a minicnn Sequential (same weights)."""
    import net_spec

    spec, weights = net_spec.describe(model, input_shape)
    return from_spec(spec, weights)


def from_spec(spec, weights):
    """A Network from ``net_spec.describe``'s (spec, weights): no minicnn needed."""
    layers = []
    for i, d in enumerate(spec):
        kind = d["kind"]
        if kind == "conv":
            if d["dilation"] != [1, 1] or d["flip_kernel"]:
                raise ValueError(f"layer {i}: the NumPy reference has no dilation or flip_kernel")
            w = weights[f"{i}.weight"]
            bias = weights.get(f"{i}.bias", np.zeros(d["out_channels"], w.dtype))
            conv = Conv(w, bias, tuple(d["stride"]), tuple(map(tuple, d["padding"])),
                        d["padding_mode"], d["groups"])
            # Conv2D(activation='relu'): the ReLU goes with it, one peer per minicnn layer
            layers.append(ConvReLU(conv) if d["relu"] else conv)
        elif kind in ("maxpool", "avgpool"):
            if d["ceil_mode"]:
                raise ValueError(f"layer {i}: the NumPy reference has no ceil_mode")
            k, s = tuple(d["kernel_size"]), tuple(d["stride"])
            pads = tuple(map(tuple, d["padding"]))
            if kind == "maxpool":
                layers.append(MaxPool(k, s, pads))
            elif pads != ((0, 0), (0, 0)):
                raise ValueError(f"layer {i}: the NumPy reference's AvgPool has no padding")
            else:
                layers.append(AvgPool(k, s))
        elif kind == "dense":
            w = weights[f"{i}.weight"]
            layers.append(Dense(w, weights.get(f"{i}.bias", np.zeros(d["out_features"], w.dtype))))
        elif kind == "relu":
            layers.append(ReLU())
        elif kind == "flatten":
            layers.append(Flatten())
        else:
            raise ValueError(f"layer {i}: the NumPy reference has no {kind!r} layer")
    return Network(layers)
