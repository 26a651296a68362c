"""A NumPy memory handler (NEP 49) that keeps freed large blocks for the next request.

Computes:  nothing of a network's: it serves the data buffers of the arrays NumPy creates
           while it is the current handler (minicnn.allocator.cached_allocation sets it
           inside minicnn's calls; nothing else does). A block of at least LARGE_MIN bytes
           is rounded up to a size class (eight per power of two) and, when freed inside a
           minicnn call (in any thread that has a cached_allocation block open), kept in its
           class's free list instead of going back to malloc; the next request of that class
           takes it back. A large block freed outside minicnn's calls goes back to malloc;
           smaller blocks are NumPy's default allocator's, as without this handler.
Why:       glibc serves a block above its mmap threshold (128 KiB by default) with a fresh
           mmap and unmaps it on free, so every training step faulted its im2col columns,
           activations and gradients in again, page by page. A kept block's pages stay
           mapped. Changing glibc's threshold (mallopt, MALLOC_* variables) would change
           the allocator of the whole process; this handler only serves arrays NumPy
           allocates while it is current, and each array frees through the handler that
           allocated it, whenever and wherever that happens.
Bounds:    the kept bytes never exceed the limit (set_limit) nor the most bytes of large
           blocks that were in use at once (the largest working set seen): a block freed
           when it would not fit pushes out the longest-kept blocks; release() gives all
           back to malloc.
Threads:   any thread may allocate or free (an array allocated in one thread may die in
           another). NumPy calls these functions with the GIL held and they never release
           it, so the GIL guards the lists and counters (a free-threaded build takes a mutex
           instead, never held across a call to malloc, free or memset).
Layout:    a large block is [malloc's start .. padding | Block header | data], the data
           aligned to 64 bytes; a small one is [size | SMALL | data], from NumPy's default
           allocator (whose cache of blocks under 1 KiB it keeps using). The word before the
           data says which, so free, realloc and calloc never rely on the size NumPy
           passes to free.
Must agree with no reference op: arrays hold the same bytes whatever handler served them
(calloc zeroes a reused block).
"""
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uintptr_t, SIZE_MAX
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset, strncpy


cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil

    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator

    int _import_array() except -1
    object PyDataMem_SetHandler(object handler)
    PyObject *PyDataMem_DefaultHandler


cdef enum:
    #: the smallest block that is kept when freed (glibc's default mmap threshold: every
    #: block glibc would map afresh goes through the cache)
    LARGE_MIN_BYTES = 131072
    #: size classes per power of two: a block is rounded up by at most an eighth
    CLASSES_PER_OCTAVE = 8
    #: a request of n bytes is in octave e when 2**e < n <= 2**(e + 1); LARGE_MIN_BYTES's is 16
    FIRST_OCTAVE = 16
    CLASS_COUNT = (64 - FIRST_OCTAVE) * CLASSES_PER_OCTAVE
    DATA_ALIGN = 64
    SMALL_HEADER = 16
    #: what the word before the data says
    SMALL = 0x534d4c
    LARGE = 0x4c5247

LARGE_MIN = LARGE_MIN_BYTES


cdef struct Block:           # just before a large block's data; pointer-sized fields only
    void *raw                # what malloc returned
    size_t size              # bytes asked for
    size_t capacity          # bytes the block holds (its size class)
    Block *older             # the kept blocks, from the longest-kept to the newest
    Block *newer
    Block *next_free         # the kept blocks of one class, newest first
    Block *prev_free
    size_t kind              # LARGE; last, so that it is the word before the data


cdef Block *_free_lists[CLASS_COUNT]
cdef Block *_oldest = NULL
cdef Block *_newest = NULL
cdef size_t _kept_bytes = 0       # capacity of the blocks in the free lists
cdef size_t _kept_blocks = 0
cdef size_t _live_bytes = 0       # capacity of the large blocks handed out and not freed
cdef size_t _peak_live_bytes = 0
cdef size_t _limit = 1 << 30
cdef size_t _reused = 0           # large requests served from a free list
cdef size_t _fresh = 0            # large requests that went to malloc
cdef size_t _evicted = 0          # kept blocks given back to make room


# NumPy calls a handler's functions with the GIL held (its default handler's own cache of
# small blocks relies on that), and these functions never release it: the GIL is their lock,
# in whatever thread an array is allocated or dies. Without a GIL (a free-threaded build)
# a mutex takes its place.
cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    static PyMutex minicnn_alloc_mutex = {0};
    #define minicnn_alloc_acquire() PyMutex_Lock(&minicnn_alloc_mutex)
    #define minicnn_alloc_release() PyMutex_Unlock(&minicnn_alloc_mutex)
    #else
    #define minicnn_alloc_acquire() ((void)0)
    #define minicnn_alloc_release() ((void)0)
    #endif
    """
    void _acquire "minicnn_alloc_acquire" () noexcept nogil
    void _release "minicnn_alloc_release" () noexcept nogil


# Large arrays may use transparent huge pages, as NumPy's own handler allows them (fewer TLB
# misses in the kernels' passes over big columns): the same advice, for blocks of 4 MiB or
# more, when NumPy's setting (numpy._core.multiarray._get_madvise_hugepage) is on.
cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    #ifndef MADV_HUGEPAGE
    #define MADV_HUGEPAGE 14
    #endif
    static void minicnn_alloc_advise_hugepages(void *p, size_t n) {
        uintptr_t start = ((uintptr_t)p + 4095u) & ~(uintptr_t)4095u;
        if (n >= ((size_t)1 << 22) && start - (uintptr_t)p < n) {
            madvise((void *)start, n - (start - (uintptr_t)p), MADV_HUGEPAGE);
        }
    }
    #else
    static void minicnn_alloc_advise_hugepages(void *p, size_t n) { (void)p; (void)n; }
    #endif
    """
    void _advise_hugepages "minicnn_alloc_advise_hugepages" (void *p, size_t n) noexcept nogil


cdef bint _hugepages = False


# How many cached_allocation blocks are open in this thread. Only a block freed while one is
# open is kept: those are minicnn's own temporaries (a layer's cache replaced by the next
# forward, columns, gradients); an array that left minicnn and dies in the caller's code (a
# result, or arrays a user collected) goes back to malloc, as it would have without minicnn.
# (A thread, not a context: minicnn's calls never yield or await inside a block.)
cdef extern from *:
    """
    #if defined(_MSC_VER)
    static __declspec(thread) int minicnn_alloc_depth = 0;
    #else
    static __thread int minicnn_alloc_depth = 0;
    #endif
    """
    int _depth "minicnn_alloc_depth"


cdef Py_ssize_t _size_class(size_t n, size_t *capacity) noexcept nogil:
    """The class of a request of n >= LARGE_MIN_BYTES bytes, and the bytes it holds;
    -1 when n is too large to round up."""
    cdef int octave = FIRST_OCTAVE, top = 8 * <int>sizeof(size_t) - 2
    cdef size_t step, k
    while octave < top and ((<size_t>1) << (octave + 1)) < n:
        octave += 1
    if octave >= top:
        return -1
    step = (<size_t>1) << (octave - 3)                 # 2**octave / CLASSES_PER_OCTAVE
    k = (n - ((<size_t>1) << octave) + step - 1) // step   # 1 .. 8
    capacity[0] = ((<size_t>1) << octave) + k * step
    return (octave - FIRST_OCTAVE) * CLASSES_PER_OCTAVE + <Py_ssize_t>k - 1


cdef inline Block *_header(void *data) noexcept nogil:
    return <Block *>(<char *>data - sizeof(Block))


cdef inline size_t _kind(void *data) noexcept nogil:
    return (<size_t *>data - 1)[0]


cdef inline size_t _keep_limit() noexcept nogil:
    return _limit if _limit < _peak_live_bytes else _peak_live_bytes


# --- the kept blocks (lock held) -----------------------------------------------------------

cdef void _unlink(Block *b, Py_ssize_t cls) noexcept nogil:
    global _oldest, _newest, _kept_bytes, _kept_blocks
    if b.prev_free != NULL:
        b.prev_free.next_free = b.next_free
    else:
        _free_lists[cls] = b.next_free
    if b.next_free != NULL:
        b.next_free.prev_free = b.prev_free
    if b.older != NULL:
        b.older.newer = b.newer
    else:
        _oldest = b.newer
    if b.newer != NULL:
        b.newer.older = b.older
    else:
        _newest = b.older
    b.next_free = b.prev_free = b.older = b.newer = NULL
    _kept_bytes -= b.capacity
    _kept_blocks -= 1


cdef void _keep(Block *b, Py_ssize_t cls) noexcept nogil:
    global _oldest, _newest, _kept_bytes, _kept_blocks
    b.next_free = _free_lists[cls]
    b.prev_free = NULL
    if b.next_free != NULL:
        b.next_free.prev_free = b
    _free_lists[cls] = b
    b.older = _newest
    b.newer = NULL
    if _newest != NULL:
        _newest.newer = b
    else:
        _oldest = b
    _newest = b
    _kept_bytes += b.capacity
    _kept_blocks += 1


cdef Block *_evict_until(size_t room) noexcept nogil:
    """Unlink the longest-kept blocks until ``room`` more bytes fit under the limit; returns
    them as a list through next_free, for the caller to free after releasing the lock."""
    global _evicted
    cdef Block *out = NULL
    cdef Block *b
    cdef size_t cap
    while _oldest != NULL and _kept_bytes + room > _keep_limit():
        b = _oldest
        _unlink(b, _size_class(b.capacity, &cap))
        b.next_free = out
        out = b
        _evicted += 1
    return out


cdef void _free_chain(Block *b) noexcept nogil:
    cdef Block *next_b
    while b != NULL:
        next_b = b.next_free
        free(b.raw)
        b = next_b


# --- large blocks ----------------------------------------------------------------------------

cdef void *_large_alloc(size_t n, bint zero) noexcept nogil:
    global _live_bytes, _peak_live_bytes, _reused, _fresh
    cdef size_t capacity = 0
    cdef Py_ssize_t cls = _size_class(n, &capacity)
    cdef Block *b = NULL
    cdef void *raw
    cdef char *data
    if cls < 0:
        return NULL
    _acquire()
    b = _free_lists[cls]
    if b != NULL:
        _unlink(b, cls)
        _reused += 1
    else:
        _fresh += 1
    _live_bytes += capacity
    if _live_bytes > _peak_live_bytes:
        _peak_live_bytes = _live_bytes
    _release()
    if b != NULL:
        b.size = n
        data = <char *>b + sizeof(Block)
        if zero:
            memset(data, 0, n)
        return data
    if capacity > SIZE_MAX - sizeof(Block) - DATA_ALIGN:
        raw = NULL
    elif zero:           # fresh pages from calloc are zero already: no memset, no faults yet
        raw = calloc(1, capacity + sizeof(Block) + DATA_ALIGN)
    else:
        raw = malloc(capacity + sizeof(Block) + DATA_ALIGN)
    if raw == NULL:
        _acquire()
        _live_bytes -= capacity
        _release()
        return NULL
    data = <char *>((<uintptr_t>raw + sizeof(Block) + DATA_ALIGN - 1) & ~(<uintptr_t>DATA_ALIGN - 1))
    if _hugepages:
        _advise_hugepages(data, capacity)
    b = _header(data)
    b.raw = raw
    b.size = n
    b.capacity = capacity
    b.older = b.newer = b.next_free = b.prev_free = NULL
    b.kind = LARGE
    return data


cdef void _large_free(Block *b) noexcept nogil:
    global _live_bytes
    cdef size_t capacity
    cdef Py_ssize_t cls = _size_class(b.capacity, &capacity)
    cdef Block *evicted = NULL
    _acquire()
    _live_bytes -= b.capacity
    if _depth > 0 and b.capacity <= _keep_limit():
        evicted = _evict_until(b.capacity)
        _keep(b, cls)
        b = NULL
    _release()
    _free_chain(evicted)
    if b != NULL:
        free(b.raw)


# --- the handler's four functions -------------------------------------------------------------

# Small blocks go to NumPy's own default allocator (with the header in front), so that its
# cache of blocks under 1 KiB serves them as it would without this handler.
cdef PyDataMemAllocator *_numpy = NULL


cdef void *_small_alloc(size_t n, bint zero) noexcept nogil:
    cdef size_t *raw
    if n > SIZE_MAX - SMALL_HEADER:
        return NULL
    if zero:
        raw = <size_t *>_numpy.calloc(_numpy.ctx, 1, n + SMALL_HEADER)
    else:
        raw = <size_t *>_numpy.malloc(_numpy.ctx, n + SMALL_HEADER)
    if raw == NULL:
        return NULL
    raw[0] = n
    (<size_t *>(<char *>raw + SMALL_HEADER) - 1)[0] = SMALL
    return <char *>raw + SMALL_HEADER


cdef void *_malloc(void *ctx, size_t n) noexcept nogil:
    if n >= LARGE_MIN_BYTES:
        return _large_alloc(n, False)
    return _small_alloc(n, False)


cdef void *_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    if elsize != 0 and nelem > SIZE_MAX // elsize:
        return NULL
    if nelem * elsize >= LARGE_MIN_BYTES:
        return _large_alloc(nelem * elsize, True)
    return _small_alloc(nelem * elsize, True)


cdef void _free(void *ctx, void *ptr, size_t size) noexcept nogil:
    if ptr == NULL:
        return
    if _kind(ptr) == LARGE:
        _large_free(_header(ptr))
    else:
        ptr = <char *>ptr - SMALL_HEADER
        _numpy.free(_numpy.ctx, ptr, (<size_t *>ptr)[0] + SMALL_HEADER)


cdef void *_realloc(void *ctx, void *ptr, size_t n) noexcept nogil:
    cdef void *out
    cdef size_t old_size
    cdef Block *b
    cdef char *raw
    if ptr == NULL:
        return _malloc(ctx, n)
    if _kind(ptr) == LARGE:
        b = _header(ptr)
        if LARGE_MIN_BYTES <= n <= b.capacity:
            b.size = n
            return ptr
        old_size = b.size
    else:
        old_size = (<size_t *>(<char *>ptr - SMALL_HEADER))[0]
        if n < LARGE_MIN_BYTES:
            raw = <char *>_numpy.realloc(_numpy.ctx, <char *>ptr - SMALL_HEADER, n + SMALL_HEADER)
            if raw == NULL:
                return NULL
            (<size_t *>raw)[0] = n
            return raw + SMALL_HEADER
    out = _malloc(ctx, n)
    if out == NULL:
        return NULL
    memcpy(out, ptr, old_size if old_size < n else n)
    _free(ctx, ptr, old_size)
    return out


cdef PyDataMem_Handler _handler
strncpy(_handler.name, b"minicnn_cached", sizeof(_handler.name) - 1)
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = _malloc
_handler.allocator.calloc = _calloc
_handler.allocator.realloc = _realloc
_handler.allocator.free = _free

_import_array()
_numpy = &(<PyDataMem_Handler *>PyCapsule_GetPointer(<object>PyDataMem_DefaultHandler,
                                                    b"mem_handler")).allocator
try:
    from numpy._core.multiarray import _get_madvise_hugepage
except ImportError:                       # NumPy 1.x
    try:
        from numpy.core.multiarray import _get_madvise_hugepage
    except ImportError:
        _get_madvise_hugepage = bool
_hugepages = bool(_get_madvise_hugepage())
#: the handler as NumPy takes it (a capsule named "mem_handler"); it lives as long as the
#: process: every array it allocated keeps a reference, and its functions are this module's
HANDLER = PyCapsule_New(&_handler, b"mem_handler", NULL)
HANDLER_NAME = "minicnn_cached"


def install():
    """Make the cached handler current in this context; returns the handler it replaced.
    Every install must be followed by one restore, in the same thread."""
    global _depth
    previous = PyDataMem_SetHandler(HANDLER)
    _depth += 1
    return previous


def restore(previous):
    """Make ``previous`` (what install returned) current again."""
    global _depth
    _depth -= 1
    PyDataMem_SetHandler(previous)


def stats():
    """The cache's counters (a dict of ints)."""
    cdef size_t counts[8]
    _acquire()         # (no Python object is made under the mutex: a collection could free)
    counts[:] = [_kept_bytes, _kept_blocks, _live_bytes, _peak_live_bytes, _limit, _reused,
                 _fresh, _evicted]
    _release()
    names = ("kept_bytes", "kept_blocks", "live_bytes", "peak_live_bytes", "limit", "reused",
             "fresh", "evicted")
    return {name: counts[i] for i, name in enumerate(names)}


def set_limit(size_t limit):
    """Keep at most ``limit`` bytes of freed blocks (blocks beyond it are given back now)."""
    global _limit
    cdef Block *evicted
    _acquire()
    _limit = limit
    evicted = _evict_until(0)
    _release()
    _free_chain(evicted)


def release():
    """Give every kept block back to malloc; returns how many bytes they held."""
    global _limit
    cdef Block *evicted
    cdef size_t limit, freed
    _acquire()
    freed = _kept_bytes
    limit = _limit
    _limit = 0
    evicted = _evict_until(0)
    _limit = limit
    _release()
    _free_chain(evicted)
    return freed

