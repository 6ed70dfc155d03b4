"""The one lookup from a data regime to the exact theory that applies to it (model.md §4).

:func:`exact_theory` is the single place that decides which closed forms of :mod:`jaxcollapse.theory` (and
which Wright–Fisher computations of :mod:`jaxcollapse.stats.wright_fisher`) describe a run; the run report
(:func:`jaxcollapse.io.report.theory_for`), the phase diagrams (:func:`jaxcollapse.sweeps.phase.theory_point`)
and the paper's figures call it (or :func:`regime_theory`, for a :class:`jaxcollapse.Regime`) rather than
choosing for themselves. The choice is the table ``THEORIES``
(regime kind -> function); a regime missing from it has no closed form.

The theory is for one context ``p`` (float64 ``(V,)``, summing to 1), sampling without decoding and fitting
without smoothing. What each regime uses (sizes are numbers of samples per generation; other sizes are
ignored):

========================  ===================================================================================
``fully_synthetic``       ``synthetic`` = ``n``: ``E σ_m`` (Theorem 1); support and ``P(collapsed by m)``
                          (Wright–Fisher, within budget); ``E[T]`` exact, Littler, Theorem 1 bounds.
``partially_synthetic``   ``real`` = ``N``, ``synthetic`` = ``n``: ``E σ_m`` (Theorem 2 corrected, and as
                          printed).
``fresh_real``            ``real`` = ``M`` (the training-set size), ``fraction`` = ``λ``: ``E σ_m = S_0 + d_m``;
                          when ``rint(λM) = M`` the chain is fully synthetic with ``n = M`` (all of the above).
``accumulate``            ``real`` = ``N``, ``synthetic`` = ``n``: ``E σ_m = 1 - H_m`` (Gerstgrasser).
``accumulate_subsample``  ``real``, ``synthetic``, ``train`` (default ``real``): exact ``E σ_m``.
``most_recent``           ``synthetic`` = ``n``, ``window`` = ``K``: ``K = 1`` is fully synthetic; none for
                          ``K > 1``.
========================  ===================================================================================
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..errors import ConfigError, check_float
from . import theory
from .checks import MAX_WRIGHT_FISHER_N, check_generations, check_p, check_size

__all__ = ["Curve", "Theory", "exact_theory", "regime_theory", "THEORIES", "WF_BUDGET", "EXPECTED_TIME_MAX_N"]

#: Largest (distinct probabilities of p) x (n+1)² x generations for the Wright–Fisher support and
#: P(collapsed by m) curves (about a second of matrix products per 1e9).
WF_BUDGET = 3e9
#: Largest n for the exact expected collapse time (one dense (n-1)x(n-1) solve).
EXPECTED_TIME_MAX_N = 1000


class Curve(NamedTuple):
    """One exact curve: ``label`` (e.g. ``"exact (Theorem 1)"``), ``values`` float64 ``(G+1,)`` indexed by
    generation ``m = 0..G``, and a matplotlib line ``style``."""

    label: str
    values: np.ndarray
    style: str = "-"


class Theory(NamedTuple):
    """The exact theory that applies to a run.

    Attributes:
      curves: metric -> list of :class:`Curve`, the first one the exact value. Metrics: ``"collision"``
        (``E σ_m``), ``"support"`` (expected tokens alive) and ``"collapsed"`` (``P(collapsed by m)``).
      collapse: fully synthetic collapse-time results, in generations: ``"expected"`` (exact ``E[T]``),
        ``"littler"`` (Littler's approximation), ``"bound_low"``/``"bound_high"`` (Theorem 1 bounds on
        ``E[T]``), floats; ``"prob_low"``/``"prob_high"`` (Theorem 1 bounds on ``P(collapsed by m)``),
        float64 ``(G+1,)``. Empty when the chain is not fully synthetic.
      note: why nothing (or less than usual) applies; empty when everything applies.
    """

    curves: dict
    collapse: dict
    note: str

    def values(self, metric: str) -> np.ndarray | None:
        """The first (exact) curve of ``metric``, float64 ``(G+1,)``, or None if there is none."""
        curves = self.curves.get(metric)
        return curves[0].values if curves else None


class _Inputs(NamedTuple):
    kind: str
    p: np.ndarray
    g: int
    synthetic: int | None
    real: int | None
    fraction: float | None
    train: int | None
    window: int | None
    expected_time: bool
    wf_budget: float


def _need(x: _Inputs, name: str) -> int:
    value = getattr(x, name)
    if value is None:
        raise ConfigError(f"the theory of regime {x.kind} needs {name}")
    return check_size(name, value)


def _fully(x: _Inputs, n: int, label: str = "exact (Theorem 1)") -> Theory:
    """The fully synthetic chain with ``n`` samples per generation (also fresh real with λ = 1 and
    most-recent with K = 1)."""
    p, g = x.p, x.g
    curves = {"collision": [Curve(label, theory.fully_synthetic_collision(p, n, g))]}
    collapse, notes = {}, []
    if 1.0 - float(p @ p) > 0:
        lo, hi = theory.theorem1_collapse_time_bounds(p, n)
        pl, ph = theory.theorem1_collapse_probability_bounds(p, n, g)
        collapse.update(littler=theory.littler_collapse_time(p, n), bound_low=lo, bound_high=hi,
                        prob_low=pl, prob_high=ph)
        if x.expected_time and n <= EXPECTED_TIME_MAX_N:
            collapse["expected"] = theory.expected_collapse_time(p, n)
        elif x.expected_time:
            notes.append(f"exact E[T] only for n <= {EXPECTED_TIME_MAX_N}")
        k = int(np.unique(p[p > 0]).size)
        if n <= MAX_WRIGHT_FISHER_N and k * (n + 1) ** 2 * g <= x.wf_budget:
            alive, collapsed = theory.alive_and_collapsed(p, n, g)
            curves["support"] = [Curve("exact (Wright–Fisher)", alive)]
            curves["collapsed"] = [Curve("exact (Wright–Fisher)", collapsed)]
        else:
            notes.append("Wright–Fisher support and P(collapsed) beyond budget "
                         f"(n <= {MAX_WRIGHT_FISHER_N} and k (n+1)² G <= {x.wf_budget:g})")
    return Theory(curves, collapse, "; ".join(notes))


def _fully_synthetic(x: _Inputs) -> Theory:
    return _fully(x, _need(x, "synthetic"))


def _partially_synthetic(x: _Inputs) -> Theory:
    big_n, n = _need(x, "real"), _need(x, "synthetic")
    return Theory({"collision": [
        Curve("exact (Theorem 2, corrected)", theory.theorem2_collision(x.p, big_n, n, x.g)),
        Curve("Theorem 2 as printed", theory.theorem2_collision(x.p, big_n, n, x.g, corrected=False), "--")]},
        {}, "")


def _fresh_real(x: _Inputs) -> Theory:
    m = _need(x, "real")
    if x.fraction is None:
        raise ConfigError("the theory of regime fresh_real needs fraction")
    lam = check_float("fraction", x.fraction, low=0.0, high=1.0)
    if int(np.rint(lam * m)) == m:                          # no real sample left: fully synthetic, n = M
        return _fully(x, m)
    s0 = float(x.p @ x.p)
    return Theory({"collision": [Curve("exact (fresh real, S_0 + d_m)",
                                       s0 + theory.fresh_real_sq_deviation(x.p, m, lam, x.g))]}, {}, "")


def _accumulate(x: _Inputs) -> Theory:
    big_n, n = _need(x, "real"), _need(x, "synthetic")
    return Theory({"collision": [Curve("exact (accumulate)",
                                       1.0 - theory.accumulate_diversity(x.p, big_n, n, x.g))]}, {}, "")


def _accumulate_subsample(x: _Inputs) -> Theory:
    big_n, n = _need(x, "real"), _need(x, "synthetic")
    train = big_n if x.train is None else _need(x, "train")
    return Theory({"collision": [Curve("exact (accumulate-subsample)",
                                       theory.accumulate_subsample_collision(x.p, big_n, n, train, x.g))]}, {}, "")


def _most_recent(x: _Inputs) -> Theory:
    window = _need(x, "window")
    if window != 1:
        return Theory({}, {}, f"no closed form for most_recent with window {window} > 1")
    return _fully(x, _need(x, "synthetic"))


#: Regime kind -> the function giving its exact theory from the checked inputs.
THEORIES: dict[str, Callable[[_Inputs], Theory]] = {
    "fully_synthetic": _fully_synthetic,
    "partially_synthetic": _partially_synthetic,
    "fresh_real": _fresh_real,
    "accumulate": _accumulate,
    "accumulate_subsample": _accumulate_subsample,
    "most_recent": _most_recent,
}


def exact_theory(kind: str, p, generations: int, *, synthetic: int | None = None, real: int | None = None,
                 fraction: float | None = None, train: int | None = None, window: int | None = None,
                 decoding: bool = False, smoothing: bool = False, expected_time: bool = True,
                 wf_budget: float = WF_BUDGET) -> Theory:
    """Every exact result that applies to regime ``kind`` started at ``p``, over generations ``0..G``.

    Args:
      kind: a regime kind (:data:`jaxcollapse.core.regimes.REGIMES`).
      p: the truth of one context, a probability vector ``(V,)`` (float64 after checking).
      generations: ``G``; every curve has ``G + 1`` values.
      synthetic, real, fraction, train, window: the regime's sizes as in :class:`jaxcollapse.Regime` (ints,
        samples per generation; ``real`` is ``M`` for fresh real; ``fraction`` its synthetic share ``λ``).
      decoding, smoothing: whether generation-time decoding or add-α smoothing is on (then no theory).
      expected_time: compute the exact ``E[T]`` (one dense solve of size ``n - 1``, ``n <= 1000``).
      wf_budget: the largest ``k (n+1)² G`` for the Wright–Fisher curves (``k`` distinct probabilities).

    Returns a :class:`Theory`; its ``curves`` and ``collapse`` are empty, with a ``note`` saying why, when no
    exact result applies. Raises ConfigError (a ValueError) for an unknown kind, a bad ``p``, or a size the
    regime needs that is missing or invalid.
    """
    from ..core.regimes import REGIMES

    if kind not in REGIMES:
        raise ConfigError(f"regime must be one of {', '.join(REGIMES)}; got {kind!r}")
    p = check_p(p)
    g = check_generations(generations)
    if decoding:
        return Theory({}, {}, "no exact theory with decoding")
    if smoothing:
        return Theory({}, {}, "no exact theory with smoothing")
    rule = THEORIES.get(kind)
    if rule is None:
        return Theory({}, {}, f"no closed form for the reported metrics of {kind}")
    return rule(_Inputs(kind, p, g, synthetic, real, fraction, train, window, bool(expected_time),
                        float(wf_budget)))


def _one(name: str, value):
    """A size of one context: an int, or a sequence holding exactly one."""
    if value is None or np.ndim(value) == 0:
        return value
    flat = np.asarray(value).ravel()
    if flat.size != 1:
        raise ConfigError(f"the exact theory is for one context; {name} has {flat.size} sizes")
    return int(flat[0])


def regime_theory(regime, p, generations: int, *, decoding=None, smoothing: float = 0.0, **options) -> Theory:
    """:func:`exact_theory` for a :class:`jaxcollapse.Regime` (sizes of one context), an optional
    :class:`jaxcollapse.Decoding` and a smoothing ``α``; ``options`` are ``expected_time`` and ``wf_budget``."""
    return exact_theory(regime.kind, p, generations, synthetic=_one("synthetic", regime.synthetic),
                        real=_one("real", regime.real), fraction=regime.fraction, train=_one("train", regime.train),
                        window=regime.window, decoding=decoding is not None and decoding.active,
                        smoothing=bool(smoothing), **options)
