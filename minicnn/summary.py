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
        top = [r for r in rows if r.get("depth", 0) == 0]
        self.total_params = sum(r["params"] for r in top)
        self.total_macs = sum(r["macs"] for r in top)
        self.param_bytes = sum(r["param_bytes"] for r in top)
        self.receptive_field = top[-1]["receptive_field"] if top else (1, 1)
        self.output_shape = top[-1]["output_shape"] if top else self.input_shape

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
    from .layers import Conv2D, GlobalAvgPool2D, GlobalMaxPool2D, Pad, Pool2D

    return (Conv2D, GlobalAvgPool2D, GlobalMaxPool2D, Pad, Pool2D)


def summarize(model, input_shape):
    """Infer every layer's output shape for one sample of ``input_shape`` (C, H, W) and tabulate.

    A leading batch axis (N, C, H, W) is accepted and ignored. A layer that cannot take
    the previous layer's output raises ValueError naming both layers and both shapes.
    Containers (Residual, Concat, a Sequential inside them) get a row with their totals,
    followed by their children's rows, indented, whose "index" is the dotted path of
    their parameters (e.g. "2.block.0"); the totals count top-level rows only ("depth" 0).
    The receptive field through a container is the largest of its branches'.
    """
    shape = check_input_shape(input_shape)
    rows = []
    state = (shape, (1, 1), (1, 1))
    for i, layer in enumerate(model.layers):
        state = _describe(layer, state, i, 0, rows, lambda s, i=i: model._where(i, s))
    return Summary(shape, rows)


def _describe(module, state, index, depth, rows, where):
    """Append the rows of ``module`` (and its children) for ``state`` = (input shape,
    receptive field, jump) entering it; returns the state leaving it."""
    shape, rf, jump = state
    children = module.children()
    row = {"index": index, "depth": depth, "output_shape": None,
           "params": sum(p.value.size for p in module.parameters()),
           "param_bytes": sum(p.value.nbytes for p in module.parameters()),
           "macs": 0, "receptive_field": rf, "jump": jump,
           "kind": "container" if children else "layer"}
    if not children and isinstance(module, _spatial_layers()) and len(shape) != 3:
        raise ValueError(where(("N",) + shape) + f"{type(module).__name__} takes images "
                         f"(N, C, H, W); give the input shape as (C, H, W), e.g. (1, 28, 28)")
    try:
        out_shape = tuple(module.output_shape(shape))
        row["macs"] = module.macs(shape)
    except (ValueError, TypeError) as e:
        raise ValueError(where(("N",) + shape) + str(e)) from e
    row["output_shape"] = out_shape
    rows.append(row)
    if not children:
        row["layer"] = "  " * depth + repr(module)
        rp = module.receptive_params_for(shape)
        if rp is not None:
            (kh, kw), (sh, sw), (dh, dw) = rp
            rh, jh = geometry.receptive_field_step(rf[0], jump[0], kh, sh, dh)
            rw, jw = geometry.receptive_field_step(rf[1], jump[1], kw, sw, dw)
            row["receptive_field"], row["jump"] = (rh, rw), (jh, jw)
        return out_shape, row["receptive_field"], row["jump"]
    sequential = not hasattr(module, "block") and not hasattr(module, "branches")
    row["kind"] = "sequential" if sequential else "container"
    row["layer"] = "  " * depth + type(module).__name__

    def inner(path, child):
        return lambda s: (f"layer {path} {child!r} cannot take an input of shape "
                          f"{_shape(s)}: ")

    ends = []
    for name, child in children:
        path = f"{index}.{name}"
        child_state = (shape, rf, jump) if not sequential or not ends else ends[-1]
        ends.append(_describe(child, child_state, path, depth + 1, rows, inner(path, child)))
    if sequential:
        rf, jump = ends[-1][1:]
    else:
        if getattr(module, "shortcut", True) is None:  # a Residual's identity path
            ends.append((shape, rf, jump))
        rf = tuple(max(e[1][a] for e in ends) for a in range(2))
        jump = tuple(max(e[2][a] for e in ends) for a in range(2))
    row["receptive_field"], row["jump"] = rf, jump
    return out_shape, rf, jump


def activation_bytes(table, itemsize=4):
    """Bytes of the activations one sample produces in a forward pass: the input and every
    layer's output, all of which a forward may hold at once (each layer keeps its input for
    backward)."""
    import math

    sizes = [math.prod(table.input_shape)] + [math.prod(r["output_shape"]) for r in table.rows
                                              if r.get("kind") != "sequential"]
    return sum(sizes) * itemsize


def receptive_field(model, input_shape):
    """The receptive field (rows, cols) of one output of ``model`` on input of ``input_shape``."""
    return summarize(model, input_shape).receptive_field
