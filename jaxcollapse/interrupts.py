"""Interrupts (Ctrl-C, ``SIGINT``) that end a command cleanly at every stage.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs next. Inside JAX's work that is unsafe: it can land
in one of JAX's garbage-collector callbacks (printed as "Exception ignored" and lost) or in a frame under an XLA
compilation (the process may crash on the way out). So :func:`handling` installs a handler that raises at once
outside :func:`deferred` blocks and JAX's own frames (start-up, reading settings, writing files) and, inside them (compiling and
running), records the interrupt and raises it at the next safe point: :func:`check`, which the run's progress
callback (between compiled segments), the end of the block, the atomic writer (before a file is moved into place)
and the run directory (before the manifest) call. An interrupt lost in a callback is still pending, and raised at
the next of those points. A second interrupt while the first waits (a long compilation, say) removes the temporary
files and the lock registered with :func:`temporary` and ends the process at once with status 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

EXIT_STATUS = 130
_state = {"pending": False, "hard": False, "deferred": 0}
_paths: set[str] = set()


def pending() -> bool:
    """Whether an interrupt arrived and has not been raised yet."""
    return _state["pending"]


def check() -> None:
    """Raise KeyboardInterrupt if an interrupt is pending (call it where stopping is safe)."""
    if _state["pending"]:
        _state["pending"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def temporary(path: str):
    """Register ``path`` (a temporary file or lock) for removal if a second interrupt ends the process."""
    _paths.add(path)
    try:
        yield path
    finally:
        _paths.discard(path)


def _exit_now() -> None:
    for path in list(_paths):
        with contextlib.suppress(OSError):
            os.remove(path)
    with contextlib.suppress(Exception):
        sys.stderr.write("jaxcollapse: interrupted\n")
        sys.stderr.flush()
    os._exit(EXIT_STATUS)


def clear() -> None:
    """Forget a pending interrupt (the caller has handled it)."""
    _state["pending"] = False


@contextlib.contextmanager
def deferred():
    """A block (JAX work) during which an interrupt waits for :func:`check`; checked again when it ends."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    check()


def _handler(signum, frame) -> None:
    if _state["pending"] and _state["hard"]:
        _exit_now()
    _state["pending"] = True
    if not _state["deferred"] and not _in_jax(frame):
        raise KeyboardInterrupt


def _in_jax(frame) -> bool:
    """Whether the interrupted frame is JAX's own code (a garbage-collector callback, an import): not safe."""
    name = frame.f_code.co_filename if frame is not None else ""
    return any(f"{os.sep}{pkg}{os.sep}" in name for pkg in ("jax", "jaxlib"))


@contextlib.contextmanager
def handling(hard_exit: bool):
    """Install the handler for the block (main thread only; elsewhere a no-op). ``hard_exit``: a second
    interrupt ends the process (for the command's own process, not for a caller's). An interrupt the process
    was started ignoring (``nohup jaxcollapse run ... &``) stays ignored."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _state.update(pending=False, hard=hard_exit, deferred=0)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _state.update(pending=False, hard=False)
