"""PyTorch twins of minicnn networks, for the benchmarks (PyTorch is never a minicnn dependency).

``from_spec`` builds a twin from ``net_spec.describe``'s plain description and weights, so a
process can build it without importing minicnn; ``twin`` does it from a minicnn Sequential.
Module i of a twin is the twin of layer i.
"""
import numpy as np

_PAD_MODES = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


def twin(model, input_shape=(1, 28, 28)):
    """A torch.nn.Sequential computing the same function as a minicnn Sequential, same weights."""
    import net_spec

    return from_spec(*net_spec.describe(model, input_shape))


def _conv(i, d):
    from torch import nn

    if d["flip_kernel"]:
        raise ValueError(f"layer {i}: the PyTorch twin has no flip_kernel")
    (t, b), (l, r) = d["padding"]
    symmetric = t == b and l == r
    conv = nn.Conv2d(d["in_channels"], d["out_channels"], tuple(d["kernel_size"]),
                     stride=tuple(d["stride"]), padding=(t, l) if symmetric else 0,
                     dilation=tuple(d["dilation"]), groups=d["groups"], bias=d["bias"],
                     padding_mode=_PAD_MODES[d["padding_mode"]])
    if not symmetric:   # explicit padding first; one module per minicnn layer still
        if d["padding_mode"] not in ("zeros", "reflect"):
            raise ValueError(f"layer {i}: the PyTorch twin pads asymmetrically only with "
                             f"zeros or reflect, not {d['padding_mode']!r}")
        pad = (nn.ZeroPad2d((l, r, t, b)) if d["padding_mode"] == "zeros"
               else nn.ReflectionPad2d((l, r, t, b)))
        conv = nn.Sequential(pad, conv)
    return nn.Sequential(conv, nn.ReLU()) if d["relu"] else conv


def _pool(i, d):
    from torch import nn

    (t, b), (l, r) = d["padding"]
    if t != b or l != r:
        raise ValueError(f"layer {i}: the PyTorch twin needs symmetric pool padding, got "
                         f"{d['padding']}")
    cls = nn.MaxPool2d if d["kind"] == "maxpool" else nn.AvgPool2d
    return cls(tuple(d["kernel_size"]), tuple(d["stride"]), (t, l), ceil_mode=d["ceil_mode"])


def from_spec(spec, weights):
    """A torch.nn.Sequential from (spec, weights) of ``net_spec.describe``: no minicnn needed."""
    import torch
    from torch import nn

    out = []
    for i, d in enumerate(spec):
        kind = d["kind"]
        if kind == "conv":
            out.append(_conv(i, d))
        elif kind in ("maxpool", "avgpool"):
            out.append(_pool(i, d))
        elif kind == "dense":
            out.append(nn.Linear(d["in_features"], d["out_features"], bias=d["bias"]))
        elif kind == "relu":
            out.append(nn.ReLU())
        elif kind == "flatten":
            out.append(nn.Flatten())
        else:
            raise ValueError(f"layer {i}: no PyTorch twin for {kind!r}")
        if f"{i}.weight" in weights:
            target = [m for m in out[-1].modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
            with torch.no_grad():
                target.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[f"{i}.weight"])))
                if f"{i}.bias" in weights:
                    target.bias.copy_(torch.from_numpy(np.ascontiguousarray(weights[f"{i}.bias"])))
    return nn.Sequential(*out)
