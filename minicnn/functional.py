"""Pure functions, forward and backward, that the layers call.

Each function validates its arguments, allocates its outputs with NumPy and calls
a Cython kernel (``minicnn._kernels``); kernels run with bounds checks off, so
nothing reaches them unchecked. Arrays are NCHW; padding is in the per-side form
``((top, bottom), (left, right))`` of ``minicnn.geometry``.
"""
import numpy as np

from . import geometry
from ._config import get_num_threads

# === padding (owner: pad) ====================================================

# === convolution (owner: conv) ===============================================

# === pooling (owner: pool) ===================================================

# === dense and activations (owner: compose) ==================================
