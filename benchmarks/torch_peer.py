"""PyTorch twins of minicnn networks, for the benchmarks (PyTorch is never a minicnn dependency)."""
import numpy as np


def twin(model, input_hw=(28, 28)):
    """A torch.nn.Sequential computing the same function as a minicnn Sequential, same weights.

    Module i of the twin is the twin of layer i of ``model``.
    """
    import torch
    from torch import nn

    from minicnn import geometry

    modes = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
    out = []
    hw = input_hw
    for layer in model:
        name = type(layer).__name__
        if name == "Conv2D":
            (t, b), (l, r) = geometry.resolve_padding(layer.padding, hw, layer.kernel_size,
                                                      layer.stride, layer.dilation)
            symmetric = t == b and l == r
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                             stride=layer.stride, padding=(t, l) if symmetric else 0,
                             dilation=layer.dilation, groups=layer.groups,
                             bias="bias" in layer.params, padding_mode=modes[layer.padding_mode])
            if not symmetric:   # explicit padding first; one module per minicnn layer still
                pad = (nn.ZeroPad2d((l, r, t, b)) if layer.padding_mode == "zeros"
                       else nn.ReflectionPad2d((l, r, t, b)))
                conv = nn.Sequential(pad, conv)
            if layer.activation == "relu":
                conv = nn.Sequential(conv, nn.ReLU())
            out.append(conv)
            hw = tuple(geometry.conv_output_size(n, k, s, p, q, d) for n, k, s, (p, q), d in
                       zip(hw, layer.kernel_size, layer.stride, ((t, b), (l, r)), layer.dilation))
        elif name in ("MaxPool2D", "AvgPool2D"):
            pads = layer.padding
            if pads[0][0] != pads[0][1] or pads[1][0] != pads[1][1]:
                raise ValueError("the PyTorch twin needs symmetric pool padding")
            cls = nn.MaxPool2d if name == "MaxPool2D" else nn.AvgPool2d
            out.append(cls(layer.kernel_size, layer.stride, (pads[0][0], pads[1][0]),
                           ceil_mode=layer.ceil_mode))
            hw = tuple(geometry.pool_output_size(n, k, s, *p, layer.ceil_mode)
                       for n, k, s, p in zip(hw, layer.kernel_size, layer.stride, pads))
        elif name == "Dense":
            out.append(nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params))
        elif name == "ReLU":
            out.append(nn.ReLU())
        elif name == "Flatten":
            out.append(nn.Flatten())
        else:
            raise ValueError(f"no PyTorch twin for {name}")
        if layer.params:
            target = [m for m in out[-1].modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
            with torch.no_grad():
                target.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["weight"])))
                if "bias" in layer.params:
                    target.bias.copy_(torch.from_numpy(layer.params["bias"]))
    return nn.Sequential(*out)
