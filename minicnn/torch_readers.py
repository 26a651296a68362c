"""How ``minicnn.interop.from_torch`` reads each PyTorch module: ``readers(torch, tm)``, a
table from module class to a function returning (minicnn layer class, its keyword
arguments, {name: array} of its params and buffers). A reader raises TypeError or
ValueError saying what minicnn lacks; from_torch adds which module it was.
"""
from . import geometry
from .layers import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, ConvTranspose2D, Dense, Dropout,
                     Flatten, GlobalAvgPool2D, GlobalMaxPool2D, LeakyReLU, LogSoftmax, MaxPool2D,
                     Pad, ReLU, Sigmoid, Softmax, Tanh, Upsample)

__all__ = ["readers"]


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


def _read_batch_norm(m, torch, cls):
    params, dtype = _weights(torch, m) if m.affine else ({}, None)
    if m.track_running_stats:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            params[name] = getattr(m, name).detach().cpu().numpy().copy()
        dtype = dtype or params["running_mean"].dtype.name
    if dtype not in (None, "float32", "float64"):
        raise TypeError(f"its statistics are {dtype}; minicnn keeps float32 or float64 "
                        "(call module.float() or module.double() first)")
    return cls, dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum,
                     affine=m.affine, track_running_stats=m.track_running_stats,
                     dtype=dtype or "float32"), params


def _read_conv_transpose(m, torch):
    if m.padding_mode != "zeros":
        raise ValueError(f"minicnn's ConvTranspose2D pads with zeros only, not "
                         f"padding_mode={m.padding_mode!r}")
    params, dtype = _weights(torch, m)
    return ConvTranspose2D, dict(
        in_channels=m.in_channels, out_channels=m.out_channels,
        kernel_size=_short(m.kernel_size), stride=_short(m.stride), padding=_short(m.padding),
        output_padding=_short(m.output_padding), groups=m.groups, bias=m.bias is not None,
        dilation=_short(m.dilation), dtype=dtype), params


def _read_upsample(m):
    if m.size is not None or m.scale_factor is None:
        raise ValueError(f"minicnn's Upsample takes a scale_factor, not size={m.size!r}")
    scale = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * 2
    if len(scale) != 2 or any(float(v) != int(v) or v < 1 for v in scale):
        raise ValueError(f"minicnn's Upsample scales each axis by a positive int, not "
                         f"scale_factor={m.scale_factor!r}")
    if m.mode not in ("nearest", "bilinear"):
        raise ValueError(f"minicnn's Upsample has modes 'nearest' and 'bilinear', not "
                         f"mode={m.mode!r}")
    kwargs = dict(scale_factor=_short(tuple(int(v) for v in scale)), mode=m.mode)
    if m.mode == "bilinear":
        kwargs["align_corners"] = bool(m.align_corners)
    return Upsample, kwargs, {}


def _read_adaptive_max(m):
    if m.output_size not in (1, (1, 1)) or m.return_indices:
        raise ValueError(f"minicnn's GlobalMaxPool2D is output_size=1 without indices, not "
                         f"output_size={m.output_size!r}, return_indices={m.return_indices}")
    return GlobalMaxPool2D, {}, {}


def _read_along_dim(m, cls):
    if m.dim is None:
        raise ValueError(f"minicnn's {cls.__name__} needs dim (1: the classes or channels), "
                         "not dim=None")
    return cls, dict(dim=m.dim), {}


def readers(torch, tm):
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
        nn.BatchNorm2d: lambda m: _read_batch_norm(m, torch, BatchNorm2D),
        nn.BatchNorm1d: lambda m: _read_batch_norm(m, torch, BatchNorm1D),
        nn.ConvTranspose2d: lambda m: _read_conv_transpose(m, torch),
        nn.Upsample: _read_upsample,
        nn.AdaptiveMaxPool2d: _read_adaptive_max,
        nn.Softmax: lambda m: _read_along_dim(m, Softmax),
        nn.LogSoftmax: lambda m: _read_along_dim(m, LogSoftmax),
    }
