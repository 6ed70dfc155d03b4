"""What a run reports besides its files: per-context collapse statistics (the ``contexts.csv`` table and the
earliest-collapsing contexts) and the exact theory that goes with a run, with one-line comparisons.

The theory comes from the one lookup, :func:`jaxcollapse.stats.lookup.exact_theory`; :func:`theory_for` only
reads a run's settings (``Result.settings``) and passes them on. Per-context arrays are ``(contexts,)``;
times are in generations.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import NamedTuple

import numpy as np

from ..core.initial import Initial
from ..core.regime_table import TABLE
from ..engine.host import plural
from ..errors import ConfigError
from ..stats.lookup import Curve, Theory, exact_theory


__all__ = ["ContextStats", "context_stats", "earliest_contexts", "contexts_csv", "format_contexts", "Curve",
           "Theory", "theory_for", "theory_lines"]


class ContextStats(NamedTuple):
    """Per-context collapse statistics over chains, each ``(contexts,)``."""

    weight: np.ndarray
    support: np.ndarray
    collision: np.ndarray
    collapsed_fraction: np.ndarray
    median_time: np.ndarray          # float, NaN when fewer than half of the chains collapsed
    top_token: np.ndarray            # int, -1 if no chain collapsed
    top_token_share: np.ndarray      # share of the collapsed chains that chose top_token (NaN if none)
    top_token_initial: np.ndarray    # p0 of top_token (Proposition 1: the expected share)


def context_stats(context_collapse_time, collapse_token, initial: Initial, generations: int) -> ContextStats:
    """Collapse fraction, median collapse time (censored at ``generations``) and favourite token per context."""
    t = np.asarray(context_collapse_time)
    tok = np.asarray(collapse_token)
    chains, c = t.shape
    probs = np.asarray(initial.probs)
    done = t >= 0
    frac = done.mean(axis=0)
    big = np.where(done, t, np.iinfo(np.int64).max)
    k = math.ceil(chains / 2) - 1
    kth = np.partition(big, k, axis=0)[k]
    median = np.where(kth <= generations, kth, np.nan).astype(np.float64)
    v = probs.shape[1]
    top = np.full(c, -1, np.int64)
    share = np.full(c, np.nan)
    p_top = np.full(c, np.nan)
    ncol = done.sum(axis=0)
    for j in np.nonzero(ncol)[0]:
        counts = np.bincount(tok[done[:, j], j], minlength=v)
        top[j] = int(np.argmax(counts))
        share[j] = counts[top[j]] / ncol[j]
        p_top[j] = probs[j, top[j]]
    return ContextStats(np.asarray(initial.weights, np.float64), (probs > 0).sum(axis=1),
                        (probs * probs).sum(axis=1), frac, median, top, share, p_top)


def earliest_contexts(stats: ContextStats, k: int = 10) -> np.ndarray:
    """Indices of the ``k`` earliest-collapsing contexts among those with at least two possible next tokens:
    by median collapse time, then by fraction collapsed (higher first), then by weight (higher first)."""
    live = np.nonzero(stats.support >= 2)[0]
    med = np.where(np.isnan(stats.median_time[live]), np.inf, stats.median_time[live])
    order = np.lexsort((-stats.weight[live], -stats.collapsed_fraction[live], med))
    return live[order[:k]]


def contexts_csv(stats: ContextStats, initial: Initial) -> str:
    """``contexts.csv`` text: one row per context."""
    from .corpus import show_label

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["context", "label", "weight", "support", "collision", "collapsed_fraction",
                "median_collapse_time", "top_token", "top_token_label", "top_token_share", "top_token_p0"])
    clabels = initial.context_labels
    labels = initial.labels
    for j in range(stats.weight.size):
        top = int(stats.top_token[j])
        w.writerow([j, show_label(clabels[j]) if clabels else "", repr(float(stats.weight[j])),
                    int(stats.support[j]), repr(float(stats.collision[j])),
                    repr(float(stats.collapsed_fraction[j])), _num(stats.median_time[j]), top,
                    show_label(labels[top], "") if labels and top >= 0 else "",
                    _num(stats.top_token_share[j]), _num(stats.top_token_initial[j])])
    return out.getvalue()


def format_contexts(stats: ContextStats, initial: Initial, generations: int, chains: int, k: int = 10) -> str:
    """The table of the ``k`` earliest-collapsing contexts, with their labels."""
    from .corpus import show_label

    idx = earliest_contexts(stats, k)
    idx = idx[stats.collapsed_fraction[idx] > 0]
    c = stats.weight.size
    fixed = int((stats.support < 2).sum())
    ever = stats.collapsed_fraction.mean()
    lines = [f"contexts: {c}; {fixed} {'has' if fixed == 1 else 'have'} a single possible next token (collapsed "
             f"from the start, not ranked); {100 * ever:.1f}% of (chain, context) pairs collapsed within "
             f"{plural(generations, 'generation')}"]
    if idx.size == 0:
        return lines[0] + "\nno context with two or more possible next tokens collapsed in any chain"
    lines.append(f"earliest-collapsing contexts (median over {plural(chains, 'chain')}):")
    lines.append(f"  {'context':<18} {'weight':>8} {'support':>7} {'median T':>9} {'collapsed':>9}  collapses onto")
    for j in idx:
        label = f"'{show_label(initial.context_labels[j])}'" if initial.context_labels else f"#{j}"
        med = "> G" if np.isnan(stats.median_time[j]) else f"{stats.median_time[j]:.0f}"
        top = int(stats.top_token[j])
        onto = ""
        if top >= 0:
            tl = show_label(initial.labels[top]) if initial.labels else str(top)
            onto = f"'{tl}' ({100 * stats.top_token_share[j]:.0f}%; p0 {stats.top_token_initial[j]:.2f})"
        lines.append(f"  {_clip(label, 18):<18} {stats.weight[j]:>8.4f} {int(stats.support[j]):>7} "
                     f"{med:>9} {100 * stats.collapsed_fraction[j]:>8.1f}%  {onto}")
    return "\n".join(lines)


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def _num(x) -> str:
    x = float(x)
    return "nan" if math.isnan(x) else repr(x)



# ------------------------------------------------------------------------------------------------
# theory that matches a run


def _decoding_on(dec) -> bool:
    return bool(dec) and (dec.get("temperature", 1.0) != 1.0 or dec.get("top_k") is not None
                          or dec.get("top_p") is not None)


def _first(sizes: dict, key: str) -> int | None:
    """Context 0's size ``key`` from a run's ``settings["sizes"]`` (lists per context), or None."""
    value = sizes.get(key)
    return int(value[0]) if isinstance(value, (list, tuple)) and value else None


def _window(settings: dict) -> int | None:
    if settings.get("window") is not None:
        return int(settings["window"])
    found = re.search(r"window=(\d+)", str(settings.get("regime", "")))
    return int(found.group(1)) if found else None


def theory_for(settings: dict, initial: Initial | None, generations: int) -> Theory:
    """The exact theory that applies to a run (:func:`~jaxcollapse.stats.lookup.exact_theory` on its first
    context), from ``settings`` as :func:`jaxcollapse.simulate` records them; an empty :class:`Theory` with a
    ``note`` when none applies (several contexts, decoding, smoothing, no closed form, sizes not recorded).

    The engine records per-context sizes ``first``, ``real``, ``synthetic`` and ``train``; for fresh real
    ``real`` is the fresh share ``M - S`` and ``synthetic`` is ``S``, so ``M = first`` (or ``real + synthetic``)
    and ``λ = S / M``. The window of most-recent is read from the regime's description."""
    none = Theory({}, {}, "")
    if initial is None:
        return none._replace(note="no initial distribution saved")
    if np.asarray(initial.probs).shape[0] != 1:
        return none._replace(note="theory is for one context")
    sizes = settings.get("sizes") or {}
    kind = settings.get("kind")
    synthetic, real, train = _first(sizes, "synthetic"), _first(sizes, "real"), _first(sizes, "train")
    fraction = None
    if kind in TABLE and "fraction" in TABLE[kind].sizes and synthetic is not None and real is not None:
        total = _first(sizes, "first") or real + synthetic
        real, fraction = total, synthetic / total if total else None
    p = np.asarray(initial.probs[0], np.float64)
    try:
        return exact_theory(kind, p / p.sum(), int(generations), synthetic=synthetic, real=real,
                            fraction=fraction, train=train or None, window=_window(settings),
                            decoding=_decoding_on(settings.get("decoding")),
                            smoothing=bool(settings.get("smoothing", 0.0)))
    except ConfigError as e:
        return none._replace(note=f"no theory: {e}")


def theory_lines(result, theory_: Theory) -> list[str]:
    """One-line comparisons of the simulation with the theory at the last generation: the first (exact)
    curve of each simulated metric, P(collapsed by G) against the share of chains collapsed, and E[T]."""
    from ..stats.analysis import wilson_ci

    g = result.generations
    lines = []
    for metric, curves in theory_.curves.items():
        if metric not in result.summary:
            continue
        s = result.summary[metric]
        mean, sd, n = s.mean[g], s.sd[g], s.n[g]
        half = (s.ci_high[g] - s.ci_low[g]) / 2
        for c in curves[:1]:
            th = float(c.values[g])
            se = sd / math.sqrt(n) if n > 0 else float("nan")
            z = (mean - th) / se if se > 0 else float("nan")
            what = "E[collision]" if metric == "collision" else f"E[{metric}]"
            lines.append(f"theory, {c.label}: {what} at generation {g} = {th:.5g}; simulated {mean:.5g} ± "
                         f"{half:.2g} (95% CI, z = {z:+.2f})")
    collapsed = theory_.values("collapsed")
    if collapsed is not None:
        k = int(result.collapsed.sum())
        ci = wilson_ci(k, result.chains)
        lines.append(f"theory, {theory_.curves['collapsed'][0].label}: P(collapsed by generation {g}) = "
                     f"{collapsed[g]:.4g}; simulated {k / result.chains:.4g} [{float(ci.low):.4g}, "
                     f"{float(ci.high):.4g}] (Wilson 95%)")
    col = theory_.collapse
    if "littler" in col:
        exact = f"{col['expected']:.1f} exact, " if "expected" in col else ""
        lines.append(f"theory: E[T] = {exact}{col['littler']:.1f} (Littler's approximation); Theorem 1 bounds "
                     f"{col['bound_low']:.1f} ≤ E[T] ≤ {col['bound_high']:.4g} generations")
    return lines
