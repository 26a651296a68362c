"""What every functional op shares: the thread count for a kernel call, input checks, and
scratch buffers a layer keeps between calls."""
import numpy as np

from ..runtime import get_num_threads
from . import thresholds

__all__ = ["threads_for", "real_array", "float_array", "scratch", "training_workspace"]


def threads_for(size, floor=None):
    """The thread count for a kernel that touches ``size`` values (or, with floor =
    thresholds.PARALLEL_MIN_MACS, does ``size`` multiply-adds): one below the threshold."""
    floor = thresholds.PARALLEL_MIN if floor is None else floor
    return get_num_threads() if size >= floor else 1


def real_array(a, owner, name):
    """``a`` as an array of real numbers (float or integer): a complex, bool or object
    gradient would otherwise be cast quietly (the imaginary part dropped)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: expected a real (float or integer) {name}, got {a.dtype}")
    return a


def float_array(x, owner, name="input"):
    """Refuse anything but a float32 or float64 NumPy array (the kernels take only those)."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 {name}, got {got}")


def scratch(workspace, name, shape, dtype):
    """A buffer for a temporary: reused from ``workspace`` (a dict a layer owns) when it
    has the right shape and dtype, else allocated (and kept there).

    Large temporaries (convnet's im2col matrix is 42 MB) freshly allocated every step
    would cost a page fault per 4 KB on first touch.
    Outputs that leave the function are never scratch: only what dies inside it, or
    lives in the cache until the next forward replaces it.
    """
    if workspace is None:
        return np.empty(shape, dtype)
    buf = workspace.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = workspace[name] = np.empty(shape, dtype)
    return buf


def training_workspace(workspace, training, owner):
    """The workspace a forward may keep its temporaries in: ``workspace`` (None or a dict a
    layer owns) when training, None in inference, which keeps nothing there because two
    threads may run one model's forward at once."""
    if workspace is not None and not isinstance(workspace, dict):
        raise TypeError(f"{owner}: workspace must be None or a dict, got "
                        f"{type(workspace).__name__}")
    return workspace if training else None
