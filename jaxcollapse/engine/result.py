"""The :class:`Result` of a study and the streaming per-generation summary behind it.

A Result is also an object to work with in a notebook: :meth:`Result.plot`, :meth:`Result.plot_rank_frequency`,
:meth:`Result.to_pandas`, :meth:`Result.to_xarray` and a rich (HTML) display. Their code is in
:mod:`jaxcollapse.io.draw` and :mod:`jaxcollapse.io.frames` (shared with a loaded run and a sweep), imported when
a method is called; those modules import nothing from the engine, so the import graph has no cycle.
"""

from __future__ import annotations

import dataclasses
import io
from typing import NamedTuple

import numpy as np
from scipy import special

from ..core.metrics import METRICS
from .host import estimator_text, plural


class Summary(NamedTuple):
    """Per-generation statistics of one metric over chains, each ``(generations + 1,)``.

    ``ci_low``/``ci_high`` bound a Student-t confidence interval for the mean at ``level``. A generation where
    some chain's value is +inf (KL after a lost token) has mean, sd and both bounds +inf; ``infinite`` counts
    those chains. NaN marks a metric undefined at that generation (``l1_first`` at generation 0).
    """

    mean: np.ndarray
    sd: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: np.ndarray
    infinite: np.ndarray
    level: float = 0.95


class Moments:
    """Per-generation count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    def __init__(self, width: int):
        self.n = np.zeros(width)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.inf = np.zeros(width, np.int64)
        self.nan = np.zeros(width, bool)

    def update(self, x: np.ndarray) -> None:
        """Add a ``(chains, width)`` block."""
        inf = np.isinf(x)
        nan = np.isnan(x)
        self.inf += inf.sum(axis=0)
        self.nan |= nan.all(axis=0)
        ok = ~(inf | nan)
        nb = ok.sum(axis=0).astype(np.float64)
        xb = np.where(ok, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(nb > 0, xb.sum(axis=0) / np.maximum(nb, 1), 0.0)
            m2b = (np.where(ok, x - mb, 0.0) ** 2).sum(axis=0)
            total = self.n + nb
            delta = mb - self.mean
            frac = np.where(total > 0, nb / np.maximum(total, 1), 0.0)
            self.mean = self.mean + delta * frac
            self.m2 = self.m2 + m2b + delta ** 2 * self.n * frac
        self.n = total

    def summary(self, level: float = 0.95) -> Summary:
        n = self.n + self.inf
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.where(self.n > 1, np.sqrt(self.m2 / np.maximum(self.n - 1, 1)), np.nan)
            t = special.stdtrit(np.maximum(self.n - 1, 1), 0.5 + level / 2)   # Student's t quantile
            half = np.where(self.n > 1, t * sd / np.sqrt(np.maximum(self.n, 1)), np.nan)
        mean = self.mean.copy()
        inf = self.inf > 0
        mean[inf] = sd[inf] = np.inf
        lo, hi = mean - half, mean + half
        lo[inf] = hi[inf] = np.inf
        for a in (mean, sd, lo, hi):
            a[self.nan] = np.nan
        return Summary(mean, sd, lo, hi, n.astype(np.int64), self.inf.copy(), level)


@dataclasses.dataclass
class Result:
    """What :func:`jaxcollapse.simulate` returns.

    Attributes:
      traces: metric name -> ``(chains, generations + 1)`` float64 per-chain traces (generation 0 is the
        initial distribution), or ``None`` with ``keep_traces=False``.
      context_traces: with ``per_context=True``, name -> ``(chains, generations + 1, contexts)``.
      summary: metric name -> :class:`Summary` over chains, per generation.
      collapse_time: ``(chains,)`` int, first generation at which the chain's model is a Dirac mass in every
        context; -1 for a censored chain (no collapse within ``generations``).
      collapse_token: ``(chains, contexts)`` int, the token each context collapsed onto (-1 if it did not).
      context_collapse_time: ``(chains, contexts)`` int, per-context collapse times (-1 if none).
      final: ``(chains, contexts, vocab)`` float64 final models, or ``None`` when not kept.
      settings: the study's settings (regime, sizes, decoding, seed, ...), JSON-friendly.
      wall_time: seconds, compilation included.
      initial: the truth ``p^(0)`` (an :class:`~jaxcollapse.Initial`) when known (a loaded run sets it); the
        exact theory overlays and the rank–frequency figure need it (or an ``initial=`` argument).
    """

    traces: dict | None
    context_traces: dict | None
    summary: dict
    collapse_time: np.ndarray
    collapse_token: np.ndarray
    context_collapse_time: np.ndarray
    final: np.ndarray | None
    settings: dict
    wall_time: float
    chains: int
    generations: int
    initial: object | None = None

    @property
    def collapsed(self) -> np.ndarray:
        """``(chains,)`` bool: whether each chain collapsed within the run."""
        return self.collapse_time >= 0

    def collapsed_fraction(self) -> np.ndarray:
        """``(generations + 1,)`` fraction of chains collapsed by each generation."""
        t = self.collapse_time[self.collapsed]
        counts = np.bincount(t, minlength=self.generations + 1)[: self.generations + 1]
        return np.cumsum(counts) / self.chains

    def summary_rows(self) -> list[dict]:
        """Tidy rows: one per (generation, metric) with mean, sd, ci_low, ci_high, n."""
        rows = []
        for name, s in self.summary.items():
            for g in range(self.generations + 1):
                rows.append({"generation": g, "metric": name, "mean": s.mean[g], "sd": s.sd[g],
                             "ci_low": s.ci_low[g], "ci_high": s.ci_high[g], "n": int(s.n[g])})
        rows.sort(key=lambda r: (r["generation"], r["metric"]))
        return rows

    def summary_csv(self) -> str:
        """The tidy summary as CSV text (header ``generation,metric,mean,sd,ci_low,ci_high,n``)."""
        out = io.StringIO()
        out.write("generation,metric,mean,sd,ci_low,ci_high,n\n")
        for r in self.summary_rows():
            out.write(f"{r['generation']},{r['metric']},{float(r['mean'])!r},{float(r['sd'])!r},"
                      f"{float(r['ci_low'])!r},{float(r['ci_high'])!r},{r['n']}\n")
        return out.getvalue()

    def format(self, metrics=("collision", "max_prob", "l1_initial", "support", "entropy", "kl"),
               rows: int = 8) -> str:
        """A fixed-width table of the mean and 95% CI half-width of ``metrics`` at up to ``rows`` generations."""
        gens = np.unique(np.linspace(0, self.generations, min(rows, self.generations + 1)).round().astype(int))
        head = f"{'gen':>5} " + " ".join(f"{m:>20}" for m in metrics)
        lines = [head]
        for g in gens:
            cells = []
            for m in metrics:
                s = self.summary[m]
                if np.isinf(s.mean[g]):
                    cells.append(f"{'inf':>20}")
                else:
                    half = (s.ci_high[g] - s.ci_low[g]) / 2
                    cells.append(f"{s.mean[g]:>11.4g} ± {half:<6.2g}" if np.isfinite(half)
                                 else f"{s.mean[g]:>20.4g}")
            lines.append(f"{g:>5} " + " ".join(cells))
        done = int(self.collapsed.sum())
        lines.append(f"collapsed: {done}/{plural(self.chains, 'chain')} ({100 * done / self.chains:.1f}%) "
                     f"within {plural(self.generations, 'generation')}")
        if done:
            t = self.collapse_time[self.collapsed]
            lines.append(f"collapse time of collapsed chains: mean {t.mean():.1f}, median {np.median(t):.0f}, "
                         f"range {t.min()}–{plural(t.max(), 'generation')}")
        return "\n".join(lines)

    # --------------------------------------------------------------------------------------------
    # in a notebook

    def _truth(self, initial=None):
        if initial is None:
            return self.initial
        from ..core.initial import as_initial

        return as_initial(initial)

    def theory(self, initial=None):
        """The exact theory that applies to this run (:func:`jaxcollapse.io.report.theory_for`): a
        :class:`~jaxcollapse.stats.lookup.Theory`, empty (with a ``note``) when none applies or the truth is
        unknown. ``initial``: the truth, when the result does not carry it."""
        from ..io.report import theory_for

        return theory_for(self.settings, self._truth(initial), self.generations)

    def _estimator(self) -> str:
        """``"estimator embedding, floor 1e-06"`` for a trained run, ``""`` for the counting engine's."""
        training = self.settings.get("training") or {}
        return estimator_text(self.settings.get("estimator"), training.get("floor"))

    def _title(self) -> str:
        fit = self._estimator()
        return (f"{self.settings.get('regime', '?')}  ·  {fit + '  ·  ' if fit else ''}{self.chains:,} chains × "
                f"{self.generations:,} generations")

    def plot(self, metric: str = "collision", ax=None, *, initial=None, chains: int = 5):
        """The figure of one metric per generation (the panel of the run's ``traces`` figure): the mean over chains
        with its 95% band, the first ``chains`` chains faint and the exact theory where it applies (needs the
        truth: ``self.initial`` or ``initial``). Draws on ``ax`` if given; returns the matplotlib Figure."""
        from ..io.draw import metric_figure

        if metric not in self.summary:
            raise ValueError(f"unknown metric {metric!r}; this result has {', '.join(self.summary)}")
        curves = self.theory(initial).curves.get(metric, [])
        traces = None if self.traces is None else self.traces.get(metric)
        return metric_figure(metric, self.summary[metric], traces, curves, title=self._title(), ax=ax,
                             faint=chains)

    def plot_rank_frequency(self, generations=None, *, models=None, initial=None, ax=None):
        """Rank–frequency (tail loss): the truth's probabilities in decreasing order against token rank (log–log)
        and, for each of ``generations``, every chain's model ranked the same way and averaged over chains rank
        by rank (per context, weighted by context, for an n-gram table).

        The models come from the kept final models (the last generation) and ``models``: the ``(chains, G+1,
        contexts, vocab)`` array of :func:`jaxcollapse.engine.simulate.trajectories` (same arguments as
        ``simulate``: the same chains) or a dict ``{generation: (chains, contexts, vocab)}``. ``generations``
        defaults to up to five spread over those available. Returns the matplotlib Figure."""
        from ..io.draw import models_by_generation, rank_frequency_figure

        truth = self._truth(initial)
        found = models_by_generation(self.final, self.generations, models)
        return rank_frequency_figure(found, None if truth is None else truth.probs,
                                     None if truth is None else truth.weights, generations=generations,
                                     title=self._title(), ax=ax)

    def to_pandas(self, kind: str = "summary"):
        """A pandas DataFrame (``pip install 'jaxcollapse[io]'``).

        ``kind="summary"``: one row per (generation, metric), columns ``generation, metric, mean, sd, ci_low,
        ci_high, n``, as ``summary.csv``. ``"chains"``: one row per (metric, chain, generation), columns
        ``chain, generation, metric, value, collapse_time, censored`` (``collapse_time`` is NA for a censored
        chain). ``"collapse"``: one row per chain, ``chain, collapse_time, censored`` (and ``token`` for one
        context)."""
        from ..io.frames import result_frame

        return result_frame(self, kind)

    def to_xarray(self, *, initial=None):
        """An xarray Dataset with dims ``metric``, ``chain``, ``generation`` (and ``context``, ``token``):
        ``trace``, ``summary_mean``/``sd``/``ci_low``/``ci_high``/``n``/``infinite``, ``collapsed_fraction``,
        ``collapse_time`` (NaN = censored), ``censored``, the per-context collapse records, ``final`` and the
        truth (``self.initial`` or ``initial``) when known; the settings in ``attrs`` (see
        :func:`jaxcollapse.io.frames.result_dataset`)."""
        from ..io.frames import result_dataset

        return result_dataset(self, self._truth(initial))

    def _repr_html_(self) -> str:
        from ..io.draw import result_html

        return result_html(self, self.theory().curves.get("collision", []), title="jaxcollapse Result")

    def __repr__(self) -> str:
        done = int(self.collapsed.sum())
        fit = self._estimator()
        return (f"Result({self.settings.get('regime', '?')}, {fit + ', ' if fit else ''}chains={self.chains}, "
                f"generations={self.generations}, collapsed={done}/{self.chains}, wall_time={self.wall_time:.2f}s)")


METRIC_NAMES = tuple(METRICS)
