"""Statistics for Monte Carlo results: means and proportions with intervals, tests against theory, planning.

The bootstrap and quantile intervals live in :mod:`.quantiles` and the Kaplan–Meier survival of collapse
times in :mod:`.survival`; their names (``bootstrap_ci``, ``quantile_ci``, ``KaplanMeier``,
``kaplan_meier``, ``survival_at``) are re-exported here, as is :class:`Interval`.

Everything here is plain NumPy (float64) and ``scipy.stats``; no JAX. The data are what the engine
hands back per chain:

* a metric *trace* per chain, shaped ``(chains, generations + 1)`` (chains along ``axis``; the other
  axis, here called the *columns*, is usually the generation), or
* one number per chain, shaped ``(chains,)`` (e.g. the generation of collapse).

Non-finite values follow one rule everywhere in these modules (see :func:`mean_ci`):

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
from typing import Mapping, NamedTuple

import numpy as np
from scipy import stats

from ..errors import check_float
from .columns import Interval, chains_first, check_level, scalar_or_array
# Survival and resampling live in their own modules; their names stay reachable here.
from .quantiles import bootstrap_ci, quantile_ci
from .survival import KaplanMeier, kaplan_meier, survival_at

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
    level = check_level(level)
    a = chains_first(x, axis)
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
        scalar_or_array(mean),
        scalar_or_array(sd),
        scalar_or_array(low),
        scalar_or_array(high),
        int(n),
        scalar_or_array(infinite),
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
    level = check_level(level)
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
    return Interval(scalar_or_array(p), scalar_or_array(low), scalar_or_array(high))


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
    a = chains_first(samples, axis)
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
    level = check_level(level)
    a = chains_first(pilot, 0)
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
    return ChainsNeeded(chains=chains, per_column=scalar_or_array(need), sd=scalar_or_array(sd))


def chains_needed_proportion(p_pilot, half_width, level: float = 0.95):
    """Chains needed for a proportion's interval of half-width ``half_width``.

    ``ceil(z² · p (1 - p) / half_width²)`` with ``z = Φ^{-1}((1+level)/2)`` and ``p = p_pilot``,
    or the worst case ``p = 0.5`` when ``p_pilot`` is None; at least 1. ``p_pilot`` (in [0, 1])
    may be an array: the result is then an int array of its shape, else an int. A pilot of
    exactly 0 or 1 gives 1; pass None for a plan that holds whatever the proportion.
    """
    level = check_level(level)
    hw = check_float("half_width", half_width, low=0.0, high=1.0, low_open=True)
    p = np.asarray(0.5 if p_pilot is None else p_pilot, dtype=np.float64)
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError(f"p_pilot must be in [0, 1], got {p_pilot!r}")
    z = stats.norm.ppf(0.5 * (1.0 + level))
    need = np.maximum(np.ceil(z * z * p * (1.0 - p) / (hw * hw) * (1 - 1e-12)), 1.0).astype(np.int64)
    return int(need) if need.ndim == 0 else need
