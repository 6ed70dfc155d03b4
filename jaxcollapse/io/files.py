"""Writing files so that nothing is half-written: the one atomic writer, the names of its temporary files, and
the lock a run holds on its output directory.

* :func:`atomic_file` writes to ``.NAME.tmp-PID`` next to the target, flushes, fsyncs and ``os.replace``\\ s it
  onto the target; whatever goes wrong (an exception, a full disk when the data are flushed or the file closed, an
  interrupt) the temporary file is removed, so the target is either the old file or the whole new one.
* :func:`output_lock` creates ``.jaxcollapse.lock`` (``O_CREAT | O_EXCL``, holding ``pid host``) in a run
  directory for as long as a run writes it: a second run given the same directory fails at once, naming the
  process that holds it. A lock left by a process that no longer exists on this host is stale and is taken over.

Imports neither JAX nor NumPy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket

from .. import interrupts
from ..errors import ConfigError

LOCK = ".jaxcollapse.lock"
_TMP = re.compile(r"^\..+\.tmp-\d+$")


def temp_name(path: str) -> str:
    """The temporary file :func:`atomic_file` writes before moving it onto ``path``."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_file`'s temporary files (of any process)."""
    return bool(_TMP.match(name))


def disk_error(e: OSError, path: str) -> ConfigError | OSError:
    """A ConfigError naming ``path`` for a full disk or quota (``ENOSPC``, ``EDQUOT``, ``EFBIG``), else ``e``."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ConfigError(f"{path}: {os.strerror(e.errno).lower()} (nothing was written to it)")
    return e


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb"):
    """Open a temporary file next to ``path``; on success flush, fsync and ``os.replace`` it onto ``path``.

    The temporary file never outlives the block: it is removed if the block, the flush, the fsync, the close or
    the replace fails (a full disk raises a ConfigError naming ``path``) or is interrupted."""
    path = os.fspath(path)
    tmp = temp_name(path)
    kwargs = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    with interrupts.temporary(tmp):
        try:
            f = open(tmp, mode, **kwargs)
        except OSError as e:
            raise disk_error(e, path) from None
        try:
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()       # also when the flush failed: closing releases the descriptor even if it raises
            interrupts.check()  # an interrupted command leaves no new file
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if isinstance(e, OSError):
                raise disk_error(e, path) from None
            raise


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_file(path, "w") as f:
        f.write(text)


def _holder(path: str) -> tuple[int, str] | None:
    try:
        with open(path, encoding="utf-8") as f:
            pid, host = f.read().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(directory) -> tuple[int, str] | None:
    """``(pid, host)`` of another live process holding ``directory``'s lock, or None (no lock, a stale one, or
    this process's)."""
    held = _holder(os.path.join(os.fspath(directory), LOCK))
    if held is None or held == (os.getpid(), socket.gethostname()):
        return None
    pid, host = held
    if host == socket.gethostname() and not _alive(pid):
        return None
    return held


def held_error(directory: str, held) -> ConfigError:
    pid, host = held
    return ConfigError(f"output directory {directory} is being written by another jaxcollapse run (pid {pid} on "
                       f"{host}); wait for it or choose another --out (if no such run exists, remove {LOCK} there)")


@contextlib.contextmanager
def output_lock(directory):
    """Hold ``directory``'s lock (creating the directory) for the block; ConfigError if a live process holds it."""
    d = os.fspath(directory)
    created = not os.path.isdir(d)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, LOCK)
    if _holder(path) == (os.getpid(), socket.gethostname()):
        yield path              # this process holds it already (a run saving its own results)
        return
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = lock_holder(d)
            if held is not None:
                raise held_error(d, held) from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)         # stale: its process is gone
            continue
        except OSError as e:
            raise disk_error(e, path) from None
        break
    else:
        raise ConfigError(f"cannot take the lock {path}")
    try:
        with interrupts.temporary(path):
            try:
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            except OSError as e:
                raise disk_error(e, path) from None
            finally:
                os.close(fd)
            yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(d)     # only if empty: a run that wrote nothing leaves no directory behind
