"""The named networks of the MNIST example, the command line and the benchmarks.

Each builder returns a fresh ``Sequential`` for 1 x 28 x 28 input and 10 classes.
Layers followed by ReLU get He initialisation (the default); the final classifier,
followed by softmax, gets Glorot: with He its initial logits are so large that the
first loss is about 10 instead of log(10) = 2.3, and early training is slower.
A depthwise convolution followed directly by a 1x1 convolution (no ReLU between) gets
Glorot too: He's factor 2 makes up for the half of the signal a ReLU removes, and
without a ReLU each such layer doubles the activations' variance. With He there, dwsep
at lr 0.02 blows up in its first steps (mean loss 7.9 over the first 50) and its
ReLUs die; with Glorot it trains (0.93).
"""
from .layers import (AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU)
from .model import Sequential

__all__ = ["lenet5", "convnet", "dwsep", "ARCHITECTURES", "build"]


def lenet5(rng=None):
    """LeNet-5 (61,706 parameters): conv 1->6 5x5 'same', pool, conv 6->16 5x5, pool, 400-120-84-10."""
    return Sequential(
        Conv2D(1, 6, 5, padding="same", activation="relu", rng=rng), MaxPool2D(2),
        Conv2D(6, 16, 5, activation="relu", rng=rng), MaxPool2D(2),
        Flatten(),
        Dense(400, 120, rng=rng), ReLU(),
        Dense(120, 84, rng=rng), ReLU(),
        Dense(84, 10, weight_init="glorot", rng=rng),
    )


def convnet(rng=None):
    """The classic Keras MNIST convnet: conv 1->32 3x3, conv 32->64 3x3, pool, 9216-128-10."""
    return Sequential(
        Conv2D(1, 32, 3, activation="relu", rng=rng),
        Conv2D(32, 64, 3, activation="relu", rng=rng), MaxPool2D(2),
        Flatten(),
        Dense(9216, 128, rng=rng), ReLU(),
        Dense(128, 10, weight_init="glorot", rng=rng),
    )


def dwsep(rng=None):
    """A small net that shows the notes' ideas in one place.

    Mirror ('reflect') padding, a 3x3 stride-2 padded max pool, two depthwise-separable
    blocks (a depthwise 3x3 convolution, groups == channels, followed by a 1x1
    convolution that mixes channels) and average pooling.
    """
    return Sequential(
        Conv2D(1, 16, 3, padding=1, padding_mode="reflect", activation="relu",
               rng=rng),                                                         # 16 x 28 x 28
        MaxPool2D(3, stride=2, padding=1),                                       # 16 x 14 x 14
        Conv2D(16, 16, 3, padding=1, groups=16, weight_init="glorot", rng=rng),  # depthwise
        Conv2D(16, 32, 1, activation="relu", rng=rng),                           # pointwise
        Conv2D(32, 32, 3, padding=1, groups=32, padding_mode="reflect", weight_init="glorot",
               rng=rng),
        Conv2D(32, 64, 1, activation="relu", rng=rng),                           # 64 x 14 x 14
        AvgPool2D(2),                                                            # 64 x 7 x 7
        Flatten(),
        Dense(64 * 7 * 7, 64, rng=rng), ReLU(),
        Dense(64, 10, weight_init="glorot", rng=rng),
    )


ARCHITECTURES = {"lenet5": lenet5, "convnet": convnet, "dwsep": dwsep}


def build(name, rng=None):
    """Build a named architecture (see ``ARCHITECTURES``)."""
    try:
        builder = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return builder(rng=rng)
