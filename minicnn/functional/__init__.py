"""Pure functions, forward and backward, that the layers call: one module per family of
operations (pad, conv, pool, dense, activation, loss, optim, norm).

Each function validates its arguments, allocates its outputs with NumPy and calls a Cython
kernel (``minicnn._kernels``); kernels run with bounds checks off, so nothing reaches them
unchecked. Arrays are NCHW; padding is in the per-side form ``((top, bottom), (left,
right))`` of ``minicnn.geometry``. ``owner`` names the caller in error messages: a string,
or the calling layer itself, whose repr is only built when a message needs it.

The readable versions of every operation, with the same signatures, are in
``minicnn.reference``; ``minicnn.use_backend('reference')`` runs the layers on them.
How a convolution is computed (six paths) and which sizes decide: ``conv_paths`` and
``thresholds``.
"""
from . import thresholds
from .activation import (dropout_mask, leaky_relu, leaky_relu_backward, relu, relu_backward,
                         sigmoid, sigmoid_backward, tanh, tanh_backward)
from .conv import CONV_ACTIVATIONS, conv2d, conv2d_backward, conv2d_forward
from .dense import dense, dense_backward
from .conv_transpose import (conv_transpose2d, conv_transpose2d_args,
                             conv_transpose2d_backward, conv_transpose2d_forward,
                             conv_transpose2d_output_hw)
from .upsample import (upsample_args, upsample_bilinear, upsample_bilinear_backward,
                       upsample_nearest, upsample_nearest_backward)
from .norm import batch_norm, batch_norm_backward, batch_norm_forward
from .loss import (log_softmax, log_softmax_backward, mse, mse_backward, softmax,
                   softmax_backward, softmax_cross_entropy, softmax_cross_entropy_backward)
from .optim import sgd_arrays_problem, sgd_update, sgd_update_checked
from .pad import check_pad_mode, pad, pad_backward, pad_index
from .pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                   global_avg_pool2d_backward, global_max_pool2d, global_max_pool2d_backward,
                   max_pool2d, max_pool2d_2x2,
                   max_pool2d_2x2_backward, max_pool2d_backward, pool_args, pool_output_hw)

__all__ = ["thresholds", "CONV_ACTIVATIONS", "conv2d", "conv2d_backward", "conv2d_forward",
           "pad", "pad_backward", "pad_index", "check_pad_mode",
           "max_pool2d", "max_pool2d_backward", "max_pool2d_2x2", "max_pool2d_2x2_backward",
           "avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d",
           "global_avg_pool2d_backward", "global_max_pool2d", "global_max_pool2d_backward",
           "pool_args", "pool_output_hw",
           "dense", "dense_backward",
           "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "dropout_mask",
           "log_softmax", "log_softmax_backward", "softmax", "softmax_backward",
           "softmax_cross_entropy", "softmax_cross_entropy_backward",
           "mse", "mse_backward",
           "batch_norm", "batch_norm_forward", "batch_norm_backward",
           "conv_transpose2d", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "conv_transpose2d_args", "conv_transpose2d_output_hw",
           "upsample_args", "upsample_nearest", "upsample_nearest_backward",
           "upsample_bilinear", "upsample_bilinear_backward",
           "sgd_arrays_problem", "sgd_update", "sgd_update_checked"]
