"""Float32 GEMM for CPUs with AVX2 and FMA: a 4 x 24 register tile (12 ymm accumulators).

GCC 12 keeps 4 x 24 in registers (12 accumulators, 3 B vectors, a broadcast: all 16 ymm);
at 6 x 16 and 8 x 16 it spilled or fell back to 128-bit FMAs (checked in the assembly).

Built with -mavx2 -mfma (setup.py); minicnn.gemm imports it only on a CPU that has them.
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
