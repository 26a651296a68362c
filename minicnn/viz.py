"""Pictures of what a network sees: filters, feature maps, receptive fields, training curves.

Each picture comes in two halves. A function that computes what is drawn (``filters``,
``feature_maps``, ``receptive_field_region``, ``training_curves``) needs only NumPy; a
``plot_*`` function draws it into an image file and returns the same arrays. Drawing needs
matplotlib (``pip install 'minicnn[plot]'``); without it a ``plot_*`` function raises
``minicnn.extras.MissingExtraError`` saying so in one line. The drawings use matplotlib's
``Figure`` directly, never pyplot: no window, no backend switched, no global state.
"""
import numpy as np

from . import geometry
from .extras import require
from .layers import Conv2D, GlobalAvgPool2D, Pad, Pool2D

__all__ = ["conv_layer", "filters", "feature_maps", "receptive_field_region", "training_curves",
           "plot_filters", "plot_feature_maps", "plot_receptive_field", "plot_training_curves"]


# --- what is drawn (NumPy only) --------------------------------------------------------
def conv_layer(model, layer=None, who="viz"):
    """(index, layer) of a convolution of ``model``: ``layer`` an index, a Conv2D of the
    model, or None for the first convolution."""
    convs = [i for i, m in enumerate(model.layers) if isinstance(m, Conv2D)]
    if not convs:
        raise ValueError(f"{who}: the model has no Conv2D layer")
    if layer is None:
        return convs[0], model.layers[convs[0]]
    if isinstance(layer, Conv2D):
        for i in convs:
            if model.layers[i] is layer:
                return i, layer
        raise ValueError(f"{who}: layer {layer!r} is not a layer of this model")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not (
            -len(model.layers) <= layer < len(model.layers)):
        raise ValueError(f"{who}: layer must be the index of a Conv2D {convs} or the layer, "
                         f"got {layer!r}")
    index = int(layer) % len(model.layers)
    if index not in convs:
        raise ValueError(f"{who}: layer {index} is {model.layers[index]!r}, not a Conv2D; the "
                         f"convolutions are layers {convs}")
    return index, model.layers[index]


def filters(model, layer=None):
    """The weights of a convolution as a float64 array (out_channels, in_channels/groups, KH, KW):
    row o holds output channel o's kernel for every input channel it reads."""
    _, conv = conv_layer(model, layer, "viz.filters")
    return np.array(conv.params["weight"], dtype=np.float64)


def _as_image(image, who):
    x = np.asarray(image)
    if x.dtype.kind not in "fiu" or x.dtype == bool:
        raise TypeError(f"{who}: image must be numbers, got {x.dtype}")
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"{who}: image must be one image (H, W), (C, H, W) or (1, C, H, W), "
                         f"got shape {np.shape(image)}")
    return x.astype(np.float32, copy=False)


def feature_maps(model, image):
    """Each layer's output for one image (as the model takes it, normalised), in eval mode:
    a list of (label, array (C, H, W)), the input first, then every layer whose output is
    still an image (the layers after Flatten are left out)."""
    x = _as_image(image, "viz.feature_maps")
    maps = [("input", x.copy())]
    out = x[None]
    for i, layer in enumerate(model.layers):
        out = layer.forward(out, training=False)
        if out.ndim != 4:
            break
        maps.append((f"{i}: {layer!r}", np.array(out[0])))
    return maps


def _window(layer, in_shape):
    """(kernel, stride, dilation, padding before) per axis of a layer that slides a window,
    None for a layer that keeps the geometry (activations, dropout)."""
    _, h, w = in_shape
    if isinstance(layer, Conv2D):
        pads = geometry.resolve_padding(layer.padding, (h, w), layer.kernel_size, layer.stride,
                                        layer.dilation)
        return layer.kernel_size, layer.stride, layer.dilation, (pads[0][0], pads[1][0])
    if isinstance(layer, Pool2D):
        return layer.kernel_size, layer.stride, (1, 1), (layer.padding[0][0], layer.padding[1][0])
    if isinstance(layer, GlobalAvgPool2D):
        return (h, w), (1, 1), (1, 1), (0, 0)
    if isinstance(layer, Pad):
        return (1, 1), (1, 1), (1, 1), (layer.padding[0][0], layer.padding[1][0])
    if layer.receptive_params_for(in_shape) is not None:
        raise ValueError(f"viz.receptive_field_region: cannot place the window of {layer!r}")
    return None


def receptive_field_region(model, input_shape, layer=None, unit=None):
    """The input pixels one output unit sees: ((top, bottom), (left, right)), half-open.

    ``layer``: the index of the layer whose output holds the unit (default: the last layer
    that outputs an image); ``unit``: its (row, col) (default: the middle one). The region
    follows the notes' recurrences (r = r_in + (K-1)*D*j_in, j = j_in*S) and where the first
    unit's field starts (start = start_in - P_before*j_in); it may reach past the input's
    edges, into the padding.
    """
    return _field(model, input_shape, layer, unit)[2]


def _field(model, input_shape, layer, unit):
    """(layer, unit, region) of receptive_field_region, with the defaults filled in."""
    from .summary import summarize

    table = summarize(model, input_shape)
    shape = table.input_shape
    images = [r["index"] for r in table.rows if len(r["output_shape"]) == 3]
    if len(shape) != 3 or not images:
        raise ValueError("viz.receptive_field_region: the model has no layer that outputs an image")
    if layer is None:
        layer = images[-1]
    if isinstance(layer, bool) or layer not in images:
        raise ValueError(f"viz.receptive_field_region: layer must be one of {images} (the layers "
                         f"that output an image), got {layer!r}")
    _, oh, ow = table.rows[layer]["output_shape"]
    unit = (oh // 2, ow // 2) if unit is None else tuple(unit)
    if (len(unit) != 2 or not all(isinstance(v, (int, np.integer)) for v in unit)
            or not (0 <= unit[0] < oh and 0 <= unit[1] < ow)):
        raise ValueError(f"viz.receptive_field_region: unit must be (row, col) with 0 <= row < {oh} "
                         f"and 0 <= col < {ow} (layer {layer} outputs {oh} x {ow}), got {unit!r}")
    r, j, start = [1, 1], [1, 1], [0, 0]
    for m, row in zip(model.layers[:layer + 1], table.rows):
        window = _window(m, shape)
        if window is not None:
            for a, (k, s, d, before) in enumerate(zip(*window)):
                start[a] = geometry.receptive_field_start_step(start[a], j[a], before)
                r[a], j[a] = geometry.receptive_field_step(r[a], j[a], k, s, d)
        shape = row["output_shape"]
    first = [start[a] + int(unit[a]) * j[a] for a in range(2)]
    return layer, unit, tuple((first[a], first[a] + r[a]) for a in range(2))


def training_curves(history):
    """A fit's history as arrays: epoch (1, 2, ...), loss, val_loss, and accuracy and
    val_accuracy in percent (NaN where an epoch has no value)."""
    def column(key, scale=1.0):
        values = [np.nan if v is None else v for v in history.get(key) or []]
        return np.asarray(values, dtype=np.float64) * scale

    curves = {"loss": column("loss"), "val_loss": column("val_loss"),
              "accuracy": column("accuracy", 100), "val_accuracy": column("val_accuracy", 100)}
    n = max(len(v) for v in curves.values())
    if n == 0:
        raise ValueError("viz.training_curves: the history holds no epoch (no 'loss' values)")
    curves = {k: v if len(v) == n else np.full(n, np.nan) for k, v in curves.items()}
    return {"epoch": np.arange(1, n + 1), **curves}


# --- drawing (matplotlib) ------------------------------------------------------------------
def _figure(who, width, height):
    figure = require("matplotlib.figure", who)
    return figure.Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_filters(model, path, layer=None):
    """Draw every kernel of a convolution on a blue-white-red scale centred on zero (white = 0)
    with a colour bar: one row per output channel and one column per input channel, or, for
    one input channel, the output channels in rows of 8. Returns the weights (as ``filters``)."""
    index, conv = conv_layer(model, layer, "viz.plot_filters")
    w = filters(model, index)
    out_c, in_c = w.shape[:2]
    if in_c == 1:
        cols = min(out_c, 8)
        rows = -(-out_c // cols)
        cells = [(o // cols, o % cols, o, 0, f"out {o}") for o in range(out_c)]
        layout = "output channels"
    else:
        rows, cols = out_c, in_c
        cells = [(o, c, o, c, None) for o in range(out_c) for c in range(in_c)]
        layout = "rows: output channels, columns: input channels"
    cell = min(0.75, 12 / max(rows, cols))
    fig = _figure("viz.plot_filters", max(4.5, cols * cell + 1.5), max(2.2, rows * cell + 0.9))
    limit = float(np.abs(w).max()) or 1.0
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for row, col, o, c, label in cells:
        ax = axes[row, col]
        ax.set_frame_on(True)
        shown = ax.imshow(w[o, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
        if label is not None:
            ax.set_title(label, fontsize=7)
        elif col == 0 and rows <= 32:
            ax.set_ylabel(str(o), rotation=0, fontsize=7, labelpad=8)
        if label is None and row == 0 and cols <= 32:
            ax.set_title(str(c), fontsize=7)
    fig.colorbar(shown, ax=axes, shrink=0.8, label="weight")
    fig.suptitle(f"layer {index} {conv!r}\n{layout}", fontsize=8)
    fig.savefig(path)
    return w


def plot_feature_maps(model, image, path, max_channels=8):
    """Draw the input and each layer's output for ``image`` (as ``feature_maps``), one row per
    layer, its first ``max_channels`` channels, each row on its own scale. Returns the maps."""
    maps = feature_maps(model, image)
    cols = min(max_channels, max(m.shape[0] for _, m in maps))
    fig = _figure("viz.plot_feature_maps", 1.3 * cols + 0.4, 1.6 * len(maps) + 0.2)
    for sub, (label, m) in zip(fig.subfigures(len(maps), 1), maps):
        low, high = float(m.min()), float(m.max())
        shown = min(cols, m.shape[0])
        more = f" (channels 0-{shown - 1} of {m.shape[0]})" if shown < m.shape[0] else ""
        sub.suptitle(f"{label}{more}", x=0.01, ha="left", fontsize=8)
        for c, ax in enumerate(sub.subplots(1, cols, squeeze=False)[0]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < shown:
                ax.imshow(m[c], cmap="gray" if label == "input" else "viridis", vmin=low,
                          vmax=high)
            else:
                ax.axis("off")
    fig.savefig(path)
    return maps


def plot_receptive_field(model, image, path, layer=None, unit=None):
    """Draw ``image`` with the receptive field of one output unit of ``layer`` (as
    ``receptive_field_region``) as a box. Returns the region ((top, bottom), (left, right))."""
    x = _as_image(image, "viz.plot_receptive_field")
    layer, unit, region = _field(model, x.shape, layer, unit)
    (top, bottom), (left, right) = region
    patches = require("matplotlib.patches", "viz.plot_receptive_field")
    fig = _figure("viz.plot_receptive_field", 4.2, 4.6)
    ax = fig.subplots()
    shown = x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)
    if shown.ndim == 3:
        shown = (shown - shown.min()) / (np.ptp(shown) or 1.0)
    ax.imshow(shown, cmap="gray")
    ax.add_patch(patches.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                   edgecolor="red", linewidth=2))
    h, w = x.shape[1:]
    margin = max(0, -top, -left, bottom - h, right - w)
    ax.set_xlim(-0.5 - margin, w - 0.5 + margin)
    ax.set_ylim(h - 0.5 + margin, -0.5 - margin)
    ax.set_facecolor("#d8d8d8")                        # outside the input: the padding
    ax.set_title(f"receptive field of unit {unit} of layer {layer}:\nrows {top}..{bottom - 1}, "
                 f"columns {left}..{right - 1} ({bottom - top} x {right - left})"
                 f"{'; grey: padding' if margin else ''}", fontsize=9)
    fig.savefig(path)
    return region


def plot_training_curves(history, path, model_name, accuracy=None):
    """Draw loss and accuracy per epoch, titled with ``model_name`` and the final accuracy
    (``accuracy``, a fraction, else the last validation accuracy). Returns the curves."""
    curves = training_curves(history)
    final = [v for v in curves["val_accuracy"] if not np.isnan(v)]
    if accuracy is not None:
        title = f"{model_name}: final test accuracy {100 * accuracy:.2f}%"
    elif final:
        title = f"{model_name}: final validation accuracy {final[-1]:.2f}%"
    else:
        title = f"{model_name}: final training accuracy {curves['accuracy'][-1]:.2f}%"
    fig = _figure("viz.plot_training_curves", 9, 3.6)
    loss, acc = fig.subplots(1, 2)
    epoch = curves["epoch"]
    for key, ax, label in (("loss", loss, "train"), ("val_loss", loss, "validation"),
                           ("accuracy", acc, "train"), ("val_accuracy", acc, "validation")):
        if not np.isnan(curves[key]).all():
            ax.plot(epoch, curves[key], marker="o", markersize=3, label=label)
    ticker = require("matplotlib.ticker", "viz.plot_training_curves")
    loss.set(xlabel="epoch", ylabel="loss", yscale="log")
    loss.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    loss.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (loss, acc):
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path)
    return curves
