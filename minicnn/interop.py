"""Exchange networks with PyTorch: ``to_torch(model)`` and ``from_torch(module)``.

PyTorch is optional: it is imported when one of these functions runs, and a missing
PyTorch is a one-line ImportError saying what to install.

``to_torch(model)`` returns a ``torch.nn.Sequential`` computing what the minicnn model
computes, with copies of its weights (float32 or float64, as the model keeps them):

=========================================  =================================================
minicnn                                    PyTorch
=========================================  =================================================
Conv2D                                     nn.Conv2d, then nn.ReLU for ``activation='relu'``;
                                           ``flip_kernel=True`` gives the rotated weights
Conv2D padding per side, or 'symmetric'    a padding module, then nn.Conv2d without padding
Conv2D 'same' with stride > 1              SamePad2d (pads for each input size), nn.Conv2d
MaxPool2D, AvgPool2D, Pool2D               nn.MaxPool2d, nn.AvgPool2d (PerSidePool2d when
                                           the two sides of an axis are padded differently)
GlobalAvgPool2D                            nn.AdaptiveAvgPool2d(1)
Pad                                        nn.ZeroPad2d, ConstantPad2d, ReflectionPad2d,
                                           ReplicationPad2d, CircularPad2d, SymmetricPad2d
Dense, Flatten, ReLU, LeakyReLU,           nn.Linear, nn.Flatten, nn.ReLU, nn.LeakyReLU,
Sigmoid, Tanh, Dropout                     nn.Sigmoid, nn.Tanh, nn.Dropout
BatchNorm2D, BatchNorm1D                   nn.BatchNorm2d, nn.BatchNorm1d, with copies of the
                                           running statistics and num_batches_tracked
ConvTranspose2D, Upsample                  nn.ConvTranspose2d, nn.Upsample (an int scale)
Residual, Concat                           Residual, Concat (minicnn.torch_modules), their
                                           parts twinned as a whole model is
Identity, Softmax, LogSoftmax,             nn.Identity, nn.Softmax, nn.LogSoftmax (dim kept),
GlobalMaxPool2D                            nn.AdaptiveMaxPool2d(1)
=========================================  =================================================

SymmetricPad2d, SamePad2d, PerSidePool2d, Residual and Concat are minicnn's
(``minicnn.torch_modules``), for what ``torch.nn`` has no module for. ``from_torch(module)``
reads all of the above back, flattening nested ``nn.Sequential`` s and skipping
``nn.Identity`` (inside a Residual or Concat it is minicnn's Identity); a padding module right
before an ``nn.Conv2d`` without padding becomes that Conv2D's padding, and an ``nn.ReLU``
right after an ``nn.Conv2d`` its ``activation='relu'``, so ``from_torch(to_torch(model))``
has the model's layers (a flipped kernel comes back as plain weights, rotated).
"""
import numpy as np

from . import geometry, torch_readers
from .layers import (AvgPool2D, BatchNorm1D, BatchNorm2D, Concat, Conv2D, ConvTranspose2D, Dense,
                     Dropout, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, Identity, LeakyReLU,
                     LogSoftmax, MaxPool2D, Pad, Pool2D, ReLU, Residual, Sigmoid, Softmax, Tanh,
                     Upsample)
from .layers.base import Layer, modules
from .model import Sequential

__all__ = ["TORCH_MISSING", "TO_TORCH", "to_torch", "from_torch"]

#: the one line a missing PyTorch gives (PyTorch is no extra of minicnn's: pick its build)
TORCH_MISSING = "{who} needs PyTorch, which is not installed: pip install torch"
_TORCH_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _torch(who):
    """(torch, minicnn.torch_modules), or the one-line ImportError naming what to install."""
    try:
        import torch
    except ImportError:
        raise ImportError(TORCH_MISSING.format(who=who)) from None
    from . import torch_modules
    return torch, torch_modules


def _one_line(value):
    return " ".join(repr(value).split())


# --- minicnn -> PyTorch ------------------------------------------------------------------
class _Maker:
    """What the builders share: torch, the modules, the dtype of the twin's parameters."""

    def __init__(self, torch, modules, dtype):
        self.torch, self.nn, self.tm, self.dtype = torch, torch.nn, modules, dtype

    def with_weights(self, cls, layer, *args, flip=False, **kwargs):
        """``cls(*args, **kwargs)`` (left uninitialised: PyTorch's random generator is not
        touched) holding copies of the layer's weight and bias."""
        module = self.torch.nn.utils.skip_init(cls, *args, dtype=self.dtype, **kwargs)
        weight = layer.params["weight"]
        if flip:                        # a true convolution is a cross-correlation with the
            weight = weight[..., ::-1, ::-1]                   # kernel rotated by 180 degrees
        with self.torch.no_grad():
            module.weight.copy_(self.torch.from_numpy(weight.copy()))  # own strides
            if "bias" in layer.params:
                module.bias.copy_(self.torch.from_numpy(layer.params["bias"].copy()))
        return module

    def pad(self, sides, mode, value=0.0):
        """A module padding (left, right, top, bottom) in a minicnn padding mode."""
        nn = self.nn
        if mode == "constant":
            return nn.ConstantPad2d(sides, value)
        cls = {"zeros": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d,
               "replicate": nn.ReplicationPad2d, "circular": nn.CircularPad2d,
               "symmetric": self.tm.SymmetricPad2d}[mode]
        return cls(sides)


def _conv_to_torch(layer, make):
    mode = layer.padding_mode
    torch_mode = mode if mode in _TORCH_PAD_MODES else None
    first, padding = [], 0
    if layer.padding == "same":
        totals = [d * (k - 1) for k, d in zip(layer.kernel_size, layer.dilation)]
        if layer.stride == (1, 1) and torch_mode and not (totals[0] % 2 or totals[1] % 2):
            padding = "same"              # the same on both sides, whatever the input size
        else:
            first = [make.tm.SamePad2d(layer.kernel_size, layer.stride, layer.dilation, mode)]
    else:
        (top, bottom), (left, right) = layer.padding
        if top == bottom and left == right and torch_mode:
            padding = (top, left)
        elif top or bottom or left or right:
            first = [make.pad((left, right, top, bottom), mode)]
    conv = make.with_weights(make.nn.Conv2d, layer, layer.in_channels, layer.out_channels,
                             layer.kernel_size, stride=layer.stride, padding=padding,
                             dilation=layer.dilation, groups=layer.groups,
                             bias="bias" in layer.params, padding_mode=torch_mode or "zeros",
                             flip=layer.flip_kernel)
    return first + [conv] + ([make.nn.ReLU()] if layer.activation == "relu" else [])


def _pool_to_torch(layer, make):
    (top, bottom), (left, right) = layer.padding
    if top != bottom or left != right:
        return [make.tm.PerSidePool2d(layer.kernel_size, layer.stride, layer.padding, layer.mode,
                                      layer.ceil_mode, layer.count_include_pad)]
    if layer.mode == "max":
        return [make.nn.MaxPool2d(layer.kernel_size, layer.stride, (top, left),
                                  ceil_mode=layer.ceil_mode)]
    return [make.nn.AvgPool2d(layer.kernel_size, layer.stride, (top, left),
                              ceil_mode=layer.ceil_mode,
                              count_include_pad=layer.count_include_pad)]


def _pad_to_torch(layer, make):
    (top, bottom), (left, right) = layer.padding
    return [make.pad((left, right, top, bottom), layer.mode, layer.value)]


def _batch_norm_to_torch(layer, make):
    cls = make.nn.BatchNorm2d if isinstance(layer, BatchNorm2D) else make.nn.BatchNorm1d
    module = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                 affine=layer.affine, track_running_stats=layer.track_running_stats,
                 dtype=make.dtype)
    with make.torch.no_grad():
        for name, value in list(layer.params.items()) + list(layer.buffers.items()):
            getattr(module, name).copy_(make.torch.from_numpy(np.array(value)))
    return [module]


def _conv_transpose_to_torch(layer, make):
    return [make.with_weights(make.nn.ConvTranspose2d, layer, layer.in_channels,
                              layer.out_channels, layer.kernel_size, stride=layer.stride,
                              padding=layer.padding, output_padding=layer.output_padding,
                              groups=layer.groups, bias="bias" in layer.params,
                              dilation=layer.dilation)]


def _upsample_to_torch(layer, make):
    scale = tuple(float(v) for v in layer.scale_factor)
    return [make.nn.Upsample(scale_factor=scale, mode=layer.mode,
                             align_corners=layer.align_corners)]


def _part_to_torch(child, make):
    """One module for a container's part: its twin, or an nn.Sequential of several."""
    layers = [child] if isinstance(child, Layer) else list(child)
    twins = [m for layer in layers for m in _layer_to_torch(layer, make, "a block's layer")]
    if len(twins) == 1 and isinstance(child, Layer):
        return twins[0]
    return make.nn.Sequential(*twins)


def _residual_to_torch(layer, make):
    shortcut = None if layer.shortcut is None else _part_to_torch(layer.shortcut, make)
    return [make.tm.Residual(_part_to_torch(layer.block, make), shortcut)]


#: minicnn layer class -> the function returning the PyTorch modules that compute it
TO_TORCH = {
    Conv2D: _conv_to_torch,
    Pool2D: _pool_to_torch, MaxPool2D: _pool_to_torch, AvgPool2D: _pool_to_torch,
    GlobalAvgPool2D: lambda layer, make: [make.nn.AdaptiveAvgPool2d(1)],
    Pad: _pad_to_torch,
    Dense: lambda layer, make: [make.with_weights(make.nn.Linear, layer, layer.in_features,
                                                  layer.out_features,
                                                  bias="bias" in layer.params)],
    Flatten: lambda layer, make: [make.nn.Flatten()],
    ReLU: lambda layer, make: [make.nn.ReLU()],
    LeakyReLU: lambda layer, make: [make.nn.LeakyReLU(layer.negative_slope)],
    Sigmoid: lambda layer, make: [make.nn.Sigmoid()],
    Tanh: lambda layer, make: [make.nn.Tanh()],
    Dropout: lambda layer, make: [make.nn.Dropout(layer.p)],
    BatchNorm2D: _batch_norm_to_torch, BatchNorm1D: _batch_norm_to_torch,
    ConvTranspose2D: _conv_transpose_to_torch,
    Upsample: _upsample_to_torch,
    Residual: _residual_to_torch,
    Concat: lambda layer, make: [make.tm.Concat(*[_part_to_torch(b, make)
                                                  for b in layer.branches])],
    Identity: lambda layer, make: [make.nn.Identity()],
    Softmax: lambda layer, make: [make.nn.Softmax(dim=layer.dim)],
    LogSoftmax: lambda layer, make: [make.nn.LogSoftmax(dim=layer.dim)],
    GlobalMaxPool2D: lambda layer, make: [make.nn.AdaptiveMaxPool2d(1)],
}


def _layer_to_torch(layer, make, where):
    build = TO_TORCH.get(type(layer))
    if build is None:
        names = ", ".join(sorted(cls.__name__ for cls in TO_TORCH))
        raise ValueError(f"to_torch: {where} {layer!r} has no PyTorch counterpart here; "
                         f"to_torch knows {names}")
    return build(layer, make)


def to_torch(model, per_layer=False):
    """A ``torch.nn.Sequential`` computing what ``model`` (a Sequential or one Layer) computes.

    The twin holds copies of the weights, in the model's dtype (a model whose layers keep
    different dtypes is refused: call ``model.astype`` first), and is in training mode when
    the model is. With ``per_layer=True``, module i of the twin is the twin of layer i (an
    ``nn.Sequential`` where a layer needs several modules); otherwise the modules are flat.
    See the module's docstring for what each layer becomes.
    """
    torch, tm = _torch("to_torch")
    layers = [model] if isinstance(model, Layer) else list(model)
    # the parameters' dtypes, and the dtype of layers without any (BatchNorm(affine=False))
    leaves = [m for layer in layers for m in modules(layer) if isinstance(m, Layer)]
    dtypes = {np.dtype(p.dtype) for layer in leaves for p in layer.params.values()}
    dtypes |= {np.dtype(layer.dtype) for layer in leaves if getattr(layer, "dtype", None)}
    if len(dtypes) > 1:
        raise ValueError(f"to_torch: the model's parameters are {sorted(d.name for d in dtypes)}; "
                         "a PyTorch module computes in one dtype (call model.astype(np.float32) "
                         "or model.astype(np.float64) first)")
    dtype = torch.float64 if dtypes == {np.dtype(np.float64)} else torch.float32
    make = _Maker(torch, tm, dtype)
    out = []
    for i, layer in enumerate(layers):
        twins = _layer_to_torch(layer, make, f"layer {i}")
        if per_layer:
            out.append(twins[0] if len(twins) == 1 else torch.nn.Sequential(*twins))
        else:
            out.extend(twins)
    return torch.nn.Sequential(*out).train(bool(getattr(model, "training", True)))


# --- PyTorch -> minicnn ------------------------------------------------------------------
def _leaves(module, nn, prefix=""):
    """(dotted name, module) of every module in nested nn.Sequentials, in order."""
    for name, child in module.named_children():
        if type(child) is nn.Sequential:
            yield from _leaves(child, nn, f"{prefix}{name}.")
        elif type(child) is not nn.Identity:
            yield prefix + name, child


def _fold(last, piece):
    """Merge ``piece`` into the one before it where minicnn has one layer for both (a Conv2D
    and the ReLU after it; a padding module and the unpadded Conv2D after it); True if so."""
    cls, kwargs = piece["cls"], piece["kwargs"]
    if cls is ReLU and last["cls"] is Conv2D and last["kwargs"].get("activation") is None:
        last["kwargs"]["activation"] = "relu"
    elif (cls is Conv2D and last["cls"] in (Pad, "same")
          and geometry.normalize_padding(kwargs["padding"], "from_torch") == ((0, 0), (0, 0))):
        pad = last["kwargs"]
        if last["cls"] == "same":
            if any(geometry.pair(kwargs[k], k, "from_torch") != tuple(pad[k])
                   for k in ("kernel_size", "stride", "dilation")):
                return False
            kwargs.update(padding="same", padding_mode=pad["padding_mode"])
        elif pad["mode"] == "constant" and pad["value"] != 0:
            return False
        else:
            mode = "zeros" if pad["mode"] == "constant" else pad["mode"]
            kwargs.update(padding=pad["padding"], padding_mode=mode)
        last.update(cls=Conv2D, kwargs=kwargs, params=piece["params"])
    else:
        return False
    last["names"] += piece["names"]
    return True


def _where(piece):
    names = piece["names"]
    return f"module {names[0]}" if len(names) == 1 else f"modules {' and '.join(names)}"


def from_torch(module, input_shape=None):
    """The minicnn Sequential computing what ``module``, a ``torch.nn.Sequential``, computes.

    The layers take copies of the weights, in their dtype (float32 or float64); the model
    is in training mode when the module is. ``input_shape`` (C, H, W) is recorded for
    ``summary()``. A module with no minicnn layer raises ValueError naming it and its index
    (dotted inside nested Sequentials). See the module's docstring for what each becomes.
    """
    torch, tm = _torch("from_torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch: expected a torch.nn.Sequential, got "
                        f"{type(module).__name__}; put the modules in an nn.Sequential")
    readers = torch_readers.readers(torch, tm)
    readers[tm.Residual] = lambda m: (Residual, dict(
        block=_part(m.block, nn), shortcut=None if m.shortcut is None else _part(m.shortcut, nn)),
        {})
    readers[tm.Concat] = lambda m: (_concat, dict(branches=[_part(b, nn) for b in m.branches]),
                                    {})
    pieces = []
    for name, m in _leaves(module, nn):
        read = readers.get(type(m))
        if read is None:
            known = ", ".join(sorted(cls.__name__ for cls in readers))
            raise ValueError(f"from_torch: module {name} ({_one_line(m)}) has no minicnn layer; "
                             f"from_torch knows {known}")
        try:
            cls, kwargs, params = read(m)
        except (TypeError, ValueError) as e:
            raise type(e)(f"from_torch: module {name} ({_one_line(m)}): {e}") from None
        piece = dict(cls=cls, kwargs=kwargs, params=params, names=[name])
        if pieces and _fold(pieces[-1], piece):
            continue
        if pieces and pieces[-1]["cls"] == "same":
            _lone_same_pad(pieces[-1])
        pieces.append(piece)
    if pieces and pieces[-1]["cls"] == "same":
        _lone_same_pad(pieces[-1])
    model = Sequential(*[_build(p) for p in pieces], input_shape=input_shape)
    return model.train() if module.training else model.eval()


def _part(module, nn):
    """A container's part: a layer for one module (minicnn's Identity for nn.Identity), the
    Sequential of an nn.Sequential, except that modules making one layer (an nn.Conv2d and
    its nn.ReLU, as to_torch writes a Conv2D with activation='relu') give that layer."""
    if type(module) is nn.Identity:
        return Identity()
    if type(module) is nn.Sequential:
        model = from_torch(module)
        return model[0] if len(model) == 1 and len(module) > 1 else model
    model = from_torch(nn.Sequential(module))
    return model[0] if len(model) == 1 else model


def _concat(branches):
    return Concat(*branches)


def _lone_same_pad(piece):
    raise ValueError(f"from_torch: {_where(piece)} (SamePad2d) pads for the nn.Conv2d right "
                     "after it, which must have no padding of its own and the same kernel_size, "
                     "stride and dilation; minicnn has no layer for it alone")


def _build(piece):
    """The minicnn layer of a piece, holding its weights."""
    cls, kwargs, params = piece["cls"], piece["kwargs"], piece["params"]
    try:
        layer = cls(**kwargs, rng=0) if cls in (Conv2D, ConvTranspose2D, Dense) else cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)(f"from_torch: {_where(piece)}: {e}") from None
    for key, value in params.items():          # weights, and BatchNorm's statistics
        (layer.params if key in layer.params else layer.buffers)[key][...] = value
    return layer
