"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os
import re
import secrets
import threading
import time

__all__ = ["atomic_write"]

#: a temporary file of ours: .NAME.minicnn-PID-RANDOM.tmp, beside NAME
_TEMP = re.compile(r"\.(?P<name>.+)\.minicnn-(?P<pid>\d+)-[0-9a-f]{16}\.tmp\Z")
#: the mkstemp names of earlier versions (.NAME.XXXXXXXX.tmp): removed once this old
_OLD_TEMP_AGE = 3600
_writing = set()                   # this process's temporaries being written
_writing_lock = threading.Lock()


def atomic_write(path, write_fn, mode="wb"):
    """Call ``write_fn(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    The temporary file is flushed and fsynced before ``os.replace`` (and the folder after
    it), so an interruption (an exception, Ctrl-C, a crash, kill -9) leaves the previous
    file intact. The new file gets the permissions the umask gives a new file, or the
    existing file's. A hard crash leaves the temporary behind, named
    ``.NAME.minicnn-PID-RANDOM.tmp``; the next write to ``path`` removes it once its
    process is gone.
    """
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    _remove_stale_temporaries(folder, base)
    tmp = os.path.join(folder, f".{base}.minicnn-{os.getpid()}-{secrets.token_hex(8)}.tmp")
    try:
        keep = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        keep = None
    with _writing_lock:
        _writing.add(tmp)
    try:
        # 0o666 and the kernel applies the umask, as for any new file (mkstemp made 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        with os.fdopen(fd, mode) as f:
            if keep is not None:
                os.chmod(tmp, keep)
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        with _writing_lock:
            _writing.discard(tmp)


def _fsync_folder(folder):
    """Make the rename itself durable (where the OS lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True            # someone else's process: leave its file alone
    return True


def _remove_stale_temporaries(folder, base):
    """Remove the temporaries an interrupted write of ``base`` left behind: ours whose process
    is gone (or is this one, not writing it), and earlier versions' after an hour."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    old = re.compile(r"\." + re.escape(base) + r"\.[a-z0-9_]{8}\.tmp\Z")
    for name in names:
        if not name.startswith("." + base + "."):
            continue
        full = os.path.join(folder, name)
        m = _TEMP.match(name)
        if m and m.group("name") == base:
            pid = int(m.group("pid"))
            with _writing_lock:
                busy = full in _writing
            stale = not busy and (pid == os.getpid() or not _pid_alive(pid))
        else:
            try:
                stale = bool(old.match(name)) and time.time() - os.stat(full).st_mtime > _OLD_TEMP_AGE
            except OSError:
                stale = False
        if stale:
            try:
                os.unlink(full)
            except OSError:
                pass
