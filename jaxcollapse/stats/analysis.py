"""Statistics for Monte Carlo results: intervals, survival of collapse times, tests against theory.

Everything here is plain NumPy (float64) and ``scipy.stats``; no JAX. The data are what the engine
hands back per chain:

* a metric *trace* per chain, shaped ``(chains, generations + 1)`` (chains along ``axis``; the other
  axis, here called the *columns*, is usually the generation), or
* one number per chain, shaped ``(chains,)`` (e.g. the generation of collapse).

Non-finite values follow one rule everywhere in this module (see :func:`mean_ci`):

* **NaN** in a column (a metric that is undefined there, such as ``l1_first`` at generation 0)
  makes every output for that column NaN, silently (no ``RuntimeWarning``) and without touching
  the other columns.
* **+inf** in a column (``kl`` once a chain has lost a token) makes the column's mean ``+inf``,
  and its sd and both interval bounds ``+inf`` as well: the interval is the single point ``+inf``.
  ``-inf`` gives mean and bounds ``-inf`` with sd ``+inf``. A column holding both ``+inf`` and
  ``-inf`` has no mean and is NaN. :class:`MeanCI` has a boolean ``infinite`` field that is True
  exactly where this rule was applied, so callers need not test the values themselves.
  Order statistics (medians, quantiles, bootstrap percentiles) treat ``±inf`` as ordinary, very
  large or very small values, so the median of a column with a few ``+inf`` stays finite.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, NamedTuple

import numpy as np
from scipy import stats

from ..errors import check_float, check_int

__all__ = [
    "MeanCI",
    "Interval",
    "KaplanMeier",
    "TheoryComparison",
    "ChainsNeeded",
    "mean_ci",
    "wilson_ci",
    "bootstrap_ci",
    "quantile_ci",
    "kaplan_meier",
    "survival_at",
    "compare_to_theory",
    "chains_needed",
    "chains_needed_proportion",
    "summarize",
]

#: Upper bound on the number of float64 elements one bootstrap batch holds (about 32 MiB).
_BOOTSTRAP_BATCH_ELEMENTS = 4_000_000


class MeanCI(NamedTuple):
    """Column-wise mean and Student-t confidence interval (see :func:`mean_ci`).

    ``mean``, ``sd``, ``ci_low``, ``ci_high`` and ``infinite`` have the shape of the input with the
    chain axis removed (NumPy scalars for 1-D input); ``n`` is the number of chains (an int).
    """

    mean: np.ndarray
    sd: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int
    infinite: np.ndarray


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval, all of one shape."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


class KaplanMeier(NamedTuple):
    """Kaplan–Meier estimate of the survival ``S(t) = P(T > t)`` of the collapse time ``T``.

    The per-time arrays are shaped ``(k,)``: ``time`` holds 0 followed by the distinct generations
    at which at least one chain collapsed, increasing; ``survival[j]`` is ``S`` on
    ``[time[j], time[j+1])``; ``ci_low``/``ci_high`` the pointwise Greenwood log-log interval;
    ``at_risk[j]`` the chains with ``times >= time[j]``; ``events[j]`` the collapses at ``time[j]``.
    ``restricted_mean`` is ``∫_0^horizon S(t) dt`` (= E[min(T, horizon)]) with its standard error
    ``restricted_mean_se``; ``median`` the first ``time`` with ``S <= 0.5`` (NaN if never reached).
    ``horizon`` is the upper limit used for the restricted mean and ``max_time`` the largest
    generation followed (collapse or censoring); ``S`` is unknown beyond ``max_time`` unless it has
    already reached 0.
    """

    time: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    restricted_mean: float
    restricted_mean_se: float
    median: float
    horizon: float
    max_time: int


class TheoryComparison(NamedTuple):
    """Per-generation agreement of Monte Carlo means with a theoretical curve (see :func:`compare_to_theory`).

    ``z``, ``mean`` and ``se`` are shaped ``(G+1,)``; the rest are scalars.
    """

    z: np.ndarray
    chi2: float
    dof: int
    p_value: float
    max_abs_z: float
    p_value_max: float
    mean: np.ndarray
    se: np.ndarray


class ChainsNeeded(NamedTuple):
    """Result of :func:`chains_needed`: ``chains`` (int, the max over columns with finite sd),
    ``per_column`` (float array, NaN where the pilot sd is NaN, inf where it is inf) and ``sd``."""

    chains: int
    per_column: np.ndarray
    sd: np.ndarray


# --------------------------------------------------------------------------------------------
# helpers


def _level(level) -> float:
    return check_float("level", level, low=0.0, high=1.0, low_open=True, high_open=True)


def _as_chains_first(x, axis: int) -> np.ndarray:
    """``x`` as float64 with the chain axis moved to the front; at least one chain."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError("expected an array with a chain axis, got a scalar")
    a = np.moveaxis(a, axis, 0)
    if a.shape[0] == 0:
        raise ValueError("need at least one chain, got an empty chain axis")
    return a


def _scalar_or_array(a: np.ndarray):
    """0-d arrays become NumPy scalars; others are returned as they are."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else a


def _quantile_sorted(s: np.ndarray, p) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# means


def mean_ci(x, axis: int = 0, level: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval along the chain axis, column by column.

    ``x`` is ``(chains,)`` or ``(chains, G+1)`` (more generally the chain axis is ``axis`` and the
    result has ``x``'s shape without it). For each column, with ``n`` chains,
    ``sd`` uses ``ddof=1`` and the interval is ``mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)``.

    Non-finite values: a column with any NaN gives NaN mean, sd and bounds (``infinite`` False);
    otherwise a column with ``+inf`` gives ``mean = sd = ci_low = ci_high = +inf`` and one with
    ``-inf`` gives ``mean = ci_low = ci_high = -inf``, ``sd = +inf``, both with ``infinite`` True
    (a column with both signs of infinity is NaN). With ``n == 1`` the mean is the value and sd
    and both bounds are NaN. No RuntimeWarnings are emitted.
    """
    level = _level(level)
    a = _as_chains_first(x, axis)
    n = a.shape[0]
    has_nan = np.isnan(a).any(axis=0)
    has_pinf = (a == np.inf).any(axis=0)
    has_ninf = (a == -np.inf).any(axis=0)
    clean = np.where(np.isfinite(a), a, 0.0)
    mean = clean.mean(axis=0)
    if n > 1:
        sd = clean.std(axis=0, ddof=1)
        half = stats.t.ppf(0.5 * (1.0 + level), n - 1) * sd / math.sqrt(n)
    else:
        sd = np.full_like(mean, np.nan)
        half = np.full_like(mean, np.nan)
    low = mean - half
    high = mean + half

    pinf = has_pinf & ~has_ninf & ~has_nan
    ninf = has_ninf & ~has_pinf & ~has_nan
    undefined = has_nan | (has_pinf & has_ninf)
    mean = np.where(pinf, np.inf, np.where(ninf, -np.inf, mean))
    sd = np.where(pinf | ninf, np.inf, sd)
    low = np.where(pinf, np.inf, np.where(ninf, -np.inf, low))
    high = np.where(pinf, np.inf, np.where(ninf, -np.inf, high))
    mean, sd, low, high = (np.where(undefined, np.nan, v) for v in (mean, sd, low, high))
    infinite = pinf | ninf
    return MeanCI(
        _scalar_or_array(mean),
        _scalar_or_array(sd),
        _scalar_or_array(low),
        _scalar_or_array(high),
        int(n),
        _scalar_or_array(infinite),
    )


def summarize(traces: Mapping[str, np.ndarray], level: float = 0.95) -> dict:
    """``{name: mean_ci(trace, axis=0, level=level)}`` for ``traces`` of ``name -> (chains, G+1)``.

    Each value is a :class:`MeanCI` whose fields are ``(G+1,)`` arrays (one entry per generation).
    """
    return {name: mean_ci(trace, axis=0, level=level) for name, trace in traces.items()}


# --------------------------------------------------------------------------------------------
# proportions


def wilson_ci(successes, trials, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion, vectorised.

    ``successes`` and ``trials`` broadcast against each other (any shape); returns
    ``Interval(estimate, low, high)`` of the broadcast shape (NumPy scalars for scalar input), with
    ``estimate = successes / trials`` and, for ``z = Φ^{-1}((1+level)/2)`` and ``p = estimate``,
    ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``. The low bound is exactly 0 when
    ``successes == 0`` and the high bound exactly 1 when ``successes == trials``. ``trials == 0``
    gives NaN. Raises ValueError for negative counts or ``successes > trials``.
    """
    level = _level(level)
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    s, n = np.broadcast_arrays(s, n)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(n))):
        raise ValueError("successes and trials must be finite")
    if np.any(s < 0) or np.any(n < 0) or np.any(s > n):
        raise ValueError("need 0 <= successes <= trials")
    z = stats.norm.ppf(0.5 * (1.0 + level))
    z2 = z * z
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / n
        denom = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(np.maximum(p * (1.0 - p) / n + z2 / (4.0 * n * n), 0.0)) / denom
        low = np.clip(center - half, 0.0, 1.0)
        high = np.clip(center + half, 0.0, 1.0)
    low = np.where(s == 0, 0.0, low)
    high = np.where(s == n, 1.0, high)
    empty = n == 0
    p, low, high = (np.where(empty, np.nan, v) for v in (p, low, high))
    return Interval(_scalar_or_array(p), _scalar_or_array(low), _scalar_or_array(high))


# --------------------------------------------------------------------------------------------
# bootstrap and quantiles


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
    level = _level(level)
    resamples = check_int("resamples", resamples, low=1)
    a = _as_chains_first(x, axis)
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
        low = _quantile_sorted(boot, 0.5 * (1.0 - level))
        high = _quantile_sorted(boot, 0.5 * (1.0 + level))
    bad = has_nan | np.isnan(boot).any(axis=0) | np.isnan(estimate)
    estimate, low, high = (np.where(bad, np.nan, v).reshape(out_shape) for v in (estimate, low, high))
    return Interval(_scalar_or_array(estimate), _scalar_or_array(low), _scalar_or_array(high))


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
    level = _level(level)
    q = check_float("q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    a = _as_chains_first(x, axis)
    n = a.shape[0]
    out_shape = a.shape[1:]
    flat = a.reshape(n, -1)
    has_nan = np.isnan(flat).any(axis=0)
    s = np.sort(flat, axis=0)
    l, u = _order_statistic_ranks(n, q, level)
    low = s[l - 1] if l >= 1 else np.full(flat.shape[1], -np.inf)
    high = s[u - 1] if u <= n else np.full(flat.shape[1], np.inf)
    estimate = _quantile_sorted(s, q)
    estimate, low, high = (np.where(has_nan, np.nan, v).reshape(out_shape) for v in (estimate, low, high))
    return Interval(_scalar_or_array(estimate), _scalar_or_array(low), _scalar_or_array(high))


# --------------------------------------------------------------------------------------------
# collapse times


def kaplan_meier(times, observed, horizon: float | None = None, level: float = 0.95) -> KaplanMeier:
    """Kaplan–Meier survival of the (discrete) collapse time, with right censoring.

    ``times`` is an integer array ``(chains,)``: the generation of collapse for chains with
    ``observed`` True and the censoring generation (the last generation simulated; the chain had
    not collapsed by then, i.e. ``T > times``) for the others. ``observed`` is a bool ``(chains,)``.
    At a generation where chains both collapse and are censored, the censored ones count as at
    risk (censoring happens after the collapses).

    ``S(t) = P(T > t)`` is the product over collapse generations ``t_i <= t`` of
    ``1 - d_i / n_i`` (``d_i`` collapses among the ``n_i`` chains with ``times >= t_i``). The
    pointwise interval uses Greenwood's variance ``v(t) = Σ d_i / (n_i (n_i - d_i))`` of
    ``log S`` on the log-log scale: ``[S^{exp(z sqrt(v)/log S)}, S^{exp(-z sqrt(v)/log S)}]``
    with ``z = Φ^{-1}((1+level)/2)`` (R's ``conf.type = "log-log"``); it is ``[1, 1]`` where
    ``S = 1`` and ``[0, 0]`` where ``S = 0``.

    ``restricted_mean`` is ``∫_0^horizon S(t) dt`` with ``S`` a right-continuous step function
    that changes only at integer generations, i.e. ``E[min(T, horizon)]`` (``Σ_{t<horizon} S(t)``
    for integer ``horizon``); ``horizon`` defaults to ``max(times)`` and may not exceed it unless
    ``S`` has already reached 0 (``S`` is unknown beyond the follow-up). Its standard error is
    ``sqrt(Σ_{t_i < horizon} A_i² d_i / (n_i (n_i - d_i)))`` with ``A_i = ∫_{t_i}^{horizon} S``
    (Klein & Moeschberger; terms with ``n_i = d_i`` have ``A_i = 0`` and are dropped).
    ``median`` is the first generation with ``S <= 0.5``, NaN if ``S`` stays above 0.5.
    """
    level = _level(level)
    t_raw = np.asarray(times)
    obs = np.asarray(observed)
    if t_raw.ndim != 1 or obs.shape != t_raw.shape:
        raise ValueError(f"times and observed must both be (chains,), got {t_raw.shape} and {obs.shape}")
    if t_raw.size == 0:
        raise ValueError("need at least one chain")
    if obs.dtype != np.bool_:
        if not np.all(np.isin(obs, (0, 1))):
            raise ValueError("observed must be boolean")
        obs = obs.astype(bool)
    tf = t_raw.astype(np.float64)
    if not np.all(np.isfinite(tf)) or np.any(tf < 0) or np.any(tf != np.round(tf)):
        raise ValueError("times must be non-negative integers (generations)")
    t = tf.astype(np.int64)
    n_chains = t.size
    max_time = int(t.max())

    event_times = np.unique(t[obs])
    grid = np.union1d(np.array([0], dtype=np.int64), event_times)
    sorted_t = np.sort(t)
    at_risk = n_chains - np.searchsorted(sorted_t, grid, side="left")
    sorted_ev = np.sort(t[obs])
    events = (np.searchsorted(sorted_ev, grid, side="right")
              - np.searchsorted(sorted_ev, grid, side="left"))
    factor = np.where(at_risk > 0, 1.0 - events / np.maximum(at_risk, 1), 1.0)
    survival = np.cumprod(factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw_terms = np.where(at_risk > events, events / (at_risk * (at_risk - events).astype(np.float64)), 0.0)
        v = np.cumsum(gw_terms)
        z = stats.norm.ppf(0.5 * (1.0 + level))
        log_s = np.log(survival)
        w = z * np.sqrt(v) / log_s  # negative where 0 < S < 1
        lo = survival ** np.exp(-w)
        hi = survival ** np.exp(w)
    lo = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, lo))
    hi = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, hi))

    if horizon is None:
        horizon = float(max_time)
    else:
        horizon = check_float("horizon", horizon, low=0.0)
        if horizon > max_time and survival[-1] > 0:
            raise ValueError(f"horizon {horizon} is beyond the largest follow-up time {max_time} "
                             "while the survival estimate is still positive")
    # Areas of S on [grid[j], grid[j+1]) clipped to [0, horizon].
    right = np.append(grid[1:].astype(np.float64), np.inf)
    widths = np.clip(np.minimum(right, horizon) - grid, 0.0, None)
    pieces = survival * widths
    restricted_mean = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1]  # tail[j] = ∫_{grid[j]}^{horizon} S
    # A_i = ∫_{t_i}^{horizon} S, with the KM value at t_i already after the drop at t_i.
    use = (events > 0) & (grid < horizon) & (at_risk > events)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_terms = np.where(use, tail ** 2 * events / (at_risk * (at_risk - events).astype(np.float64)), 0.0)
    restricted_mean_se = float(math.sqrt(var_terms.sum()))

    below = np.nonzero(survival <= 0.5)[0]
    median = float(grid[below[0]]) if below.size else float("nan")
    return KaplanMeier(
        time=grid,
        survival=survival,
        ci_low=lo,
        ci_high=hi,
        at_risk=at_risk.astype(np.int64),
        events=events.astype(np.int64),
        restricted_mean=restricted_mean,
        restricted_mean_se=restricted_mean_se,
        median=median,
        horizon=float(horizon),
        max_time=max_time,
    )


def survival_at(km: KaplanMeier, t):
    """The Kaplan–Meier step function ``S(t)`` at generations ``t`` (scalar or any-shaped array).

    ``S`` is right-continuous: ``S(t)`` is the value at the largest ``km.time <= t`` (1 for
    ``t < 0``). Beyond ``km.max_time`` it is NaN (unknown) unless the estimate has reached 0.
    Returns a float for scalar ``t``, else an array of ``t``'s shape.
    """
    tt = np.asarray(t, dtype=np.float64)
    idx = np.searchsorted(km.time, tt, side="right") - 1
    s = np.where(idx >= 0, km.survival[np.clip(idx, 0, None)], 1.0)
    if km.survival[-1] > 0:
        s = np.where(tt > km.max_time, np.nan, s)
    s = np.where(np.isnan(tt), np.nan, s)
    return float(s) if s.ndim == 0 else s


# --------------------------------------------------------------------------------------------
# theory


def compare_to_theory(samples, theory, axis: int = 0) -> TheoryComparison:
    """Test Monte Carlo means against a theoretical curve, generation by generation.

    ``samples`` is ``(chains, G+1)`` (chains along ``axis``), ``theory`` is ``(G+1,)``. With
    ``SE = sd / sqrt(chains)`` (``ddof=1``), ``z = (mean - theory) / SE``; where ``SE == 0``
    (a deterministic generation, e.g. generation 0), ``z = 0`` if ``mean == theory`` and ``±inf``
    otherwise. Where the mean, SE or theory is not finite (a NaN column, a column with ``+inf``,
    a single chain) ``z`` is NaN and the generation is left out of both tests.

    ``chi2 = Σ z²`` over the ``dof`` generations with finite, nonzero SE and ``p_value`` its
    chi-square survival probability; ``max_abs_z`` is the largest ``|z|`` over all non-NaN ``z``
    and ``p_value_max = min(1, max(dof, 1) · 2 · (1 - Φ(max_abs_z)))`` (Bonferroni).

    The per-generation means of one set of chains are strongly correlated across generations
    (each chain is one trajectory), so the ``z`` are not independent and the chi-square p-value is
    only approximate (it can reject too often). The Bonferroni max-|z| test makes no independence
    assumption: it is conservative and valid (up to the normal approximation of each mean), and
    is the one to use for accept/reject decisions.
    """
    a = _as_chains_first(samples, axis)
    if a.ndim != 2:
        raise ValueError(f"samples must be 2-D (chains, G+1), got shape {np.moveaxis(a, 0, axis).shape}")
    th = np.asarray(theory, dtype=np.float64)
    if th.shape != a.shape[1:]:
        raise ValueError(f"theory must have shape {a.shape[1:]}, got {th.shape}")
    res = mean_ci(a, axis=0)
    n = res.n
    mean = np.asarray(res.mean, dtype=np.float64)
    se = np.asarray(res.sd, dtype=np.float64) / math.sqrt(n)
    defined = np.isfinite(mean) & np.isfinite(se) & np.isfinite(th)
    diff = mean - th
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    z = np.where(defined, z, np.nan)
    tested = defined & (se > 0)
    dof = int(np.count_nonzero(tested))
    chi2 = float(np.sum(z[tested] ** 2))
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan")
    finite_z = z[~np.isnan(z)]
    if finite_z.size:
        max_abs_z = float(np.max(np.abs(finite_z)))
        p_value_max = float(min(1.0, max(dof, 1) * 2.0 * stats.norm.sf(max_abs_z)))
    else:
        max_abs_z = float("nan")
        p_value_max = float("nan")
    return TheoryComparison(z=z, chi2=chi2, dof=dof, p_value=p_value, max_abs_z=max_abs_z,
                            p_value_max=p_value_max, mean=mean, se=se)


# --------------------------------------------------------------------------------------------
# planning


def chains_needed(pilot, half_width, level: float = 0.95) -> ChainsNeeded:
    """How many chains give a confidence interval of half-width ``half_width``.

    ``pilot`` is ``(chains,)`` or ``(chains, G+1)`` (at least 2 chains); ``half_width`` a positive
    number or an array broadcasting against the columns. Per column,
    ``ceil((z · sd / half_width)²)`` with ``z = Φ^{-1}((1+level)/2)`` and the pilot ``sd``
    (``ddof=1``), but at least 2 (a t-interval needs two chains). ``per_column`` is a float array
    (NaN where the pilot sd is NaN, inf where it is inf); ``chains`` is the max over the columns
    with a finite need. The normal quantile makes the plan slightly optimistic when the answer
    is small (for ``n < 30`` the t quantile is noticeably larger) and the pilot sd is itself an
    estimate; add a margin when it matters. Raises ValueError if no column has a finite sd.
    """
    level = _level(level)
    a = _as_chains_first(pilot, 0)
    if a.shape[0] < 2:
        raise ValueError("the pilot needs at least 2 chains to estimate an sd")
    hw = np.asarray(half_width, dtype=np.float64)
    if not (np.all(np.isfinite(hw)) and np.all(hw > 0)):
        raise ValueError(f"half_width must be positive and finite, got {half_width!r}")
    sd = np.asarray(mean_ci(a, axis=0, level=level).sd, dtype=np.float64)
    z = stats.norm.ppf(0.5 * (1.0 + level))
    with np.errstate(invalid="ignore", over="ignore"):
        need = np.ceil((z * sd / hw) ** 2 * (1 - 1e-12))  # guard against ceil(4.0000000001)
    need = np.where(np.isfinite(need), np.maximum(need, 2.0), need)
    finite = np.isfinite(need)
    if not np.any(finite):
        raise ValueError("no column of the pilot has a finite sd")
    chains = int(np.max(need[finite]))
    return ChainsNeeded(chains=chains, per_column=_scalar_or_array(need), sd=_scalar_or_array(sd))


def chains_needed_proportion(p_pilot, half_width, level: float = 0.95):
    """Chains needed for a proportion's interval of half-width ``half_width``.

    ``ceil(z² · p (1 - p) / half_width²)`` with ``z = Φ^{-1}((1+level)/2)`` and ``p = p_pilot``,
    or the worst case ``p = 0.5`` when ``p_pilot`` is None; at least 1. ``p_pilot`` (in [0, 1])
    may be an array: the result is then an int array of its shape, else an int. A pilot of
    exactly 0 or 1 gives 1; pass None for a plan that holds whatever the proportion.
    """
    level = _level(level)
    hw = check_float("half_width", half_width, low=0.0, high=1.0, low_open=True)
    p = np.asarray(0.5 if p_pilot is None else p_pilot, dtype=np.float64)
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError(f"p_pilot must be in [0, 1], got {p_pilot!r}")
    z = stats.norm.ppf(0.5 * (1.0 + level))
    need = np.maximum(np.ceil(z * z * p * (1.0 - p) / (hw * hw) * (1 - 1e-12)), 1.0).astype(np.int64)
    return int(need) if need.ndim == 0 else need
