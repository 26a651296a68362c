"""Float32 kernels for CPUs with AVX2 and FMA: a 4 x 24 register tile (12 ymm accumulators).

This module is the constants below and four included files, compiled with -mavx2 -mfma
(setup.py); minicnn.gemm imports it only on a CPU that has them. Each file opens with what
it computes, its layout, how it splits the work over threads and in what order it sums:

    gemm.pxi         the matrix product C = A @ B (minicnn.gemm.matmul)
    gemm_conv.pxi    a convolution's products image by image: im2col, GEMM, bias, ReLU
                     forward; GEMM, col2im backward
    direct_conv.pxi  stride-1 convolutions with the GEMM's micro kernel reading the padded
                     images in place (no im2col): forward, weight and input gradients
    winograd.pxi     3x3 stride-1 convolutions by Winograd's F(2x2, 3x3)

The constants size the register tile (MR x NR), the product's cache blocks, and the direct
and Winograd kernels' tiles for this instruction set's vector length VL.

Must agree with: a float64 matrix product (gemm.pxi), and for the three convolution files
minicnn.reference.conv.conv2d_forward and conv2d_backward, to float32 rounding.

GCC 12 keeps 4 x 24 in registers (12 accumulators, 3 B vectors, a broadcast: all 16 ymm);
at 6 x 16 and 8 x 16 it spilled or fell back to 128-bit FMAs (checked in the assembly).
"""
cdef enum:
    MR = 4              # rows of C per micro kernel
    NR = 24             # columns: three 8-float vectors
    KC_ONE = 384        # K up to this is one block
    KC_BLOCK = 256      # else blocks of about this: a 256 x 24 B panel is 24 KB of L1
    A_BLOCK = 98304     # floats: 384 KB of packed A in L2
    B_BLOCK = 131072    # floats: 512 KB of packed B in L2
    VL = 8             # floats in a vector (direct_conv.pxi)
    MS = 2              # rows of the short tile, for a last panel of at most MS rows
    NS = 48             # and its columns: 2 x 6 ymm accumulators (direct_conv.pxi)
    DO = 2              # channels per direct weight-gradient tile (direct_conv.pxi)

include "gemm.pxi"
include "gemm_conv.pxi"
include "direct_conv.pxi"
include "winograd.pxi"
