"""model.explain(): the arithmetic of every layer, written out with its numbers.

For each layer the formulas of the convolution notes with this model's values filled in:
the output size floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1 (ceil in ceil_mode
pooling), how 'same' splits its padding, the parameters and multiply-accumulates as
products, and the receptive field r = r_in + (K-1)*D*j_in with its jump j = j_in*S.
The values come from geometry.py's functions and the summary's rows (which check that
every layer can take its input), so the text shows the numbers the layers compute with.

A formula that reads the same along H and W is written once, as ``H, W``.
"""
from . import geometry
from .layers import Conv2D, Dense, Flatten, GlobalAvgPool2D, Pad, Pool2D
from .summary import summarize

__all__ = ["Explanation", "explain"]

SIZE = "floor((X + P_before + P_after - D*(K-1) - 1) / S) + 1"
SAME = ("'same' padding: total = max((ceil(X/S) - 1)*S + D*(K-1) + 1 - X, 0),\n"
        "                before = floor(total/2), after = total - before")
RECEPTIVE = "receptive field r = r_in + (K-1)*D*j_in, jump j = j_in*S"


class Explanation(str):
    """The text model.explain() returns: a str whose repr is the text itself, so a Python
    prompt or a notebook cell shows it as lines, not as one quoted string."""

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, printer, cycle):  # IPython's plain-text display
        printer.text(str(self))


def explain(model, input_shape):
    """The Explanation of ``model`` (a Sequential) for one sample of ``input_shape`` (C, H, W).

    Raises what ``summarize`` raises for a shape the model cannot take.
    """
    table = summarize(model, input_shape)
    shape = table.input_shape
    lines = [f"explain: one input of shape {_shape(shape)}",
             "X input size, K kernel, S stride, D dilation, P padding (per axis: H then W)",
             "input: receptive field r = 1, jump j = 1"]
    rf, jump = (1, 1), (1, 1)
    for layer, row in zip(model.layers, table.rows):
        lines += ["", f"layer {row['index']}: {row['layer']}",
                  f"  input {_shape(shape)} -> output {_shape(row['output_shape'])}"]
        lines += ["  " + line for line in _layer_lines(layer, shape, row, rf, jump)]
        shape, rf, jump = row["output_shape"], row["receptive_field"], row["jump"]
    lines += ["", f"total: {table.total_params:,} parameters, {table.total_macs:,} MACs per "
                  f"image, receptive field {rf[0]} x {rf[1]} input pixels (jump {_axes(jump)})"]
    return Explanation("\n".join(lines))


def _layer_lines(layer, shape, row, rf, jump):
    if isinstance(layer, Conv2D):
        return _conv(layer, shape, row, rf, jump)
    if isinstance(layer, Pool2D):
        return _pool(layer, shape, rf, jump)
    if isinstance(layer, GlobalAvgPool2D):
        out = ["one window over the whole input: K = X, S = 1, so H, W = 1"]
        return out + _receptive(layer.receptive_params_for(shape), rf, jump)
    if isinstance(layer, Pad):
        (t, b), (l, r) = layer.padding
        return ["output size = X + P_before + P_after"] + _per_axis(
            [f"{shape[1]} + {t} + {b} = {shape[1] + t + b}",
             f"{shape[2]} + {l} + {r} = {shape[2] + l + r}"])
    if isinstance(layer, Flatten):
        return [f"output size = {'*'.join('CHW'[-len(shape):]) if len(shape) <= 3 else 'product'}"
                f" = {'*'.join(str(v) for v in shape)} = {row['output_shape'][0]:,}"]
    if isinstance(layer, Dense):
        i, o = layer.in_features, layer.out_features
        bias = "bias" in layer.params
        return [f"parameters = in*out{' + out' if bias else ''} = {i}*{o}"
                f"{f' + {o}' if bias else ''} = {row['params']:,}",
                f"MACs = in*out = {i}*{o} = {row['macs']:,}"]
    lines = [f"parameters: {row['params']:,}"] if row["params"] else []
    lines += [f"MACs: {row['macs']:,}"] if row["macs"] else []
    return lines + _receptive(layer.receptive_params_for(shape), rf, jump)


def _conv(layer, shape, row, rf, jump):
    _, h, w = shape
    padding = geometry.resolve_padding(layer.padding, (h, w), layer.kernel_size, layer.stride,
                                       layer.dilation)
    axes = list(zip((h, w), layer.kernel_size, layer.stride, layer.dilation, padding))
    lines = []
    if layer.padding == "same":
        lines += SAME.split("\n")
        lines += _per_axis([_same(n, k, s, d, side) for (n, k, s, d, _), side
                            in zip(axes, ("bottom", "right"))], "bottom/right")
    lines.append(f"output size = {SIZE}")
    lines += _per_axis([_size("floor", n, k, s, pads, d) for n, k, s, d, pads in axes])
    (kh, kw), g = layer.kernel_size, layer.groups
    cin, cout = layer.in_channels, layer.out_channels
    kernel = ("K^2", f"{kh}^2") if kh == kw else ("KH*KW", f"{kh}*{kw}")
    bias = "bias" in layer.params
    lines.append(f"parameters = Cout*(Cin/groups)*{kernel[0]}{' + Cout' if bias else ''} = "
                 f"{cout}*({cin}/{g})*{kernel[1]}{f' + {cout}' if bias else ''} = {row['params']:,}")
    _, oh, ow = row["output_shape"]
    lines.append(f"MACs = OH*OW*{kernel[0]}*Cin*Cout/groups = {oh}*{ow}*{kernel[1]}*{cin}*{cout}/{g}"
                 f" = {row['macs']:,}")
    return lines + _receptive(layer.receptive_params(), rf, jump)


def _pool(layer, shape, rf, jump):
    rounding = "ceil" if layer.ceil_mode else "floor"
    _, h, w = shape
    lines = [f"output size = {SIZE.replace('floor', rounding)}, D = 1"
             f"{' (ceil_mode)' if layer.ceil_mode else ''}"]
    lines += _per_axis([_size(rounding, n, k, s, pads, 1) for n, k, s, pads
                        in zip((h, w), layer.kernel_size, layer.stride, layer.padding)])
    return lines + _receptive(layer.receptive_params(), rf, jump)


def _size(rounding, n, k, s, pads, d):
    """One axis of the output-size formula with its numbers, ending in the size."""
    before, after = pads
    text = f"{rounding}(({n} + {before} + {after} - {d}*({k}-1) - 1) / {s}) + 1"
    if rounding == "floor":
        return f"{text} = {geometry.conv_output_size(n, k, s, before, after, d)}"
    out = geometry.pool_output_size(n, k, s, before, after, ceil_mode=True)
    unclipped = -(-(n + before + after - k) // s) + 1
    if out == unclipped:
        return f"{text} = {out}"
    return (f"{text} = {unclipped}, but the last window would start at ({unclipped}-1)*{s} = "
            f"{(unclipped - 1) * s}\n>= X + P_before = {n + before}, in the padding after the "
            f"input, so it is dropped: {out}")


def _same(n, k, s, d, side):
    """One axis of 'same' padding: its total, then the split (the odd one goes after)."""
    before, after = geometry.same_padding(n, k, s, d)
    total = before + after
    odd = f" (odd: the extra one goes to the {side})" if total % 2 else ""
    return (f"total = max((ceil({n}/{s}) - 1)*{s} + {d}*({k}-1) + 1 - {n}, 0) = {total},\n"
            f"before = floor({total}/2) = {before}, after = {total} - {before} = {after}{odd}")


def _receptive(params, rf, jump):
    """The receptive-field and jump steps along each axis, or nothing for a layer without
    a window (its receptive field and jump stay as they were)."""
    if params is None:
        return []
    steps = []
    for r, j, k, s, d in zip(rf, jump, *params):
        r_out, j_out = geometry.receptive_field_step(r, j, k, s, d)
        steps.append(f"r = {r} + ({k}-1)*{d}*{j} = {r_out}, j = {j}*{s} = {j_out}")
    return [RECEPTIVE] + _per_axis(steps)


def _per_axis(texts, both_sides=None):
    """``H, W: text`` when both axes read the same (up to the side an odd 'same' padding
    puts its extra row or column: ``both_sides``), else ``H: text`` and ``W: text``. A text
    of several lines continues under its first."""
    h, w = texts
    if h == w:
        return _labelled("H, W", h)
    if both_sides and h.replace("bottom", "right") == w:
        return _labelled("H, W", h.replace("bottom", both_sides))
    return _labelled("H", h) + _labelled("W", w)


def _labelled(label, text):
    first, *rest = text.split("\n")
    return [f"  {label}: {first}"] + [" " * (len(label) + 4) + line for line in rest]


def _shape(shape):
    return "(" + ", ".join(str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"


def _axes(v):
    return str(v[0]) if v[0] == v[1] else f"{v[0]} x {v[1]}"
