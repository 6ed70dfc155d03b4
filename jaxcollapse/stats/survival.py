"""Survival of collapse times: the Kaplan–Meier estimate with right censoring, its Greenwood interval and
restricted mean, and its step function (NumPy float64 and ``scipy.stats``; no JAX).

Times are integer generations per chain, ``(chains,)``; a chain that had not collapsed by the last generation
simulated is censored there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

from ..errors import check_float
from .columns import check_level

__all__ = ["KaplanMeier", "kaplan_meier", "survival_at"]


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
    level = check_level(level)
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
