"""A minicnn Sequential as plain data, so a peer can be built in a process without minicnn.

``describe(model)`` returns (spec, weights): ``spec`` is a JSON-able list with one dict per
layer, ``weights`` maps "i.weight" / "i.bias" to arrays (as ``Sequential.state_dict`` names
them). ``numpy_reference.from_spec`` builds its twin from these two alone, so compare.py's
NumPy process never imports minicnn (its PyTorch process loads the module that
``minicnn.interop.to_torch`` made, saved by compare_child.py's prepare job).

Layer dicts (paddings resolved to ((top, bottom), (left, right)) for the given input size):
  {"kind": "conv", "in_channels", "out_channels", "kernel_size", "stride", "padding",
   "dilation", "groups", "padding_mode", "relu", "bias", "flip_kernel"}
  {"kind": "maxpool" | "avgpool", "kernel_size", "stride", "padding", "ceil_mode"}
  {"kind": "dense", "in_features", "out_features", "bias"}
  {"kind": "relu"}, {"kind": "flatten"}
Every dict also holds "input_shape" (C, H, W) and "macs" (multiply-accumulates per image,
from the layer's own ``macs``, as ``model.summary`` counts them).
"""


def _pair(v):
    return [int(v[0]), int(v[1])]


def describe(model, input_shape=(1, 28, 28)):
    """(spec, weights) of a minicnn Sequential for inputs of ``input_shape`` (C, H, W)."""
    from minicnn import geometry
    from minicnn.summary import summarize

    rows = summarize(model, input_shape).rows
    spec, weights = [], {}
    shape = tuple(input_shape)
    for i, (layer, row) in enumerate(zip(model, rows)):
        name = type(layer).__name__
        hw = shape[1:]
        if name == "Conv2D":
            pads = geometry.resolve_padding(layer.padding, hw, layer.kernel_size,
                                            layer.stride, layer.dilation)
            d = {"kind": "conv", "in_channels": layer.in_channels,
                 "out_channels": layer.out_channels, "kernel_size": _pair(layer.kernel_size),
                 "stride": _pair(layer.stride), "padding": [_pair(p) for p in pads],
                 "dilation": _pair(layer.dilation), "groups": int(layer.groups),
                 "padding_mode": layer.padding_mode, "relu": layer.activation == "relu",
                 "bias": "bias" in layer.params,
                 "flip_kernel": bool(getattr(layer, "flip_kernel", False))}
            if layer.activation not in (None, "relu"):
                raise ValueError(f"net_spec.describe: layer {i} has activation "
                                 f"{layer.activation!r}; the peers know only None and 'relu'")
        elif name in ("MaxPool2D", "AvgPool2D"):
            d = {"kind": "maxpool" if name == "MaxPool2D" else "avgpool",
                 "kernel_size": _pair(layer.kernel_size), "stride": _pair(layer.stride),
                 "padding": [_pair(p) for p in layer.padding], "ceil_mode": bool(layer.ceil_mode)}
        elif name == "Dense":
            d = {"kind": "dense", "in_features": layer.in_features,
                 "out_features": layer.out_features, "bias": "bias" in layer.params}
        elif name in ("ReLU", "Flatten"):
            d = {"kind": name.lower()}
        else:
            raise ValueError(f"net_spec.describe: layer {i} is a {name}; the peers have no twin "
                             "for it (Conv2D, MaxPool2D, AvgPool2D, Dense, ReLU, Flatten only)")
        d["input_shape"] = [int(v) for v in shape]
        d["macs"] = int(row["macs"])
        spec.append(d)
        for pname, value in layer.params.items():
            weights[f"{i}.{pname}"] = value.copy()
        shape = tuple(row["output_shape"])
    return spec, weights
