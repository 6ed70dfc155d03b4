"""Resampling and order-statistic intervals over chains: the percentile bootstrap of any NumPy reduction
and the exact distribution-free interval of a quantile (NumPy float64 and ``scipy.stats``; no JAX).

Data are ``(chains,)`` or ``(chains, G+1)`` with chains along ``axis``; results are :class:`Interval` s with
the chain axis removed. ``±inf`` are ordinary, very large or very small values here; NaN columns give NaN.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy import stats

from ..errors import check_float, check_int
from .columns import Interval, chains_first, check_level, quantile_sorted, scalar_or_array

__all__ = ["bootstrap_ci", "quantile_ci"]

#: Upper bound on the number of float64 elements one bootstrap batch holds (about 32 MiB).
_BOOTSTRAP_BATCH_ELEMENTS = 4_000_000


def bootstrap_ci(x, statistic: Callable = np.median, level: float = 0.95, resamples: int = 2000,
                 seed: int | None = 0, axis: int = 0) -> Interval:
    """Percentile-bootstrap interval of ``statistic``, vectorised over columns.

    ``x`` is ``(chains,)`` or ``(chains, G+1)`` with chains along ``axis``; the result has ``x``'s
    shape without that axis. ``statistic`` must be a NumPy-style reduction taking ``axis=``
    (``np.median``, ``np.mean``, ...): it is called as ``statistic(sample, axis=0)`` on arrays of
    shape ``(chains, batch, columns)`` and must return ``(batch, columns)``. Every column uses the
    same resampled chain indices (a row resample, which keeps the columns' joint structure). The
    indices come from ``np.random.default_rng(seed)`` and are drawn in batches holding at most
    about four million values, so memory stays bounded; the result depends only on ``seed``.

    ``estimate`` is ``statistic`` of the data, ``low``/``high`` the ``(1-level)/2`` and
    ``(1+level)/2`` quantiles (linear interpolation) of the ``resamples`` bootstrap values. A
    column with any NaN gives NaN for all three; ``±inf`` are ordinary values for the quantiles
    (two equal infinities interpolate to that infinity rather than NaN).
    """
    level = check_level(level)
    resamples = check_int("resamples", resamples, low=1)
    a = chains_first(x, axis)
    out_shape = a.shape[1:]
    n = a.shape[0]
    flat = a.reshape(n, -1)
    m = flat.shape[1]
    has_nan = np.isnan(flat).any(axis=0)
    rng = np.random.default_rng(seed)
    batch = max(1, min(resamples, _BOOTSTRAP_BATCH_ELEMENTS // max(1, n * m)))
    boot = np.empty((resamples, m), dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = np.asarray(statistic(flat[:, None, :], axis=0), dtype=np.float64).reshape(m)
        done = 0
        while done < resamples:
            b = min(batch, resamples - done)
            idx = rng.integers(0, n, size=(b, n))
            sample = flat[idx.T]  # (n, b, m)
            vals = np.asarray(statistic(sample, axis=0), dtype=np.float64)
            boot[done:done + b] = vals.reshape(b, m)
            done += b
        boot.sort(axis=0)
        low = quantile_sorted(boot, 0.5 * (1.0 - level))
        high = quantile_sorted(boot, 0.5 * (1.0 + level))
    bad = has_nan | np.isnan(boot).any(axis=0) | np.isnan(estimate)
    estimate, low, high = (np.where(bad, np.nan, v).reshape(out_shape) for v in (estimate, low, high))
    return Interval(scalar_or_array(estimate), scalar_or_array(low), scalar_or_array(high))


def _order_statistic_ranks(n: int, q: float, level: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the exact equal-tailed order-statistic interval for the q-quantile.

    With ``B ~ Binomial(n, q)``: ``l`` is the largest rank with ``P(B <= l-1) <= α/2`` and ``u`` the
    smallest with ``P(B >= u) <= α/2`` (``α = 1 - level``); ``l = 0`` means the lower bound is
    ``-inf`` and ``u = n + 1`` that the upper bound is ``+inf``.
    """
    alpha2 = 0.5 * (1.0 - level)
    k = np.arange(n + 1)
    cdf = stats.binom.cdf(k, n, q)  # P(B <= k)
    sf = stats.binom.sf(k, n, q)  # P(B > k) = P(B >= k+1)
    tol = 1e-12
    lower = int(np.count_nonzero(cdf <= alpha2 * (1 + tol)))  # cdf(k) <= α/2 for k = 0..lower-1
    upper = int(np.count_nonzero(sf > alpha2 * (1 + tol))) + 1  # sf(u-1) <= α/2 first at u-1 = d
    return lower, upper


def quantile_ci(x, q: float, level: float = 0.95, axis: int = 0) -> Interval:
    """Distribution-free (exact binomial, order-statistic) interval for the ``q``-quantile.

    ``x`` is ``(chains,)`` or ``(chains, G+1)`` with chains along ``axis``; the result has ``x``'s
    shape without it. With ``n`` chains and sorted values ``x_(1) <= ... <= x_(n)``, the interval
    is ``[x_(l), x_(u)]`` with ``l`` the largest rank such that ``P(B <= l-1) <= (1-level)/2`` and
    ``u`` the smallest such that ``P(B >= u) <= (1-level)/2``, ``B ~ Binomial(n, q)``. For a
    continuous distribution its coverage is ``P(l <= B <= u-1) >= level`` exactly (it is
    conservative for discrete data only in the sense that ties make it wider). When ``n`` is too
    small for a bound (``l = 0`` or ``u = n+1``) that bound is ``-inf`` / ``+inf``.
    ``estimate`` is the sample quantile (NumPy's linear method). NaN columns give NaN.
    """
    level = check_level(level)
    q = check_float("q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    a = chains_first(x, axis)
    n = a.shape[0]
    out_shape = a.shape[1:]
    flat = a.reshape(n, -1)
    has_nan = np.isnan(flat).any(axis=0)
    s = np.sort(flat, axis=0)
    l, u = _order_statistic_ranks(n, q, level)
    low = s[l - 1] if l >= 1 else np.full(flat.shape[1], -np.inf)
    high = s[u - 1] if u <= n else np.full(flat.shape[1], np.inf)
    estimate = quantile_sorted(s, q)
    estimate, low, high = (np.where(has_nan, np.nan, v).reshape(out_shape) for v in (estimate, low, high))
    return Interval(scalar_or_array(estimate), scalar_or_array(low), scalar_or_array(high))

