"""minicnn: a small convolutional-network framework you can read line by line."""
__version__ = "0.1.0"

from .runtime import get_num_threads, set_num_threads

try:
    from ._kernels import conv as _conv_kernels  # noqa: F401
except ImportError as _e:  # a source checkout whose kernels were never compiled
    raise ImportError(
        f"minicnn's Cython kernels are not built ({_e}). Install the package with "
        "'pip install .' (or 'pip install -e .' to work on it), or run from outside the "
        "source folder to use an installed copy.") from None
from .gradcheck import GradcheckError, gradcheck, gradcheck_loss
from . import rng
from .rng import seed

# === engine (owner: conv, pad, pool) ===
from . import functional, geometry, layers, reference
from .backend import get_backend, register_op, use_backend
from .layers import Conv2D, Pad
from .layers import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Pool2D

# === compose (owner: compose) ===
from .layers import Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh
from .layers import Concat, Identity, LogSoftmax, Residual, Softmax
from .losses import MSELoss, SoftmaxCrossEntropy

# === norm (owner: norm) ===
from .layers import BatchNorm1D, BatchNorm2D, ConvTranspose2D, Upsample

# === model (owner: model) ===
from .checkpoint import CheckpointError, load
from .model import ConcurrentUseError, Sequential
from . import architectures
from .summary import receptive_field

# === training (owner: training) ===
from . import callbacks, metrics, schedules
from .callbacks import Callback, CSVLogger, EarlyStopping, JSONLinesLogger, ModelCheckpoint
from .metrics import confusion_matrix
from .optim import SGD, Adam, AdamW, RMSprop
from .schedules import CosineAnnealingLR, LinearWarmup, OneCycleLR, ReduceLROnPlateau, StepLR
from .trainer import Trainer, TrainingDivergedError

# === exchange (owner: interop): PyTorch and ONNX stay optional, imported when used ===
from . import interop
from .onnx_export import export_onnx

# === data (owner: data) ===
from . import data
from .info import show_config

__all__ = ["__version__", "get_num_threads", "set_num_threads", "GradcheckError", "gradcheck",
           "gradcheck_loss", "rng", "seed", "functional", "geometry", "layers", "reference",
           "BatchNorm1D", "BatchNorm2D", "ConvTranspose2D", "Upsample",
           "get_backend", "register_op", "use_backend", "Conv2D", "Pad", "AvgPool2D",
           "GlobalAvgPool2D", "MaxPool2D", "Pool2D", "Dense", "Dropout", "Flatten", "LeakyReLU",
           "ReLU", "Sigmoid", "Tanh", "MSELoss", "SoftmaxCrossEntropy", "CheckpointError", "load",
           "ConcurrentUseError", "Sequential", "architectures", "receptive_field", "callbacks",
           "metrics", "schedules", "Callback", "CSVLogger", "EarlyStopping", "JSONLinesLogger",
           "ModelCheckpoint", "confusion_matrix", "SGD", "Adam", "CosineAnnealingLR",
           "LinearWarmup", "OneCycleLR", "StepLR", "Trainer",
           "GlobalMaxPool2D", "Concat", "Identity", "LogSoftmax", "Residual", "Softmax", "AdamW",
           "RMSprop", "ReduceLROnPlateau", "TrainingDivergedError", "data",
           "show_config", "interop", "export_onnx"]
