"""The readable version of every operation of minicnn, forward and backward, in NumPy.

These are the operations a CNN is made of, written to be read beside the convolution
notes rather than to be fast: plain loops over output pixels, and one line of NumPy per
formula. The names are the notes' own: x, w, b, out (forward); dout, dx, dw, db (their
gradients); shapes N, C, H, W (batch, channels, height, width), KH, KW (kernel), OH, OW
(output); stride, padding, dilation, groups as PyTorch names them. Each module opens with
its formulas, forward and backward.

How to read them (each builds on the ones before):

    padding.py         pad and its gradient: zeros/constant, reflect, symmetric, replicate,
                       circular, on any sides
    conv.py            conv2d: stride, dilation, groups (depthwise), padding, true
                       convolution (flip_kernel); the backward gives dx, dw and db
    pool.py            max and average pooling: padding, ceil_mode, count_include_pad;
                       global average and global max pooling
    fully_connected.py the dense layer
    activation.py      relu, leaky_relu, sigmoid, tanh and dropout
    loss.py            softmax, log_softmax, softmax cross-entropy, mean squared error
    norm.py            batch normalisation: batch and running statistics
    conv_transpose.py  the transposed convolution: conv2d's input gradient as an operation
    upsample.py        upsampling by integer factors: nearest and bilinear

minicnn.functional holds the fast versions, on Cython kernels; the tests check every
fast function against the one here, and every backward here against finite differences
(``minicnn.gradcheck.numerical_gradient``). Each function takes the same arguments as
its fast counterpart, in the same order, and returns the same things; where they differ:

- conv2d_forward also takes stride and dilation as a single int (functional wants
  pairs there); it ignores ``workspace``. Its cache is its own dict, for the
  conv2d_backward of this module only.
- No ``max_pool2d_2x2`` (the fast kernel of MaxPool2D(2), which returns a 2x2 code):
  ``max_pool2d`` covers that case, with a flat argmax.
- No ``pad_index`` (the fast pad's index maps): ``source_index`` gives the same rule one
  position at a time.
- Shapes and argument forms are checked with functional's messages; dtypes are not (any
  real array is taken, and the result has the dtype NumPy gives).
- Sums run in another order, so float results may differ from the fast ones in the last
  bits; max pooling, padding and the activations give the same values.
- Extra, for reading: ``logsumexp``, ``one_hot``, ``dropout`` and ``dropout_backward`` (the Dropout layer multiplies by the
  mask itself), ``rotate_180`` and ``window`` (conv's kernel flip and window slices).
"""
from .padding import check_pad_mode, pad, pad_backward, source_index
from .conv import conv2d, conv2d_backward, conv2d_forward, rotate_180, window
from .pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                   global_avg_pool2d_backward, global_max_pool2d, global_max_pool2d_backward,
                   max_pool2d, max_pool2d_2x2, max_pool2d_2x2_backward, max_pool2d_backward,
                   pool_args, pool_output_hw)
from .fully_connected import dense, dense_backward
from .activation import (dropout, dropout_backward, dropout_mask, leaky_relu,
                         leaky_relu_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                         tanh, tanh_backward)
from .conv_transpose import (conv_transpose2d, conv_transpose2d_args,
                             conv_transpose2d_backward, conv_transpose2d_forward,
                             conv_transpose2d_output_hw)
from .upsample import (upsample_args, upsample_bilinear, upsample_bilinear_backward,
                       upsample_nearest, upsample_nearest_backward)
from .norm import batch_norm, batch_norm_backward, batch_norm_forward
from .loss import (log_softmax, log_softmax_backward, logsumexp, mse, mse_backward, one_hot,
                   softmax, softmax_backward, softmax_cross_entropy,
                   softmax_cross_entropy_backward)

__all__ = [
    "source_index", "check_pad_mode", "pad", "pad_backward",
    "conv2d_forward", "conv2d_backward", "conv2d", "rotate_180", "window",
    "pool_args", "pool_output_hw", "max_pool2d", "max_pool2d_backward", "max_pool2d_2x2",
    "max_pool2d_2x2_backward", "avg_pool2d",
    "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
    "global_max_pool2d", "global_max_pool2d_backward",
    "dense", "dense_backward",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "dropout_mask", "dropout", "dropout_backward",
    "logsumexp", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "one_hot",
    "softmax_cross_entropy", "softmax_cross_entropy_backward", "mse", "mse_backward",
    "batch_norm", "batch_norm_forward", "batch_norm_backward",
    "conv_transpose2d", "conv_transpose2d_forward", "conv_transpose2d_backward",
    "conv_transpose2d_args", "conv_transpose2d_output_hw",
    "upsample_args", "upsample_nearest", "upsample_nearest_backward",
    "upsample_bilinear", "upsample_bilinear_backward",
]
