"""minicnn: a small convolutional-network framework you can read line by line."""
__version__ = "0.1.0"

from ._config import get_num_threads, set_num_threads, show_config
from .gradcheck import GradcheckError, gradcheck, gradcheck_loss
from . import random
from .random import seed

# === engine (owner: conv, pad, pool) ===
from . import functional, geometry, layers
from .layers import Conv2D, Pad
from .layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D, Pool2D

# === compose (owner: compose) ===
from .layers import Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy

# === model (owner: model) ===
from .checkpoint import CheckpointError, load
from .model import Sequential
from . import architectures
from .summary import receptive_field

# === training (owner: training) ===
from . import callbacks, metrics, schedules
from .callbacks import Callback, CSVLogger, EarlyStopping, JSONLinesLogger, ModelCheckpoint
from .metrics import confusion_matrix
from .optim import SGD, Adam
from .schedules import CosineAnnealingLR, LinearWarmup, OneCycleLR, StepLR
from .trainer import Trainer, TrainingDivergedError

# === data (owner: data) ===
from . import data
