"""The package's random generator: every random draw goes through a numpy Generator.

``minicnn.seed(n)`` reseeds the default generator; layers and the trainer also
accept an explicit ``rng`` (a ``numpy.random.Generator`` or an int seed).
"""
import numpy as np

__all__ = ["seed", "get_rng"]

_default = np.random.default_rng()


def seed(n):
    """Reseed the default generator, so that initialisation and dropout repeat."""
    global _default
    _default = np.random.default_rng(n)
    return _default


def get_rng(rng=None):
    """``rng`` as a Generator: None gives the default one, an int seeds a new one."""
    if rng is None:
        return _default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {rng!r}")
