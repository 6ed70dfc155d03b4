"""The host machine: the memory it has available, and the text forms of sizes, rates and durations used in
reports. Imports neither JAX nor NumPy (the command line reads it before any study runs)."""

from __future__ import annotations

import os

from ..errors import ConfigError

#: Share of the available host memory a run may plan to use.
USABLE = 0.8
#: Float64 copies of a ``contexts x vocab`` table alive while a truth is built and validated.
TABLE_COPIES = 4


#: Files holding this process's memory limit: cgroup v2 (``memory.max``, "max" = none) and v1
#: (``memory.limit_in_bytes``, a huge number = none), at the root of the cgroup file system as a container sees
#: it. The process's own cgroup, from ``/proc/self/cgroup``, is tried before them.
CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
PROC_CGROUP = "/proc/self/cgroup"
MEMINFO = "/proc/meminfo"
#: Limits at or above this many bytes (cgroup v1 writes 2^63 rounded down to a page) mean "no limit".
NO_LIMIT = 1 << 60


def _own_cgroup_files() -> list[str]:
    """The limit files of the cgroup this process belongs to (``/proc/self/cgroup``), v2 then v1."""
    found = []
    try:
        with open(PROC_CGROUP) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[2] in ("", "/"):
            continue
        path = parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":
            found.append(os.path.join("/sys/fs/cgroup", path, "memory.max"))
        elif "memory" in parts[1].split(","):
            found.append(os.path.join("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes"))
    return found


def cgroup_memory_limit(files=None) -> int | None:
    """The memory limit of this process's cgroup in bytes (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``; the smallest of the files found), or None if there is none or no file can be read.

    ``files``: the files to read (default: the process's own cgroup, then :data:`CGROUP_LIMIT_FILES`)."""
    if files is None:
        files = [*_own_cgroup_files(), *CGROUP_LIMIT_FILES]
    limits = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text == "max":
            continue
        try:
            value = int(text)
        except ValueError:
            continue
        if 0 < value < NO_LIMIT:
            limits.append(value)
    return min(limits) if limits else None


def _meminfo_available() -> int | None:
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Host memory available to this process in bytes, or None if unknown: the smaller of the machine's
    ``MemAvailable`` (else its physical memory) and the memory limit of the process's cgroup (a container's or
    a batch job's limit, e.g. SLURM's ``--mem``), which the kernel enforces by killing the process."""
    known = [b for b in (_meminfo_available(), cgroup_memory_limit()) if b is not None]
    return min(known) if known else None


def check_memory(need: int, what: str, fix: str, available: int | None = None) -> None:
    """ConfigError ``<what> needs about <need> of host memory but only <available> is available; <fix>`` when
    ``need`` bytes exceed :data:`USABLE` of the available memory (:func:`available_memory` unless given).
    Call it with an estimate from the settings, before the arrays are allocated."""
    avail = available_memory() if available is None else available
    if avail is not None and need > USABLE * avail:
        raise ConfigError(f"{what} needs about {size_text(need)} of host memory but only {size_text(avail)} is "
                          f"available; {fix}")


def table_bytes(contexts: int, vocab: int) -> int:
    """Host bytes to build and check a ``(contexts, vocab)`` float64 table (:data:`TABLE_COPIES` copies)."""
    return TABLE_COPIES * 8 * int(contexts) * int(vocab)


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


def plural(n: int, word: str) -> str:
    """``n word`` with an ``s`` unless ``n`` is 1: ``plural(1, "generation") == "1 generation"``."""
    n = int(n)
    return f"{n} {word}{'' if n == 1 else 's'}"


def estimator_text(estimator: str | None, floor: float | None = None) -> str:
    """How a trained run fits its models, for headers and titles: ``"estimator embedding, floor 1e-06"``
    (``floor``: the probability at or below which a trained model's token counts as lost; the counting estimator
    has none). ``""`` for ``None`` (a run of the counting engine)."""
    if estimator is None:
        return ""
    return f"estimator {estimator}" + (f", floor {floor:g}" if floor is not None and estimator != "count" else "")


def rate_text(r: float) -> str:
    """A rate (per second) with a k or M suffix."""
    if r >= 1e6:
        return f"{r / 1e6:.2f}M"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k"
    return f"{r:.0f}"
