"""Large temporaries reuse freed memory inside minicnn's calls, and nowhere else.

A training step makes and drops the same large arrays every time: im2col columns,
activations, gradients. NumPy gets their memory from malloc, and glibc serves a block above
its mmap threshold (128 KiB by default) with fresh pages that are faulted in one by one and
unmapped again when the array dies, on every step. Tuning glibc (mallopt, MALLOC_* variables)
would change the allocator of the whole process, which importing minicnn must not do.

Instead, ``cached_allocation()`` makes minicnn's own NumPy memory handler (NEP 49, in
minicnn/_kernels/alloc.pyx) current for the block. NumPy keeps the current handler in a
context variable, so only arrays created in this thread (or asyncio task) while the block
is open are affected; each array remembers its handler and frees through it, wherever and
whenever it dies. A block of at least ``LARGE_MIN`` bytes that dies inside a minicnn call
(a layer's cache replaced by the next forward, columns, gradients) is kept for the next
request of its size class (eight per power of two); one that dies in the caller's code (a
result, arrays a user collected) goes back to malloc. The kept bytes stay under a limit:
never more than ``get_cache_limit()``, nor more than the most bytes of such blocks that
were in use at once. ``release_cache()`` gives every kept block back.

Sequential's forward and backward, the optimizers' step and the Trainer's batches run
inside ``cached_allocation()``; code outside them allocates as it would without minicnn.
"""
from numbers import Integral

from ._kernels import alloc as _alloc

__all__ = ["cached_allocation", "cache_info", "release_cache", "set_cache_limit",
           "get_cache_limit", "set_enabled", "is_enabled", "LARGE_MIN", "HANDLER_NAME"]

#: the smallest block the handler keeps when it is freed (smaller ones go back to malloc)
LARGE_MIN = _alloc.LARGE_MIN
#: what numpy's get_handler_name() says for an array the handler allocated
HANDLER_NAME = _alloc.HANDLER_NAME


_enabled = True


def set_enabled(enabled):
    """Whether minicnn's calls use the caching handler (True, the default) or leave NumPy's
    current handler alone (False: arrays are allocated exactly as without minicnn; for
    comparisons, e.g. benchmarks/page_faults.py). Blocks already open are not affected."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_enabled: enabled must be True or False, got {enabled!r}")
    _enabled = enabled


def is_enabled():
    """Whether minicnn's calls use the caching handler (see set_enabled)."""
    return _enabled


class cached_allocation:
    """Context manager: NumPy arrays created inside the block (in this thread or task) get
    their memory from minicnn's caching handler; the handler current before is restored on
    leaving, also when the block raises. Blocks nest. Does nothing when set_enabled(False)."""

    __slots__ = ("_previous", "_installed")

    def __enter__(self):
        self._installed = _enabled
        if self._installed:
            self._previous = _alloc.install()
        return self

    def __exit__(self, *exc):
        if self._installed:
            previous, self._previous = self._previous, None
            _alloc.restore(previous)
        return False


def cache_info():
    """The handler's counters, a dict of ints: ``kept_bytes`` and ``kept_blocks`` (freed
    blocks held for reuse), ``live_bytes`` and ``peak_live_bytes`` (large blocks in use now,
    and at most so far), ``limit``, ``reused`` and ``fresh`` (large requests served from the
    kept blocks, and from malloc), ``evicted`` (kept blocks given back to malloc)."""
    return _alloc.stats()


def release_cache():
    """Give every kept block back to malloc (the arrays in use keep theirs); returns the
    number of bytes released. The cache fills again in the next minicnn call."""
    return _alloc.release()


def set_cache_limit(nbytes):
    """Keep at most ``nbytes`` bytes of freed blocks (0: keep none); blocks beyond the new
    limit are released at once."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, Integral) or nbytes < 0:
        raise ValueError(f"set_cache_limit: nbytes must be an integer >= 0, got {nbytes!r}")
    _alloc.set_limit(min(int(nbytes), 2**63 - 1))


def get_cache_limit():
    """The most bytes of freed blocks the handler keeps (see set_cache_limit)."""
    return _alloc.stats()["limit"]
