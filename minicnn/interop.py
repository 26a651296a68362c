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
=========================================  =================================================

SymmetricPad2d, SamePad2d and PerSidePool2d are minicnn's (``minicnn.torch_modules``), for
what ``torch.nn`` has no module for. ``from_torch(module)`` reads all of the above back,
flattening nested ``nn.Sequential`` s and skipping ``nn.Identity``; a padding module right
before an ``nn.Conv2d`` without padding becomes that Conv2D's padding, and an ``nn.ReLU``
right after an ``nn.Conv2d`` its ``activation='relu'``, so ``from_torch(to_torch(model))``
has the model's layers (a flipped kernel comes back as plain weights, rotated).
"""
import numpy as np

from . import geometry
from .layers import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                     MaxPool2D, Pad, Pool2D, ReLU, Sigmoid, Tanh)
from .layers.base import Layer
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
}


def to_torch(model, per_layer=False):
    """A ``torch.nn.Sequential`` computing what ``model`` (a Sequential or one Layer) computes.

    The twin holds copies of the weights, in the model's dtype (a model whose layers keep
    different dtypes is refused: call ``model.astype`` first), and is in training mode when
    the model is. With ``per_layer=True``, module i of the twin is the twin of layer i (an
    ``nn.Sequential`` where a layer needs several modules); otherwise the modules are flat.
    See the module's docstring for what each layer becomes.
    """
    torch, modules = _torch("to_torch")
    layers = [model] if isinstance(model, Layer) else list(model)
    dtypes = {np.dtype(p.dtype) for layer in layers for p in layer.params.values()}
    if len(dtypes) > 1:
        raise ValueError(f"to_torch: the model's parameters are {sorted(d.name for d in dtypes)}; "
                         "a PyTorch module computes in one dtype (call model.astype(np.float32) "
                         "or model.astype(np.float64) first)")
    dtype = torch.float64 if dtypes == {np.dtype(np.float64)} else torch.float32
    make = _Maker(torch, modules, dtype)
    out = []
    for i, layer in enumerate(layers):
        build = TO_TORCH.get(type(layer))
        if build is None:
            names = ", ".join(sorted(cls.__name__ for cls in TO_TORCH))
            raise ValueError(f"to_torch: layer {i} {layer!r} has no PyTorch counterpart here; "
                             f"to_torch knows {names}")
        twins = build(layer, make)
        if per_layer:
            out.append(twins[0] if len(twins) == 1 else torch.nn.Sequential(*twins))
        else:
            out.extend(twins)
    return torch.nn.Sequential(*out).train(bool(getattr(model, "training", True)))


# --- PyTorch -> minicnn ------------------------------------------------------------------
def _simplest(sides):
    """Per-side padding ((top, bottom), (left, right)) in its shortest equivalent form."""
    (top, bottom), (left, right) = sides
    if top == bottom and left == right:
        return top if top == left else (top, left)
    return ((top, bottom), (left, right))


def _short(value):
    """An (h, w) pair as one int when h == w, as minicnn's constructors take it."""
    if isinstance(value, int):
        return value
    return value[0] if value[0] == value[1] else tuple(value)


def _weights(torch, module):
    """{'weight': array, 'bias': array} copies, and the minicnn dtype name."""
    params = {name: getattr(module, name) for name in ("weight", "bias")
              if getattr(module, name, None) is not None}
    for name, value in params.items():
        if value.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"its {name} is {value.dtype}; minicnn keeps float32 or float64 "
                            "(call module.float() or module.double() first)")
    arrays = {name: value.detach().cpu().numpy().copy() for name, value in params.items()}
    return arrays, arrays["weight"].dtype.name


def _read_conv(m, torch):
    params, dtype = _weights(torch, m)
    if m.padding == "same":
        padding = "same"
    elif m.padding == "valid":
        padding = 0
    else:
        padding = _short(m.padding)
    kwargs = dict(in_channels=m.in_channels, out_channels=m.out_channels,
                  kernel_size=_short(m.kernel_size), stride=_short(m.stride), padding=padding,
                  dilation=_short(m.dilation), groups=m.groups, bias=m.bias is not None,
                  padding_mode=m.padding_mode, dtype=dtype)
    return Conv2D, kwargs, params


def _read_pool(m, mode):
    if mode == "max" and (m.dilation not in (1, (1, 1)) or m.return_indices):
        raise ValueError("minicnn's max pooling has no dilation and returns no indices")
    if mode == "avg" and m.divisor_override is not None:
        raise ValueError("minicnn's average pooling has no divisor_override")
    kwargs = _pool_kwargs(m.kernel_size, m.stride, _short(m.padding), m.ceil_mode)
    if mode == "max":
        return MaxPool2D, kwargs, {}
    return AvgPool2D, dict(kwargs, count_include_pad=bool(m.count_include_pad)), {}


def _pool_kwargs(kernel_size, stride, padding, ceil_mode):
    """Pooling arguments, stride left out when it is the kernel size (PyTorch's default too)."""
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):
        stride = kernel_size
    kernel_size, stride = _short(kernel_size), _short(stride)
    kwargs = dict(kernel_size=kernel_size, padding=padding, ceil_mode=bool(ceil_mode))
    if (geometry.pair(stride, "stride", "from_torch")
            != geometry.pair(kernel_size, "kernel_size", "from_torch")):
        kwargs["stride"] = stride
    return kwargs


def _read_per_side_pool(m):
    kwargs = _pool_kwargs(m.kernel_size, m.stride, _simplest(m.padding), m.ceil_mode)
    if m.mode == "max":
        return MaxPool2D, kwargs, {}
    return AvgPool2D, dict(kwargs, count_include_pad=m.count_include_pad), {}


def _read_pad(m, mode):
    left, right, top, bottom = m.padding
    kwargs = dict(padding=_simplest(((top, bottom), (left, right))), mode=mode)
    if mode == "constant":
        kwargs["value"] = float(m.value)
    return Pad, kwargs, {}


def _read_flatten(m):
    if (m.start_dim, m.end_dim) != (1, -1):
        raise ValueError(f"minicnn's Flatten keeps axis 0 and flattens the rest (start_dim=1, "
                         f"end_dim=-1), not start_dim={m.start_dim}, end_dim={m.end_dim}")
    return Flatten, {}, {}


def _read_adaptive(m):
    if m.output_size not in (1, (1, 1)):
        raise ValueError(f"minicnn's GlobalAvgPool2D is output_size=1, not {m.output_size!r}")
    return GlobalAvgPool2D, {}, {}


def _readers(torch, tm):
    """torch module class -> function(module) returning (minicnn class, kwargs, params)."""
    nn = torch.nn

    def linear(m):
        params, dtype = _weights(torch, m)
        return Dense, dict(in_features=m.in_features, out_features=m.out_features,
                           bias=m.bias is not None, dtype=dtype), params

    return {
        nn.Conv2d: lambda m: _read_conv(m, torch),
        nn.Linear: linear,
        nn.MaxPool2d: lambda m: _read_pool(m, "max"),
        nn.AvgPool2d: lambda m: _read_pool(m, "avg"),
        tm.PerSidePool2d: _read_per_side_pool,
        nn.AdaptiveAvgPool2d: _read_adaptive,
        nn.ZeroPad2d: lambda m: _read_pad(m, "zeros"),
        nn.ConstantPad2d: lambda m: _read_pad(m, "constant"),
        nn.ReflectionPad2d: lambda m: _read_pad(m, "reflect"),
        nn.ReplicationPad2d: lambda m: _read_pad(m, "replicate"),
        nn.CircularPad2d: lambda m: _read_pad(m, "circular"),
        tm.SymmetricPad2d: lambda m: _read_pad(m, "symmetric"),
        tm.SamePad2d: lambda m: ("same", dict(kernel_size=m.kernel_size, stride=m.stride,
                                              dilation=m.dilation, padding_mode=m.mode), {}),
        nn.Flatten: _read_flatten,
        nn.ReLU: lambda m: (ReLU, {}, {}),
        nn.LeakyReLU: lambda m: (LeakyReLU, dict(negative_slope=m.negative_slope), {}),
        nn.Sigmoid: lambda m: (Sigmoid, {}, {}),
        nn.Tanh: lambda m: (Tanh, {}, {}),
        nn.Dropout: lambda m: (Dropout, dict(p=m.p), {}),
    }


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
    readers = _readers(torch, tm)
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


def _lone_same_pad(piece):
    raise ValueError(f"from_torch: {_where(piece)} (SamePad2d) pads for the nn.Conv2d right "
                     "after it, which must have no padding of its own and the same kernel_size, "
                     "stride and dilation; minicnn has no layer for it alone")


def _build(piece):
    """The minicnn layer of a piece, holding its weights."""
    cls, kwargs, params = piece["cls"], piece["kwargs"], piece["params"]
    try:
        layer = cls(**kwargs, rng=0) if cls in (Conv2D, Dense) else cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise type(e)(f"from_torch: {_where(piece)}: {e}") from None
    for key, value in params.items():
        layer.params[key][...] = value
    return layer
