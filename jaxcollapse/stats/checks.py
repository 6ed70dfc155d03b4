"""Input checks shared by the exact-theory modules (:mod:`.theory`, :mod:`.wright_fisher`, :mod:`.lookup`).

Each check returns the value in its canonical type (a float64 1-D ``(s,)`` probability vector, a float, an
int) or raises :class:`~jaxcollapse.errors.ConfigError` (a ValueError) naming the argument.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, check_float, check_int

#: Largest population ``n`` for which the exact (n+1)x(n+1) Wright–Fisher matrix is built.
MAX_WRIGHT_FISHER_N = 5000

_SUM_TOL = 1e-9


def check_p(p, name: str = "p") -> np.ndarray:
    """Return ``p`` as a float64 1-D probability vector, or raise ConfigError (a ValueError) naming it."""
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a 1-D array of probabilities, got {p!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D probability vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must contain only finite values")
    if np.any(arr < 0):
        raise ConfigError(f"{name} must be non-negative, got min {arr.min()!r}")
    total = float(arr.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise ConfigError(f"{name} must sum to 1 within {_SUM_TOL:g}, got sum {total!r}")
    return arr


def check_prob(name: str, value) -> float:
    """``value`` as a float in [0, 1]."""
    return check_float(name, value, low=0.0, high=1.0)


def check_size(name: str, value) -> int:
    """``value`` as an int >= 1 (a sample size)."""
    return check_int(name, value, low=1)


def check_generations(value, name: str = "generations") -> int:
    """``value`` as an int >= 0 (a number of generations ``G``)."""
    return check_int(name, value, low=0)


def check_wf_n(n) -> int:
    """``n`` as an int in [1, MAX_WRIGHT_FISHER_N] (a population for the exact Wright–Fisher matrix)."""
    n = check_size("n", n)
    if n > MAX_WRIGHT_FISHER_N:
        raise ConfigError(f"n must be <= {MAX_WRIGHT_FISHER_N} for the exact (n+1)x(n+1) Wright-Fisher "
                          f"matrix (too large otherwise), got {n}")
    return n


def support(p: np.ndarray) -> int:
    """Number of tokens with positive probability in ``p`` (``(s,)``)."""
    return int(np.count_nonzero(p > 0))


def is_dirac(p: np.ndarray) -> bool:
    """Whether ``p`` (``(s,)``) puts all its mass on one token."""
    return support(p) == 1


def powers(base: float, generations: int) -> np.ndarray:
    """``base**m`` for ``m = 0..generations`` (with ``0**0 = 1``)."""
    return np.power(float(base), np.arange(generations + 1, dtype=np.float64))
