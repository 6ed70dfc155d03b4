"""Timing primitives of the benchmark: wall-clock timing, medians, timing rows, subset planning.

Times are wall-clock seconds from :func:`time.perf_counter`. A timing row turns the seconds of the timed runs
(``timed_chains x timed_generations`` each) into milliseconds per generation for the row's full ``chains``
(extrapolated linearly when a subset was timed) and chain-generations per second. No JAX here.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time

import numpy as np


def log(msg: str, quiet: bool = False) -> None:
    """Progress on stderr (nothing when ``quiet``)."""
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def median(xs) -> float:
    """Median of a sequence of seconds (NaN if empty)."""
    return float(statistics.median(xs)) if xs else float("nan")


def timed(f, *args):
    """``(seconds, f(*args))``."""
    t = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t, out


def timing_row(impl: str, chains: int, gens: int, timed_chains: int, timed_gens: int, seconds: list[float],
               **extra) -> dict:
    """A timing row: seconds per timed run -> ``ms_per_gen`` at ``chains`` and ``chain_gens_per_s``.

    ``extra`` goes into the row; ``draw_factor`` (float) scales the time linearly (reference (b) timed on
    fewer draws than ``n``) and ``draws_extrapolated`` marks the row extrapolated."""
    med = median(seconds)
    per_chain_gen = med / (timed_chains * timed_gens)
    row = {
        "implementation": impl, "chains": chains, "generations": gens,
        "timed_chains": timed_chains, "timed_generations": timed_gens,
        "extrapolated": (timed_chains, timed_gens) != (chains, gens) or bool(extra.get("draws_extrapolated")),
        "seconds": seconds, "median_s": med,
        "ms_per_gen": per_chain_gen * chains * 1e3 * extra.get("draw_factor", 1.0),
        "chain_gens_per_s": 1.0 / (per_chain_gen * extra.get("draw_factor", 1.0)),
    }
    row.update(extra)
    return row


def plan_subset(unit_s: float, chains: int, gens: int, budget_s: float, *, prefer: str,
                min_chains: int = 1) -> tuple[int, int]:
    """The chains x generations to time so that one run takes about ``budget_s`` seconds, given the cost of
    one chain-generation ``unit_s`` (seconds). ``prefer="chains"`` keeps every generation and drops chains
    (down to ``min_chains``) first; ``prefer="gens"`` keeps every chain and drops generations (down to 2)
    first."""
    if unit_s * chains * gens <= budget_s:
        return chains, gens
    if prefer == "chains":
        c = min(chains, max(min_chains, int(budget_s // (unit_s * gens))))
        if unit_s * c * gens <= budget_s or c < min_chains:
            return max(1, c), gens
        g = max(2, min(gens, int(budget_s // (unit_s * c))))
        return c, g
    g = max(2, min(gens, int(budget_s // (unit_s * chains))))
    if unit_s * chains * g <= budget_s:
        return chains, g
    c = max(1, min(chains, int(budget_s // (unit_s * g))))
    return c, g


def pool(pooled: list, traces, g: int | None) -> None:
    """Append the collision probabilities ``(chains,)`` at generation ``g`` of a ``(chains, generations + 1)``
    trace to ``pooled`` (nothing when ``traces`` or ``g`` is None or the trace is shorter)."""
    if traces is not None and g is not None and np.shape(traces)[1] > g:
        pooled.append(np.asarray(traces)[:, g])


def collision_stats(pooled: list | None) -> dict | None:
    """Mean and standard error of the pooled collision probabilities (all timed runs), or None."""
    if not pooled:
        return None
    x = np.concatenate(pooled)
    return {"mean": float(x.mean()), "se": float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None,
            "chains": int(len(x))}
