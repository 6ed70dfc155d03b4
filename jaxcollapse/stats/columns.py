"""Column-wise helpers shared by the statistics modules (:mod:`.analysis`, :mod:`.survival`,
:mod:`.quantiles`): the chain axis, the confidence level, the :class:`Interval` result and an
infinity-safe quantile. Arrays are float64; the chain axis comes first after :func:`chains_first`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import check_float


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval, all of one shape."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


def check_level(level) -> float:
    """``level`` as a float in the open interval (0, 1) (a confidence level)."""
    return check_float("level", level, low=0.0, high=1.0, low_open=True, high_open=True)


def chains_first(x, axis: int) -> np.ndarray:
    """``x`` as float64 with the chain axis moved to the front; at least one chain."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError("expected an array with a chain axis, got a scalar")
    a = np.moveaxis(a, axis, 0)
    if a.shape[0] == 0:
        raise ValueError("need at least one chain, got an empty chain axis")
    return a


def scalar_or_array(a: np.ndarray):
    """0-d arrays become NumPy scalars; others are returned as they are."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else a


def quantile_sorted(s: np.ndarray, p) -> np.ndarray:
    """Linear-interpolation quantile (NumPy's default method) of ``s`` sorted along axis 0.

    Unlike ``np.quantile`` it does not turn ``inf - inf`` into NaN: when both neighbouring order
    statistics are equal (including equal infinities) that value is returned, and a zero
    interpolation weight never multiplies an infinity. ``p`` is a scalar; NaN entries (sorted to
    the end) must be handled by the caller.
    """
    n = s.shape[0]
    h = (n - 1) * float(p)
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    frac = h - lo
    a = s[lo]
    b = s[hi]
    if frac == 0.0:
        return a.copy()
    with np.errstate(invalid="ignore"):
        v = a + frac * (b - a)
    return np.where(a == b, a, v)

