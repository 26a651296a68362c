"""Export a model to ONNX: ``export_onnx(model, path, input_shape)``.

The file holds one graph, opset 17, float32 (a float64 model's weights are rounded to
float32), from input ``input`` of shape (N, C, H, W), N left free, to output ``output``: the
model's forward in evaluation mode (its logits; ``model.predict`` adds the softmax). It is
checked with ``onnx.checker`` (full check, with shape inference) before it is written, and
written atomically: a failure leaves any earlier file whole. The ``onnx`` package is
optional (``pip install 'minicnn[onnx]'``, which brings onnxruntime to run the file too);
without it, ``minicnn.extras.MissingExtraError`` says so in one line.

What each layer becomes (``EXPORTERS``, a table from layer class to exporter, so a new
layer needs one function):

- Conv2D: Conv (strides, dilations, group, pads), its bias, then Relu for
  ``activation='relu'``; ``flip_kernel=True`` exports the kernel rotated by 180 degrees; a
  padding mode other than zeros is a padding node before a Conv without pads.
- Pad: Pad in 'constant' (zeros too), 'reflect' or 'edge' (minicnn's 'replicate') mode;
  'circular' and 'symmetric' are Slice and Concat nodes (opset 17's Pad has no 'wrap', and
  no ONNX Pad repeats the edge pixel when it mirrors).
- MaxPool2D, AvgPool2D, Pool2D: MaxPool or AveragePool with pads (per side) and
  count_include_pad; ceil_mode is resolved here, from the input shape: where the last
  window hangs over the end, the graph pads the end and divides by each window's own count
  (a constant), so no runtime's ceil_mode rule matters.
- GlobalAvgPool2D: GlobalAveragePool. Dense: Gemm (transB=1). Flatten: Flatten(axis=1).
- ReLU, LeakyReLU, Sigmoid, Tanh: Relu, LeakyRelu, Sigmoid, Tanh. Dropout: nothing (the
  identity, as in evaluation).
- BatchNorm2D, BatchNorm1D: BatchNormalization with the running statistics (ones and zeros
  for the scale and shift without ``affine``); with ``track_running_stats=False`` evaluation
  normalises by the batch's own statistics, so the graph computes them (ReduceMean, Sub,
  Mul, Sqrt, Div), as the layer does.
- ConvTranspose2D: ConvTranspose (strides, dilations, group, pads, output_padding).
- Upsample: Resize by the scale factor; 'nearest' as 'nearest' with 'asymmetric'
  coordinates and 'floor' rounding (PyTorch's nearest), 'bilinear' as 'linear' with
  'half_pixel' coordinates, or 'align_corners' when the layer aligns corners.
- Residual: the block's nodes, the shortcut's (none for the identity), then Add. Concat:
  each branch's nodes on the same input, then Concat(axis=1). A block, shortcut or branch
  that is a Sequential is its layers' nodes in turn.
- Identity: nothing. Softmax, LogSoftmax: Softmax, LogSoftmax on the layer's ``dim``.
  GlobalMaxPool2D: GlobalMaxPool.
"""
import numpy as np

from . import geometry
from .extras import require
from .layers.base import Layer
from .layers import (AvgPool2D, BatchNorm1D, BatchNorm2D, Concat, Conv2D, ConvTranspose2D, Dense,
                     Dropout, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, Identity, LeakyReLU,
                     LogSoftmax, MaxPool2D, Pad, Pool2D, ReLU, Residual, Sigmoid, Softmax, Tanh,
                     Upsample)

__all__ = ["OPSET", "EXPORTERS", "Graph", "pad", "to_onnx", "export_onnx"]

OPSET = 17
#: Slice's end for "through index 0" when stepping backwards
_BEFORE_START = -(2**63)


class Graph:
    """The nodes and constants of the graph being built; every value named once."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.constants, self._names = onnx, [], [], set()

    def fresh(self, hint):
        name, k = hint, 1
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def constant(self, hint, array, dtype=np.float32):
        name = self.fresh(hint)
        self.constants.append(self.onnx.numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def ints(self, hint, values):
        return self.constant(hint, values, np.int64)

    def node(self, op, inputs, hint, **attributes):
        out = self.fresh(hint)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out,
                                                     **attributes))
        return out


def _onnx_pads(sides):
    """((top, bottom), (left, right)) as ONNX's pads of the two spatial axes: begins, ends."""
    (top, bottom), (left, right) = sides
    return [top, left, bottom, right]


def _slice(g, x, axis, start, end, step, hint):
    args = [g.ints(f"{hint}/starts", [start]), g.ints(f"{hint}/ends", [end]),
            g.ints(f"{hint}/axes", [axis]), g.ints(f"{hint}/steps", [step])]
    return g.node("Slice", [x] + args, hint)


def _pad_by_copies(g, x, hw, sides, mode, hint):
    """Circular or symmetric padding by Slice and Concat, one spatial axis at a time."""
    for axis, n, (before, after) in ((3, hw[1], sides[1]), (2, hw[0], sides[0])):
        if not (before or after):
            continue
        parts = []
        if before:          # circular: the last `before` rows; symmetric: the first, reversed
            parts.append(_slice(g, x, axis, n - before, n, 1, f"{hint}/before{axis}")
                         if mode == "circular" else
                         _slice(g, x, axis, before - 1, _BEFORE_START, -1, f"{hint}/before{axis}"))
        parts.append(x)
        if after:           # circular: the first `after` rows; symmetric: the last, reversed
            end = n - after - 1
            parts.append(_slice(g, x, axis, 0, after, 1, f"{hint}/after{axis}")
                         if mode == "circular" else
                         _slice(g, x, axis, n - 1, end if end >= 0 else _BEFORE_START, -1,
                                f"{hint}/after{axis}"))
        x = g.node("Concat", parts, f"{hint}/concat{axis}", axis=axis)
    return x


def pad(g, x, hw, sides, mode, hint, value=0.0):
    """``x`` (N, C, H, W) padded by ((top, bottom), (left, right)) in a minicnn mode."""
    if not any(sides[0] + sides[1]):
        return x
    if mode in ("circular", "symmetric"):
        return _pad_by_copies(g, x, hw, sides, mode, hint)
    (top, bottom), (left, right) = sides
    pads = g.ints(f"{hint}/pads", [0, 0, top, left, 0, 0, bottom, right])
    onnx_mode = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
                 "replicate": "edge"}[mode]
    inputs = [x, pads]
    if onnx_mode == "constant" and value != 0:
        inputs.append(g.constant(f"{hint}/value", value))
    return g.node("Pad", inputs, hint, mode=onnx_mode)


# --- one exporter per layer: (graph, layer, x, input shape (C, H, W), hint) -> output ------
def _conv(g, layer, x, shape, hint):
    sides = geometry.resolve_padding(layer.padding, shape[1:], layer.kernel_size, layer.stride,
                                     layer.dilation)
    if layer.padding_mode != "zeros":
        x, sides = pad(g, x, shape[1:], sides, layer.padding_mode, f"{hint}/pad"), ((0, 0),) * 2
    weight = layer.params["weight"]
    if layer.flip_kernel:               # a true convolution: the kernel rotated by 180 degrees
        weight = weight[..., ::-1, ::-1]
    inputs = [x, g.constant(f"{hint}/weight", weight)]
    if "bias" in layer.params:
        inputs.append(g.constant(f"{hint}/bias", layer.params["bias"]))
    out = g.node("Conv", inputs, f"{hint}/conv", kernel_shape=list(layer.kernel_size),
                 strides=list(layer.stride), dilations=list(layer.dilation),
                 group=layer.groups, pads=_onnx_pads(sides))
    return g.node("Relu", [out], f"{hint}/relu") if layer.activation == "relu" else out


def _window_counts(n, k, stride, before, after, out, include_pad):
    """Per output position along one axis: the cells of its window inside the padded input
    (include_pad) or inside the input, as minicnn's average pooling divides."""
    starts = np.arange(out) * stride - before
    low, high = (-before, n + after) if include_pad else (0, n)
    return np.minimum(starts + k, high) - np.maximum(starts, low)


def _pool(g, layer, x, shape, hint):
    (_, h, w), (kh, kw), (sh, sw) = shape, layer.kernel_size, layer.stride
    (top, bottom), (left, right) = layer.padding
    oh = geometry.pool_output_size(h, kh, sh, top, bottom, layer.ceil_mode)
    ow = geometry.pool_output_size(w, kw, sw, left, right, layer.ceil_mode)
    # the end padding that makes floor mode give (oh, ow): more than `bottom` where the last
    # window hangs over the end in ceil mode
    bottom_all = max(bottom, (oh - 1) * sh + kh - h - top)
    right_all = max(right, (ow - 1) * sw + kw - w - left)
    pads = [top, left, bottom_all, right_all]
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=pads)
    if layer.mode == "max":                    # MaxPool never picks a padded cell
        return g.node("MaxPool", [x], f"{hint}/maxpool", **attrs)
    if (bottom_all, right_all) == (bottom, right):
        return g.node("AveragePool", [x], f"{hint}/avgpool",
                      count_include_pad=int(layer.count_include_pad), **attrs)
    # windows hang over the end: average over whole windows of zeros, then rescale each by
    # its window's size over minicnn's count for it
    out = g.node("AveragePool", [x], f"{hint}/avgpool", count_include_pad=1, **attrs)
    rows = _window_counts(h, kh, sh, top, bottom, oh, layer.count_include_pad)
    cols = _window_counts(w, kw, sw, left, right, ow, layer.count_include_pad)
    scale = (kh * kw) / np.outer(rows, cols)
    return g.node("Mul", [out, g.constant(f"{hint}/scale", scale[None, None])], f"{hint}/scale")


def _pad_layer(g, layer, x, shape, hint):
    return pad(g, x, shape[1:], layer.padding, layer.mode, f"{hint}/pad", layer.value)


def _dense(g, layer, x, shape, hint):
    inputs = [x, g.constant(f"{hint}/weight", layer.params["weight"])]
    if "bias" in layer.params:
        inputs.append(g.constant(f"{hint}/bias", layer.params["bias"]))
    return g.node("Gemm", inputs, f"{hint}/gemm", transB=1)


def _batch_norm(g, layer, x, shape, hint):
    c = layer.num_features
    weight = layer.params.get("weight", np.ones(c))
    bias = layer.params.get("bias", np.zeros(c))
    if layer.track_running_stats:
        inputs = [x, g.constant(f"{hint}/scale", weight), g.constant(f"{hint}/bias", bias),
                  g.constant(f"{hint}/mean", layer.buffers["running_mean"]),
                  g.constant(f"{hint}/var", layer.buffers["running_var"])]
        return g.node("BatchNormalization", inputs, f"{hint}/batchnorm", epsilon=layer.eps)
    # no running statistics: the batch's mean and (biased) variance, per channel
    axes = [0] + list(range(2, len(shape) + 1))
    per_channel = (1, c) + (1,) * (len(shape) - 1)
    mean = g.node("ReduceMean", [x], f"{hint}/mean", axes=axes, keepdims=1)
    centred = g.node("Sub", [x, mean], f"{hint}/centred")
    square = g.node("Mul", [centred, centred], f"{hint}/square")
    var = g.node("ReduceMean", [square], f"{hint}/var", axes=axes, keepdims=1)
    shifted = g.node("Add", [var, g.constant(f"{hint}/eps", layer.eps)], f"{hint}/var_eps")
    std = g.node("Sqrt", [shifted], f"{hint}/std")
    out = g.node("Div", [centred, std], f"{hint}/normalised")
    if "weight" in layer.params:
        out = g.node("Mul", [out, g.constant(f"{hint}/scale", weight.reshape(per_channel))],
                     f"{hint}/scaled")
        out = g.node("Add", [out, g.constant(f"{hint}/bias", bias.reshape(per_channel))],
                     f"{hint}/shifted")
    return out


def _conv_transpose(g, layer, x, shape, hint):
    inputs = [x, g.constant(f"{hint}/weight", layer.params["weight"])]
    if "bias" in layer.params:
        inputs.append(g.constant(f"{hint}/bias", layer.params["bias"]))
    ph, pw = layer.padding
    return g.node("ConvTranspose", inputs, f"{hint}/convtranspose",
                  kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  dilations=list(layer.dilation), group=layer.groups, pads=[ph, pw, ph, pw],
                  output_padding=list(layer.output_padding))


def _upsample(g, layer, x, shape, hint):
    scales = g.constant(f"{hint}/scales", [1, 1, *layer.scale_factor])
    if layer.mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode=(
            "align_corners" if layer.align_corners else "half_pixel"))
    return g.node("Resize", [x, "", scales], f"{hint}/resize", **attrs)


def _residual(g, layer, x, shape, hint):
    out = export_child(g, layer.block, x, shape, f"{hint}.block")
    skip = x if layer.shortcut is None else export_child(g, layer.shortcut, x, shape,
                                                         f"{hint}.shortcut")
    return g.node("Add", [out, skip], f"{hint}/add")


def _concat(g, layer, x, shape, hint):
    outs = [export_child(g, child, x, shape, f"{hint}.{name}") for name, child in layer.children()]
    return g.node("Concat", outs, f"{hint}/concat", axis=1)


def _simple(op, **attributes):
    def export(g, layer, x, shape, hint):
        attrs = {k: f(layer) for k, f in attributes.items()}
        return g.node(op, [x], f"{hint}/{op.lower()}", **attrs)

    return export


#: layer class -> exporter(graph, layer, x, input shape, name hint) -> the output's name
EXPORTERS = {
    Conv2D: _conv,
    Pool2D: _pool, MaxPool2D: _pool, AvgPool2D: _pool,
    GlobalAvgPool2D: _simple("GlobalAveragePool"),
    Pad: _pad_layer,
    Dense: _dense,
    Flatten: _simple("Flatten", axis=lambda layer: 1),
    ReLU: _simple("Relu"),
    LeakyReLU: _simple("LeakyRelu", alpha=lambda layer: layer.negative_slope),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    Dropout: lambda g, layer, x, shape, hint: x,
    BatchNorm2D: _batch_norm, BatchNorm1D: _batch_norm,
    ConvTranspose2D: _conv_transpose,
    Upsample: _upsample,
    Residual: _residual, Concat: _concat,
    Identity: lambda g, layer, x, shape, hint: x,
    Softmax: _simple("Softmax", axis=lambda layer: layer.dim),
    LogSoftmax: _simple("LogSoftmax", axis=lambda layer: layer.dim),
    GlobalMaxPool2D: _simple("GlobalMaxPool"),
}


def export_child(g, child, x, shape, hint):
    """The output name of ``child`` (a layer, or a Sequential: its layers in turn) on ``x``
    of one sample's ``shape``; ``hint`` names it (its index, dotted inside containers)."""
    if not isinstance(child, Layer):                 # a Sequential inside a container
        for i, layer in enumerate(child):
            x = export_child(g, layer, x, shape, f"{hint}.{i}")
            shape = tuple(layer.output_shape(shape))
        return x
    export = EXPORTERS.get(type(child))
    if export is None:
        known = ", ".join(sorted(cls.__name__ for cls in EXPORTERS))
        raise ValueError(f"export_onnx: layer {hint} {child!r} has no ONNX exporter; "
                         f"export_onnx knows {known}")
    return export(g, child, x, shape, hint)


def to_onnx(model, input_shape=None, metadata=None):
    """The ``onnx.ModelProto`` of ``model`` for one sample of ``input_shape`` (C, H, W),
    checked by ``onnx.checker``. Without ``input_shape``: the one ``model.summary()`` uses.
    ``metadata`` ({name: value}) goes into the file's metadata_props, values as text."""
    from . import __version__

    onnx = require("onnx", "export_onnx")      # with onnx.helper, numpy_helper and checker
    helper = onnx.helper
    table = model.summary(input_shape, print_fn=None)     # checks every layer fits its input
    g = Graph(onnx)
    x = g.fresh("input")
    shape = table.input_shape
    for i, layer in enumerate(model):
        x = export_child(g, layer, x, shape, str(i))
        shape = tuple(layer.output_shape(shape))
    if g.nodes and g.nodes[-1].output[0] == x:   # the last node makes the output: name it so
        g.nodes[-1].output[0] = "output"
    else:                                           # the input itself (or a Dropout's)
        g.node("Identity", [x], "output")
    float32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "minicnn",
        [helper.make_tensor_value_info("input", float32, ["N", *table.input_shape])],
        [helper.make_tensor_value_info("output", float32, ["N", *shape])], g.constants)
    proto = helper.make_model(graph, producer_name="minicnn", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              doc_string=" -> ".join(repr(layer) for layer in model))
    proto.ir_version = min(proto.ir_version, 8)         # what opset 17's runtimes read
    if metadata:
        helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, input_shape=None, metadata=None):
    """Write ``model`` to ``path`` as ONNX (see the module docstring), atomically; returns
    ``path``. ``input_shape`` is one sample's (C, H, W); N stays free in the file.
    ``metadata`` ({name: value}, e.g. the input's normalisation) is stored as text."""
    from ._atomic import atomic_write

    proto = to_onnx(model, input_shape, metadata)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path
