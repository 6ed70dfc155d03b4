"""The :class:`Result` of a study and the streaming per-generation summary behind it."""

from __future__ import annotations

import dataclasses
import io
from typing import NamedTuple

import numpy as np
from scipy import stats

from ..core.metrics import METRICS


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
            t = stats.t.ppf(0.5 + level / 2, np.maximum(self.n - 1, 1))
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
        lines.append(f"collapsed: {done}/{self.chains} chains ({100 * done / self.chains:.1f}%) "
                     f"within {self.generations} generations")
        if done:
            t = self.collapse_time[self.collapsed]
            lines.append(f"collapse time of collapsed chains: mean {t.mean():.1f}, median {np.median(t):.0f}, "
                         f"range {t.min()}–{t.max()} generations")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Result({self.settings.get('regime', '?')}, chains={self.chains}, "
                f"generations={self.generations}, wall_time={self.wall_time:.2f}s)")


METRIC_NAMES = tuple(METRICS)
