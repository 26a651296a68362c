"""Float32 GEMM for CPUs with AVX-512F: an 8 x 32 register tile (16 zmm accumulators).

Built with -mavx512f -mfma (setup.py); minicnn.gemm imports it only on a CPU that has them.
"""
cdef enum:
    MR = 8              # rows of C per micro kernel
    NR = 32             # columns: two 16-float vectors
    KC_ONE = 384        # K up to this is one block
    KC_BLOCK = 128      # else blocks of about this: a 128 x 32 B panel is 16 KB of L1
    A_BLOCK = 98304     # floats: 384 KB of packed A in L2
    B_BLOCK = 131072    # floats: 512 KB of packed B in L2
    VL = 16             # floats in a vector (direct_conv.pxi)
    MS = 6              # rows of the short tile, for a last panel of at most MS rows
    NS = 64             # and its columns: 6 x 4 zmm accumulators (direct_conv.pxi)
    DO = 4              # channels per direct weight-gradient tile (direct_conv.pxi)

include "gemm.pxi"
include "gemm_conv.pxi"
include "direct_conv.pxi"
include "winograd.pxi"
