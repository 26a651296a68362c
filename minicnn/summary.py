"""The model summary: output shapes, parameters, multiply-accumulates, receptive fields.

The receptive field follows the recurrence r_l = r_{l-1} + (k_eff - 1) * j_{l-1},
j_l = j_{l-1} * stride, with k_eff = dilation * (k - 1) + 1, per axis, from
(r, j) = (1, 1): the notes' r = 1 + sum((k_i - 1) * prod(s_j, j < i)).
"""
import numbers

from . import geometry

__all__ = ["Summary", "check_input_shape", "summarize", "activation_bytes", "receptive_field"]


class Summary:
    """Rows (one dict per layer) and totals; ``str()`` gives the printed table."""

    columns = ("#", "layer", "output shape", "params", "MACs", "receptive field", "jump")

    def __init__(self, input_shape, rows):
        self.input_shape = tuple(input_shape)
        self.rows = rows
        self.total_params = sum(r["params"] for r in rows)
        self.total_macs = sum(r["macs"] for r in rows)
        self.param_bytes = sum(r["param_bytes"] for r in rows)
        self.receptive_field = rows[-1]["receptive_field"] if rows else (1, 1)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __str__(self):
        def axes(v):
            return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

        cells = [self.columns, ("", "input", _shape(self.input_shape), "", "", "1", "1")]
        for r in self.rows:
            cells.append((str(r["index"]), r["layer"], _shape(r["output_shape"]), f"{r['params']:,}",
                          f"{r['macs']:,}", axes(r["receptive_field"]), axes(r["jump"])))
        widths = [max(len(c[i]) for c in cells) for i in range(len(self.columns))]
        right = {3, 4, 5, 6}

        def line(c):
            return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                             for i, (v, w) in enumerate(zip(c, widths))).rstrip()

        rule = "-" * len(line(cells[0]))
        out = [line(cells[0]), rule] + [line(c) for c in cells[1:]] + [rule]
        out.append(f"parameters: {self.total_params:,} ({self.param_bytes / 1024:.1f} KiB)   "
                   f"MACs per image: {self.total_macs:,}   "
                   f"receptive field: {axes(self.receptive_field)}")
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self):  # Jupyter shows this table instead of the text
        from .notebook import summary_html

        return summary_html(self)


def _shape(shape):
    return "(" + ", ".join(str(v) for v in shape) + ")"


def check_input_shape(input_shape, owner="summary"):
    """``input_shape`` as a tuple of positive ints, one sample's shape: (C, H, W) for images
    (a leading batch axis, (N, C, H, W), is dropped), (features,) for a model starting with Dense."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in input_shape):
        raise ValueError(f"{owner}: input_shape must be a tuple of ints such as (1, 28, 28) "
                         f"(channels, height, width), got {input_shape!r}")
    shape = tuple(int(v) for v in input_shape)
    if not 1 <= len(shape) <= 4 or min(shape) < 1:
        raise ValueError(f"{owner}: input_shape must be 1 to 4 positive sizes such as (1, 28, 28) "
                         f"(channels, height, width), got {shape}")
    return shape[1:] if len(shape) == 4 else shape


def _spatial_layers():
    from .layers import Conv2D, GlobalAvgPool2D, Pad, Pool2D

    return (Conv2D, GlobalAvgPool2D, Pad, Pool2D)


def summarize(model, input_shape):
    """Infer every layer's output shape for one sample of ``input_shape`` (C, H, W) and tabulate.

    A leading batch axis (N, C, H, W) is accepted and ignored. A layer that cannot take
    the previous layer's output raises ValueError naming both layers and both shapes.
    """
    shape = check_input_shape(input_shape)
    first = shape
    rows = []
    rf, jump = (1, 1), (1, 1)
    spatial = _spatial_layers()
    for i, layer in enumerate(model.layers):
        if isinstance(layer, spatial) and len(shape) != 3:
            raise ValueError(model._where(i, ("N",) + shape) + f"{type(layer).__name__} takes images "
                             f"(N, C, H, W); give the input shape as (C, H, W), e.g. (1, 28, 28)")
        try:
            out_shape = tuple(layer.output_shape(shape))
            macs = layer.macs(shape)
        except (ValueError, TypeError) as e:
            raise ValueError(model._where(i, ("N",) + shape) + str(e)) from e
        rp = layer.receptive_params_for(shape)
        if rp is not None:
            (kh, kw), (sh, sw), (dh, dw) = rp
            rh, jh = geometry.receptive_field_step(rf[0], jump[0], kh, sh, dh)
            rw, jw = geometry.receptive_field_step(rf[1], jump[1], kw, sw, dw)
            rf, jump = (rh, rw), (jh, jw)
        rows.append({
            "index": i, "layer": repr(layer), "output_shape": out_shape,
            "params": sum(p.size for p in layer.params.values()),
            "param_bytes": sum(p.nbytes for p in layer.params.values()),
            "macs": macs, "receptive_field": rf, "jump": jump,
        })
        shape = out_shape
    return Summary(first, rows)


def activation_bytes(table, itemsize=4):
    """Bytes of the activations one sample produces in a forward pass: the input and every
    layer's output, all of which a forward may hold at once (each layer keeps its input for
    backward)."""
    import math

    sizes = [math.prod(table.input_shape)] + [math.prod(r["output_shape"]) for r in table.rows]
    return sum(sizes) * itemsize


def receptive_field(model, input_shape):
    """The receptive field (rows, cols) of one output of ``model`` on input of ``input_shape``."""
    return summarize(model, input_shape).receptive_field
