"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os
import tempfile


def atomic_write(path, write_fn, mode="wb"):
    """Call ``write_fn(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    The temporary file is flushed and fsynced before ``os.replace``, so an
    interruption (an exception, Ctrl-C, a crash) leaves the previous file intact
    and no temporary file behind (except after a hard crash, as a hidden
    ``.name.*.tmp`` file).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
