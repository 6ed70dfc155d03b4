"""The host machine: the memory it has available, and the text forms of sizes, rates and durations used in
reports. Imports neither JAX nor NumPy (the command line reads it before any study runs)."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Available host memory in bytes (MemAvailable, else physical pages), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def clock(s: float) -> str:
    """A duration in seconds as ``m:ss`` or ``h:mm:ss``."""
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def size_text(b: float) -> str:
    """A number of bytes in bytes, KiB, MiB, GiB or TiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.0f} {unit}" if unit == "bytes" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b} bytes"


def rate_text(r: float) -> str:
    """A rate (per second) with a k or M suffix."""
    if r >= 1e6:
        return f"{r / 1e6:.2f}M"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k"
    return f"{r:.0f}"
