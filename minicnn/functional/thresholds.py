"""Every size threshold that decides how an operation runs, in one place.

Two kinds: when a kernel uses more than one thread, and which algorithm a convolution
runs on (``conv_paths.choose``). Each is a choice from the shape alone, never from the
thread count, so one input gives the same bits on any number of threads. Why each value
is what it is, with the measurements: benchmarks/README.md, "Why the thresholds are what
they are". Tests and tools/path_ab.py change them with ``monkeypatch.setattr(thresholds,
NAME, value)``; the code reads them at call time (a Conv2D layer keeps its choice per
input shape, so change them before building the layer).
"""

__all__ = ["PARALLEL_MIN", "PARALLEL_MIN_MACS", "DENSE_FEW_ROWS", "BATCH_MIN", "IMAGE_MIN",
           "DIRECT_TAPS_MAX", "DIRECT_CHUNK", "DIRECT_KEEP_MIN", "DIRECT_WIDE_TILES",
           "WINOGRAD_MIN_CHANNELS"]

# --- threads ---------------------------------------------------------------------------------

#: below this many values touched, a kernel runs on one thread: handing work to another
#: thread (waking it, a cache miss each) costs more than the work saves
PARALLEL_MIN = 1 << 17
#: and a convolution or product below this many multiply-adds (a batch-1 LeNet-5 step stays
#: on one thread)
PARALLEL_MIN_MACS = 1 << 18

# --- dense products --------------------------------------------------------------------------

#: a float32 product with fewer rows than this (a dense layer's forward or input gradient
#: at a batch of a few images: a matrix-vector product) goes to NumPy's BLAS on one thread,
#: which reads the weight in place where minicnn's GEMM would first pack all of it
DENSE_FEW_ROWS = 8

# --- convolution paths (conv_paths.choose) ---------------------------------------------------

#: the image-by-image, direct and Winograd paths only for a batch of at least this many
#: images, whatever the thread count: each image runs on one thread, and the choice must not
#: follow the thread setting
BATCH_MIN = 8
#: image by image only when one image's product has at least this many multiply-adds: a
#: small one (LeNet-5's 6->16 layer: 16 x 150 x 100) is too little work to run alone on a
#: thread, where the batch GEMM shares one product between threads; a large one (convnet's
#: 32->64: 10.6 M) gains from keeping each image's columns in cache
IMAGE_MIN = 1 << 20
#: direct (stride 1, read in place) only for at most this many taps (C*KH*KW): the forward
#: kernel does not cut K into blocks (convnet's 32->64 layer has 288)
DIRECT_TAPS_MAX = 512
#: and when one image's layout for the weight gradient fits in this many floats (2 MB), the
#: most it lays out at a time (a run of images, cut into chunks that fit)
DIRECT_CHUNK = 1 << 19
#: and when a row keeps at least this fraction of its wide columns (OW of Wp): the dropped
#: columns are computed too, so a row that keeps few (a 1x9 kernel with dilation 3 on
#: 28 x 28 keeps 4 of 28) is mostly wasted work
DIRECT_KEEP_MIN = 0.5
#: and a wide row (OH - 1)*Wp + OW of at least this many register tiles: a narrower image
#: goes through a loop without the register tile, which the batch path beats
DIRECT_WIDE_TILES = 1
#: Winograd only with at least this many input and output channels: the transforms cost per
#: channel (and pad the channels to the register tile's NR), the products save per pair of
#: channels, so below this the direct kernels win
WINOGRAD_MIN_CHANNELS = 32
