"""Weight initialisation. Biases start at zero; weights by ``weight_init``:

- ``'he'`` (Kaiming normal, the default): std = sqrt(2 / fan_in), for layers followed by ReLU;
- ``'glorot'`` (Xavier uniform): limit = sqrt(6 / (fan_in + fan_out)).

fan_in and fan_out count the inputs and outputs one weight touches: for a
convolution (in/groups) * kh * kw and (out/groups) * kh * kw.
"""
import math

from .random import get_rng

WEIGHT_INITS = ("he", "glorot")


def init_weight(shape, fan_in, fan_out, weight_init, dtype, rng=None, owner="layer"):
    """Draw a weight array of ``shape`` and ``dtype`` with the named scheme."""
    gen = get_rng(rng)
    if weight_init == "he":
        w = gen.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    elif weight_init == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = gen.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"{owner}: weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
    return w.astype(dtype)
