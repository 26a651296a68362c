"""Layers, one file per family. ``LAYERS`` maps class names to classes (for checkpoints)."""
from .base import Buffer, Layer, Parameter

# === engine (owner: conv, pad, pool) ===
from .conv import Conv2D
from .pad import Pad
from .pool import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Pool2D

# === compose (owner: compose) ===
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .dense import Dense
from .dropout import Dropout
from .shape import Flatten, Identity

# === blocks (owner: blocks) ===
from .containers import Concat, Residual

# === norm (owner: norm) ===
from .norm import BatchNorm1D, BatchNorm2D
from .upsampling import ConvTranspose2D, Upsample

__all__ = ["LAYERS", "CONTAINERS", "register_container", "Layer", "Parameter", "Buffer", "Conv2D",
           "Pad", "AvgPool2D", "GlobalAvgPool2D", "MaxPool2D", "Pool2D", "LeakyReLU", "ReLU",
           "Sigmoid", "Tanh", "Dense", "Dropout", "Flatten", "BatchNorm1D", "BatchNorm2D",
           "ConvTranspose2D", "Upsample", "GlobalMaxPool2D", "Softmax", "LogSoftmax", "Identity",
           "Residual", "Concat"]

LAYERS = {
    cls.__name__: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer
}
#: models built from layers (Sequential), by class name: they live above this package and
#: register themselves, so a checkpoint rebuilds them without importing the model modules
CONTAINERS = {}


def register_container(cls):
    """Class decorator: checkpoints may rebuild ``cls`` (a model holding layers) by name."""
    CONTAINERS[cls.__name__] = cls
    return cls
