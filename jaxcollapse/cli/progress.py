"""Progress of the long commands (``run``, ``sweep``, ``reproduce``, ``plan``) on stderr.

On a terminal ``run`` redraws a progress bar (:class:`Bar`) and ``sweep`` one line.
Elsewhere (a batch job's log file, a pipe, ``nohup``) :class:`Lines` prints a plain line every ``--progress-every``
seconds (default 10, or the environment variable ``JAXCOLLAPSE_PROGRESS_EVERY``; 0 turns the lines off): what is
done, the rate in chain-generations per second and the time left, e.g. ::

    jaxcollapse run: [0:40] 1,200,000/4,000,000 chain-generations (30.0%), 51.2k chain-generations/s, ETA 0:55

The lines come from a timer thread, so they keep coming while one long compiled call runs. Imports no JAX.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ..engine.host import clock, rate_text

PROG = "jaxcollapse"

#: Seconds between two progress lines when stderr is not a terminal.
DEFAULT_EVERY = 10.0
#: Environment variable that sets the default of ``--progress-every``.
ENV = "JAXCOLLAPSE_PROGRESS_EVERY"


def add_progress_arguments(parser, quiet: bool = True) -> None:
    """``--progress-every S`` (and ``--quiet``) for a command that reports progress."""
    parser.add_argument("--progress-every", type=_seconds, default=None, metavar="S",
                        help=f"when stderr is not a terminal, print a progress line every S seconds; 0 = none "
                        f"(default: ${ENV} or {DEFAULT_EVERY:g})")
    if quiet:
        parser.add_argument("--quiet", "-q", action="store_true", default=None,
                            help="print no progress and no warnings, only the results")


def _seconds(text: str) -> float:
    import argparse

    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None


def every_seconds(value=None) -> float:
    """The progress interval in seconds: ``value`` (the flag), else ``$JAXCOLLAPSE_PROGRESS_EVERY``, else 10.
    Raises ValueError for a negative or unreadable value; 0 means no lines."""
    source = "--progress-every"
    if value is None:
        text = os.environ.get(ENV, "").strip()
        if not text:
            return DEFAULT_EVERY
        source = ENV
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{ENV} must be a number of seconds, got {text!r}") from None
    value = float(value)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{source} must be a number of seconds >= 0, got {value:g}")
    return value


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Rate:
    """Speed and time left of work reported piece by piece: call :meth:`add` each time a piece has *finished*.

    The first report closes the compilations (a run's first report comes after its programs are compiled and its
    first generation has run), so the speed is measured from it on, over finished pieces only; before a second
    report there is no speed. The time left subtracts the time spent since the last report on the piece under
    way; once that piece is later than the speed says, the time left is the remaining work at the slower speed
    that counts it, so the estimate never reaches 0 while work is left."""

    def __init__(self):
        self.first = None   # (time, done) of the first report
        self.last = None    # (time, done) of the last report

    def add(self, done: float, now: float) -> None:
        if self.first is None:
            self.first = (now, done)
        self.last = (now, done)

    def per_second(self) -> float | None:
        """Units per second over the finished pieces after the first report; None before two reports."""
        if self.first is None:
            return None
        (t1, d1), (t2, d2) = self.first, self.last
        return (d2 - d1) / (t2 - t1) if t2 > t1 and d2 > d1 else None

    def left(self, total: float, now: float) -> float | None:
        """Seconds until ``total`` is done; None without a speed yet."""
        rate = self.per_second()
        if rate is None:
            return None
        (t1, d1), (t2, d2) = self.first, self.last
        remaining = max(0.0, total - d2)
        left = remaining / rate - max(0.0, now - t2)
        if left > 0 or not remaining:
            return max(left, 0.0)
        # the piece under way is late: the speed that counts its time so far
        return remaining / ((d2 - d1) / (now - t1))


class Lines:
    """Plain progress lines on ``stream`` every ``every`` seconds (a daemon timer thread), for logs.

    Call it as ``lines(done, total)`` whenever there is news (``done``/``total`` in ``unit``, e.g.
    chain-generations; a sweep adds ``points_done`` and ``fraction``, the share of its work done when that is
    not ``done / total``); :meth:`update` sets ``what`` (what runs now). With ``points_total`` the lines count
    points too (``points_before`` of them finished before this run). :meth:`close` stops the thread and, if a
    line was printed, prints a last one. The rate is measured from the second report on (the first ones wait
    for compilations); the ETA comes from that rate, or from the elapsed time and ``fraction``."""

    def __init__(self, stream=None, label: str = PROG, every: float = DEFAULT_EVERY,
                 unit: str = "chain-generations", *, points_total: int | None = None, points_before: int = 0,
                 clock_fn=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.label, self.every, self.unit, self.now = label, float(every), unit, clock_fn
        self.points_total, self.points_before = points_total, points_before
        self.t0 = self.now()
        self.state = None       # (done, total, info)
        self.speed = Rate()
        self.printed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.every > 0:
            self._thread = threading.Thread(target=self._loop, name="jaxcollapse-progress", daemon=True)
            self._thread.start()

    def __call__(self, done, total, points_done=None, fraction=None) -> None:
        with self._lock:
            info = dict(self.state[2]) if self.state else {}
            if points_done is not None:
                info["points"] = points_done
            if fraction is not None:
                info["fraction"] = fraction
            self.state = (done, total, info)
            self.speed.add(done, self.now())

    def update(self, **info) -> None:
        """Change what the lines say without a new count (e.g. ``what="fig3"``)."""
        with self._lock:
            done, total, old = self.state or (None, None, {})
            self.state = (done, total, {**old, **info})

    def rate(self) -> float | None:
        """Units per second after the first report (which includes the compilation), None before two."""
        return self.speed.per_second()

    def line(self) -> str:
        """The progress line for the state now."""
        with self._lock:
            done, total, info = self.state or (None, None, {})
            rate = self.rate()
            now = self.now()
            left = self.speed.left(total, now) if total else None
        parts = []
        if info.get("what"):
            parts.append(str(info["what"]))
        if self.points_total is not None:
            p_done = self.points_before + info.get("points", 0)
            parts.append(f"{p_done:,}/{self.points_total:,} point{'' if self.points_total == 1 else 's'}")
        if done is None:
            parts.append("starting (compiling)" if self.unit == "chain-generations" else "starting")
        else:
            frac = info.get("fraction")
            frac = done / total if frac is None and total else frac
            pct = f" ({100 * frac:.1f}%)" if frac is not None else ""
            parts.append(f"{done:,}/{total:,} {self.unit}{pct}" if total else f"{done:,} {self.unit}")
            if rate:
                parts.append(f"{rate_text(rate)} {self.unit}/s" if rate >= 1 else
                             f"{clock(1 / rate)} per {self.unit.removesuffix('s')}")
                if total and frac is not None and frac < 1:
                    if info.get("fraction") is not None:
                        left = (now - self.t0) * (1 - frac) / max(frac, 1e-9)
                    parts.append(f"ETA {clock(left)}")
        return f"{self.label}: [{clock(now - self.t0)}] " + ", ".join(parts)

    def emit(self) -> None:
        text = self.line()
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            return
        self.printed += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.emit()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.printed:
            self.emit()


class Bar:
    """A one-line progress bar on a terminal, redrawn at each report: share done, speed and time left, both
    from :class:`Rate` (finished pieces after the first report, so the compilation is not counted)."""

    def __init__(self, stream, width: int = 28, clock_fn=time.perf_counter):
        self.stream, self.width, self.now = stream, width, clock_fn
        self.speed = Rate()
        self.last_len = 0
        self._write("  compiling …")

    def _write(self, text: str) -> None:
        pad = max(0, self.last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.last_len = len(text)

    def text(self, done: int, total: int) -> str:
        """The bar for ``done`` of ``total`` chain-generations, as last reported."""
        frac = done / total if total else 1.0
        fill = int(round(frac * self.width))
        rate = self.speed.per_second()
        tail = "warming up"
        if rate:
            tail = f"{rate_text(rate)} chain-gen/s  ETA {clock(self.speed.left(total, self.now()))}"
        return f"  [{'█' * fill + '·' * (self.width - fill)}] {100 * frac:5.1f}%  {tail}"

    def __call__(self, done: int, total: int) -> None:
        self.speed.add(done, self.now())
        self._write(self.text(done, total))

    def close(self) -> None:
        self._write("")
        self.stream.write("\r")
        self.stream.flush()


def reporter(stream, label: str, every: float, *, quiet: bool, tty_factory=None, **lines):
    """The progress reporter of a command: None when ``quiet``; on a terminal ``tty_factory()`` (None: nothing);
    elsewhere ``Lines(stream, label, every, **lines)`` (None when ``every`` is 0)."""
    if quiet:
        return None
    if is_terminal(stream):
        return tty_factory() if tty_factory is not None else None
    return Lines(stream, label, every, **lines) if every > 0 else None
