"""Hypothesis strategies for small networks of every exchangeable layer and option, shared by
the PyTorch exchange and ONNX export tests."""
import math

import numpy as np
from hypothesis import strategies as st

from minicnn import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                     MaxPool2D, Pad, Pool2D, ReLU, Sequential, Sigmoid, Tanh)

CONV_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
small = st.integers(0, 2)
#: every form a padding argument takes
paddings = st.one_of(small, st.tuples(small, small), st.tuples(st.tuples(small, small),
                                                               st.tuples(small, small)),
                     st.tuples(small, small, small, small), st.just("valid"))


@st.composite
def conv_layers(draw, channels, dtype):
    groups = draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
    return Conv2D(channels, groups * draw(st.integers(1, 3)),
                  (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                  stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                  padding=draw(st.one_of(paddings, st.just("same"))),
                  dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))), groups=groups,
                  bias=draw(st.booleans()), padding_mode=draw(st.sampled_from(CONV_MODES)),
                  flip_kernel=draw(st.booleans()),
                  activation=draw(st.sampled_from([None, "relu"])), dtype=dtype,
                  rng=draw(st.integers(0, 2**16)))


@st.composite
def pool_layers(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sides = tuple(tuple(draw(st.integers(0, k // 2)) for _ in range(2)) for k in (kh, kw))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ceil_mode = draw(st.booleans())
    kind = draw(st.sampled_from(["max", "avg", "pool-max", "pool-avg"]))
    if kind == "max":
        return MaxPool2D((kh, kw), stride, sides, ceil_mode)
    include = draw(st.booleans())
    if kind == "avg":
        return AvgPool2D((kh, kw), stride, sides, ceil_mode, include)
    mode = kind.split("-")[1]
    return Pool2D((kh, kw), stride, sides, mode, ceil_mode, include or mode == "max")


@st.composite
def pad_layers(draw):
    mode = draw(st.sampled_from(CONV_MODES + ("constant",)))
    value = draw(st.floats(-2, 2)) if mode == "constant" else 0.0
    return Pad(draw(paddings), mode=mode, value=value)


def elementwise_layers():
    return st.one_of(st.builds(ReLU), st.builds(Sigmoid), st.builds(Tanh),
                     st.builds(LeakyReLU, st.floats(-0.5, 0.5)),
                     st.builds(Dropout, st.floats(0, 0.9)))


@st.composite
def stacks(draw, dtype=np.float64, max_layers=4):
    """(input_shape, model): a Sequential that runs on (C, H, W) input, of up to
    ``max_layers`` spatial layers and perhaps Flatten + Dense at the end."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 8)), draw(st.integers(2, 8)))
    first, layers = shape, []
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(["conv"] * 3 + ["pool"] * 2 + ["pad", "elementwise"] * 2
                                    + ["global"]))
        try:
            layer = {"conv": lambda: draw(conv_layers(shape[0], dtype)),
                     "pool": lambda: draw(pool_layers()), "pad": lambda: draw(pad_layers()),
                     "global": GlobalAvgPool2D, "elementwise": lambda: draw(elementwise_layers()),
                     }[kind]()
            out = layer.output_shape(shape)
        except ValueError:                 # a window or a padding that this input cannot take
            continue
        if min(out[1:]) < 1 or math.prod(out) > 4000:
            continue
        layers.append(layer)
        shape = out
    if draw(st.booleans()):
        layers += [Flatten(), Dense(math.prod(shape), draw(st.integers(1, 5)), dtype=dtype,
                                    rng=draw(st.integers(0, 2**16)))]
    return first, Sequential(*layers).astype(dtype)


def inputs(shape, dtype, seed=0, n=2):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(dtype)
