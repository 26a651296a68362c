"""One layer, or one padding, of a network in each framework, for compare.py's per-operation
table. Standard library only at the top: each adapter imports its own framework, in a process
that runs only that framework (compare_child.py).

An adapter has ``prefix(x, i)`` (the input layer i sees, NumPy in, native out), ``layer(i, x)``
and ``pad(pads, mode, x)``, each returning (forward, backward) callables. A backward here
includes the input's gradient; it reads the cache of the last forward, which the timing of
the forward leaves behind.
"""


def label(d):
    """A short name for a layer dict of net_spec.describe."""
    (t, b), (l, r) = d["padding"]
    pad = "" if t == b == l == r == 0 else f" pad {t},{b},{l},{r}"
    k, s = d["kernel_size"], d["stride"]
    kernel = f"{k[0]}x{k[1]}" + ("" if s == [1, 1] else f" s{s[0]}" if s[0] == s[1] else f" s{s}")
    if d["kind"] == "conv":
        groups = f" g{d['groups']}" if d["groups"] > 1 else ""
        mode = f" {d['padding_mode']}" if pad else ""
        relu = "+relu" if d["relu"] else ""
        return f"conv{relu} {d['in_channels']}->{d['out_channels']} {kernel}{groups}{pad}{mode}"
    return f"{d['kind']} {kernel}{pad}"


#: operations timed on their own, beside the networks' layers: (row name, layer dict); the
#: input is (64,) + "input_shape" of standard normal values (seeded)
EXTRA = [
    ("batchnorm2d 32ch 14x14 (train)",
     {"kind": "batchnorm2d", "input_shape": [32, 14, 14]}),
    ("convtranspose 32->16 3x3 s2 pad 1 out_pad 1",
     {"kind": "convtranspose", "input_shape": [32, 7, 7], "out_channels": 16,
      "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}),
]


def extra_input(d, batch=64):
    import numpy as np

    shape = (batch,) + tuple(d["input_shape"])
    return np.random.default_rng(5).standard_normal(shape).astype(np.float32)


def _dout(shape):
    import numpy as np

    return np.random.default_rng(3).standard_normal(shape).astype(np.float32)


class minicnn_ops:
    def __init__(self, model):
        self.model = model

    def prefix(self, x, i):
        for j in range(i):
            x = self.model[j].forward(x, training=False)
        return x

    def layer(self, i, x):
        layer = self.model[i]
        dout = _dout(layer.forward(x, training=True).shape)
        return (lambda: layer.forward(x, training=True)), (lambda: layer.backward(dout))

    def extra(self, d):
        import minicnn

        x = extra_input(d)
        if d["kind"] == "batchnorm2d":
            layer = minicnn.BatchNorm2D(d["input_shape"][0])
        else:
            layer = minicnn.ConvTranspose2D(d["input_shape"][0], d["out_channels"],
                                            d["kernel_size"], d["stride"], d["padding"],
                                            d["output_padding"], rng=0)
        dout = _dout(layer.forward(x, training=True).shape)
        return (lambda: layer.forward(x, training=True)), (lambda: layer.backward(dout))

    def pad(self, pads, mode, x):
        from minicnn import functional as F

        padded = F.pad(x, pads, mode)
        return (lambda: F.pad(x, pads, mode),
                lambda: F.pad_backward(padded, pads, mode, x.shape[2:]))


class numpy_ops:
    MODES = {"zeros": "constant", "reflect": "reflect"}

    def __init__(self, network):
        self.layers = network.layers

    def prefix(self, x, i):
        for layer in self.layers[:i]:
            x = layer.forward(x)
        return x

    def layer(self, i, x):
        layer = self.layers[i]
        dout = _dout(layer.forward(x).shape)
        return (lambda: layer.forward(x)), (lambda: layer.backward(dout))

    def pad(self, pads, mode, x):
        import numpy as np

        import numpy_reference

        (t, b), (l, r) = pads
        widths = ((0, 0), (0, 0), (t, b), (l, r))
        padded = np.pad(x, widths, mode=self.MODES[mode])
        return (lambda: np.pad(x, widths, mode=self.MODES[mode]),
                lambda: numpy_reference._pad_adjoint(padded, pads, mode, x.shape[2:]))


class torch_ops:
    MODES = {"zeros": "constant", "reflect": "reflect"}

    def __init__(self, model):
        self.model = model

    def prefix(self, x, i):
        import torch

        with torch.no_grad():
            return self.model[:i](torch.from_numpy(x)) if i else torch.from_numpy(x)

    def layer(self, i, x):
        return self._timed(self.model[i], x)

    def extra(self, d):
        import torch

        x = torch.from_numpy(extra_input(d))
        if d["kind"] == "batchnorm2d":
            module = torch.nn.BatchNorm2d(d["input_shape"][0])
        else:
            module = torch.nn.ConvTranspose2d(d["input_shape"][0], d["out_channels"],
                                              d["kernel_size"], d["stride"], d["padding"],
                                              d["output_padding"])
        module.train()
        return self._timed(module, x)

    @staticmethod
    def _timed(module, x):
        """(forward, backward) of one module: the backward is autograd's gradient of the
        input and the parameters through a graph built once (retained between calls)."""
        import torch

        xg = x.detach().clone().requires_grad_(True)
        out = module(xg)
        dout = torch.from_numpy(_dout(tuple(out.shape)))
        inputs = [xg] + list(module.parameters())

        def forward():
            with torch.no_grad():
                return module(x)

        return forward, lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True)

    def pad(self, pads, mode, x):
        import torch

        (t, b), (l, r) = pads
        pad = torch.nn.functional.pad
        widths, tmode = (l, r, t, b), self.MODES[mode]
        xg = x.detach().clone().requires_grad_(True)
        out = pad(xg, widths, mode=tmode)
        dout = torch.from_numpy(_dout(tuple(out.shape)))
        return (lambda: pad(x, widths, mode=tmode),
                lambda: torch.autograd.grad(out, [xg], dout, retain_graph=True))
