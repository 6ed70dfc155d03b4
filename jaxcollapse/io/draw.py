"""Panels drawn from arrays: the one drawing code behind the figures of a saved run (:mod:`.plots`), the methods of
an in-memory :class:`~jaxcollapse.Result`, a loaded :class:`~jaxcollapse.Run` and a
:class:`~jaxcollapse.SweepResult`, and their rich (HTML) display in a notebook.

* :func:`metric_panel`: one metric per generation, the mean over chains with its 95% band, a few chains faint,
  exact theory curves, and for a metric whose mean turns +inf (KL once a token is lost) the mean over the chains
  where it is finite with the share of chains at +inf.
* :func:`rank_frequency_panel`: rank–frequency curves (log–log) of the truth and of the models of a few
  generations: each model's probabilities sorted in decreasing order, averaged over chains rank by rank (for an
  n-gram table, per context and weighted by the context weights). The mean *model* would not do: under fully
  synthetic training ``E[p^(m)] = p^(0)``, so only the ranked curves show the tail being lost.
* :func:`sweep_figure`: a sweep's metric against generations, one curve per point coloured by a setting, and its
  value at one generation against that setting, one line per value of the other settings that vary.

Figures are :class:`Figure` (a :class:`matplotlib.figure.Figure` that shows itself as a PNG in a notebook, with or
without ``matplotlib.pyplot``); nothing here selects a matplotlib backend. This module imports nothing from the
engine, so the engine's ``Result`` may call it.
"""

from __future__ import annotations

import textwrap

import base64
import html
import io
import math

import numpy as np

from matplotlib.figure import Figure as _MplFigure

#: Faint individual chains drawn on each trace panel.
FAINT_CHAINS = 5
#: Most chains ranked per generation in a rank–frequency panel (the first ones; the mean over them is plotted).
RANK_CHAINS = 4000

UNITS = {
    "collision": "Σ p²", "max_prob": "max p", "l1_initial": "‖p − p⁽⁰⁾‖₁", "l1_first": "‖p − p⁽¹⁾‖₁",
    "entropy": "entropy (nats)", "support": "tokens alive", "missing_mass": "p⁽⁰⁾ mass lost",
    "kl": "KL(p⁽⁰⁾ ‖ p) (nats)", "collapsed": "share of chains collapsed",
}
NAMES = {
    "collision": "collision probability", "max_prob": "largest probability", "l1_initial": "L1 distance to p⁽⁰⁾",
    "l1_first": "L1 distance to p⁽¹⁾", "entropy": "entropy", "support": "support", "missing_mass": "missing mass",
    "kl": "KL divergence from p⁽⁰⁾", "collapsed": "collapsed",
}


class Figure(_MplFigure):
    """A :class:`matplotlib.figure.Figure` that a notebook displays as a PNG (``_repr_png_``), even where
    ``matplotlib.pyplot`` was never imported; everything else is matplotlib's."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self, dpi=100)


def new_figure(width: float, height: float, **kwargs) -> Figure:
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def png_bytes(fig, dpi: float = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def img_tag(fig, dpi: float = 72, width: int | None = None) -> str:
    """``<img>`` with the figure inlined as a base64 PNG."""
    data = base64.b64encode(png_bytes(fig, dpi)).decode("ascii")
    size = f' width="{int(width)}"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{size} alt="figure"/>'


def legend_below(fig, ncol: int = 4, fontsize: float = 8) -> None:
    """One legend for the whole figure, below its panels, with each label of every axes once: where no legend
    can hide a curve. Needs a constrained layout; does nothing when no artist has a label."""
    entries = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, h)
    if entries:
        fig.legend(list(entries.values()), list(entries), fontsize=fontsize, loc="outside lower center",
                   ncol=min(len(entries), ncol), frameon=False)


# ------------------------------------------------------------------------------------------------
# a metric over generations


def metric_panel(ax, metric: str, summary, traces=None, curves=(), *, faint: int = FAINT_CHAINS,
                 legend: str | bool | None = None, sentence: bool = False) -> None:
    """Draw ``metric`` per generation on ``ax``.

    Args:
      summary: a :class:`~jaxcollapse.Summary` (``mean``, ``ci_low``, ``ci_high``, ``n``, ``infinite``, each
        ``(G+1,)``).
      traces: ``(chains, G+1)`` per-chain values, or None; the first ``faint`` chains are drawn faint.
      curves: exact :class:`~jaxcollapse.stats.lookup.Curve` s for this metric (the first one red).
      legend: ``"outside"`` (right of the axes), ``True`` (inside, where it hides the least), ``False``, or
        None: inside when there is a theory curve or the metric is ``collision``.
      sentence: replace the panel by :func:`infinite_sentence` when it applies (a panel among others); else
        a metric at +inf is drawn by :func:`infinite_panel` (the share of chains at +inf).
    """
    mean = np.asarray(summary.mean, np.float64)
    g = np.arange(mean.shape[0])
    level = getattr(summary, "level", 0.95)
    text = infinite_sentence(metric, summary, traces) if sentence else ""
    if text:                                # no finite value to draw: say so instead of an empty axes
        text_panel(ax, text)
        return
    if traces is not None and faint:
        for i, row in enumerate(np.asarray(traces)[:faint]):
            ax.plot(g, np.where(np.isfinite(row), row, np.nan), color="0.55", lw=0.6, alpha=0.45,
                    label=f"first {min(faint, len(traces))} chains" if i == 0 else None)
    finite = np.isfinite(mean)
    ax.plot(g[finite], mean[finite], color="C0", lw=1.6, label="mean over chains")
    lo, hi = np.asarray(summary.ci_low, np.float64), np.asarray(summary.ci_high, np.float64)
    band = finite & np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(g, np.where(band, lo, np.nan), np.where(band, hi, np.nan), color="C0", alpha=0.25, lw=0,
                    label=f"{100 * level:g}% CI of the mean")
    for i, c in enumerate(curves):
        ax.plot(g, c.values, color="C3" if i == 0 else "C1", ls=c.style, lw=1.2, label=c.label)
    if np.isinf(mean).any():
        infinite_panel(ax, g, summary, traces, legends=legend not in (False, "outside"))
        if metric == "kl":
            ax.set_ylim(bottom=0)
    ax.set_title(NAMES.get(metric, metric), fontsize=10)
    ax.set_xlabel("generation")
    ax.set_ylabel(UNITS.get(metric, metric), fontsize=9)
    ax.grid(alpha=0.3)
    if legend is None:
        legend = bool(curves) or metric == "collision"
    if legend == "outside":
        handles, labels = [], []
        for a in ax.figure.axes:            # the axes and its twin (share of chains at +inf)
            h, lab = a.get_legend_handles_labels()
            handles += h
            labels += lab
        ax.figure.legend(handles, labels, fontsize=7, loc="outside right upper")
    elif legend:
        ax.legend(fontsize=7, loc="best")


def infinite_sentence(metric: str, summary, traces=None) -> str:
    """The sentence that replaces the panel of ``metric`` when its mean is +inf from generation 1 on and every
    chain is at +inf within the first few generations (``max(3, G / 20)``): KL once a token of the truth is
    lost, the usual case. There is then nothing finite to plot. ``""`` otherwise."""
    mean = np.asarray(summary.mean, np.float64)
    inf = np.isinf(mean)
    if inf.size < 2 or not inf[1:].all():
        return ""
    if traces is not None:
        every = ~np.isfinite(np.asarray(traces, np.float64)).any(axis=0)
    else:
        every = np.asarray(summary.infinite) >= np.asarray(summary.n)
    later = np.flatnonzero(~every)
    first_all = int(later[-1]) + 1 if later.size else 0
    if first_all >= every.size or first_all > max(3, (every.size - 1) // 20):
        return ""
    name = NAMES.get(metric, metric)
    name = name[0].upper() + name[1:]
    what = "a token of p⁽⁰⁾ is lost" if metric == "kl" else "the mean is +∞"
    if first_all <= 1:
        return f"{name} is infinite for every chain from generation 1: {what}."
    return (f"{name} is infinite for every chain from generation {first_all} (for some from generation 1): "
            f"{what}.")


def text_panel(ax, sentence: str, width: int = 34) -> None:
    """Replace the axes ``ax`` by a sentence (no frame, ticks or title): for a panel with nothing to draw."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(sentence, width)), transform=ax.transAxes, ha="center",
            va="center", fontsize=9, wrap=False,
            bbox={"facecolor": "0.96", "edgecolor": "0.8", "boxstyle": "round,pad=0.6"})


def infinite_panel(ax, g, s, traces, legends: bool = True) -> None:
    """A metric whose mean is +inf (KL once a token is lost): the mean over the chains where it is finite, and
    the share of chains where it is infinite on a second axis."""
    first = int(np.argmax(np.isinf(s.mean)))
    note = f"mean = +∞ from generation {first}\n(a token of p⁽⁰⁾ lost)"
    if traces is not None:
        fin = np.isfinite(traces)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(fin.any(axis=0), np.where(fin, traces, 0).sum(axis=0) / np.maximum(fin.sum(axis=0), 1),
                         np.nan)
        (line,) = ax.plot(g, m, color="C0", lw=1.6, ls="--", label="mean over chains where finite")
        if legends:
            ax.legend(handles=[line], fontsize=7, loc="upper left")
        if not fin[:, first:].any():
            note += f"\nno chain finite after generation {first - 1}"
    twin = ax.twinx()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.asarray(s.infinite) / np.maximum(np.asarray(s.n), 1)
    twin.plot(g, share, color="C2", lw=1.2, label="share of chains with +∞")
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("share of chains with +∞", fontsize=8, color="C2")
    twin.text(0.97, 0.5, note, transform=twin.transAxes, ha="right", va="center", fontsize=8, zorder=5,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9, "boxstyle": "round,pad=0.3"})
    if legends:
        twin.legend(fontsize=7, loc="lower right")


def metric_figure(metric: str, summary, traces=None, curves=(), *, title: str = "", ax=None,
                  faint: int = FAINT_CHAINS):
    """One metric panel in a figure of its own (legend right of the axes), or on ``ax``; returns the figure."""
    if ax is None:
        fig = new_figure(7.2, 3.6)
        ax = fig.subplots()
        metric_panel(ax, metric, summary, traces, curves, faint=faint, legend="outside")
        if title:                       # wrapped to the axes' width: the legend stands right of them
            ax.set_title("\n".join([NAMES.get(metric, metric)] + textwrap.wrap(title, 62)), fontsize=9)
        return fig
    metric_panel(ax, metric, summary, traces, curves, faint=faint, legend=True)
    return ax.figure


# ------------------------------------------------------------------------------------------------
# rank–frequency


def ranked(models, weights=None, most: int = RANK_CHAINS) -> tuple[np.ndarray, float]:
    """Mean rank–frequency curve ``(vocab,)`` of ``models`` ``(chains, contexts, vocab)`` (or ``(contexts,
    vocab)`` for one model): each context's probabilities sorted in decreasing order, averaged over the first
    ``most`` chains and over contexts with ``weights``; and the mean number of tokens alive per context."""
    p = np.asarray(models, np.float64)
    if p.ndim == 2:
        p = p[None]
    p = p[:most]
    c = p.shape[1]
    w = np.full(c, 1.0 / c) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    curve = np.zeros(p.shape[2])
    alive = 0.0
    for j in range(c):                                  # one context at a time: no (chains, C, V) sorted copy
        s = -np.sort(-p[:, j, :], axis=1)
        curve += w[j] * s.mean(axis=0)
        alive += w[j] * (p[:, j, :] > 0).sum(axis=1).mean()
    return curve, float(alive)


def rank_frequency_panel(ax, models: dict, truth=None, weights=None, *, legend: str | bool = True) -> None:
    """Rank–frequency curves on log–log axes: ``truth`` ``(contexts, vocab)`` (black, dashed) and, for each
    ``generation -> (chains, contexts, vocab)`` of ``models``, the mean ranked model (see :func:`ranked`)."""
    import matplotlib

    gens = sorted(models)
    cmap = matplotlib.colormaps["viridis"]
    vocab = None
    contexts = np.shape(truth)[0] if truth is not None else (np.shape(models[gens[0]])[-2] if gens else 1)
    per = " per context" if contexts > 1 else ""
    if truth is not None:
        curve, alive = ranked(truth, weights)
        vocab = curve.size
        r = np.arange(1, curve.size + 1)
        keep = curve > 0
        ax.plot(r[keep], curve[keep], color="k", ls="--", lw=1.6, marker="o", ms=2.5,
                label=f"truth p⁽⁰⁾ ({alive:.3g} tokens alive{per})")
    for i, g in enumerate(gens):
        curve, alive = ranked(models[g], weights)
        vocab = curve.size
        r = np.arange(1, curve.size + 1)
        keep = curve > 0
        color = cmap(0.1 + 0.8 * i / max(len(gens) - 1, 1))
        chains = 1 if np.ndim(models[g]) == 2 else min(len(models[g]), RANK_CHAINS)
        ax.plot(r[keep], curve[keep], color=color, lw=1.4, marker="o", ms=2,
                label=f"generation {g}: {alive:.3g} tokens alive{per} (mean of {chains:,} chains)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if vocab:
        ax.set_xlim(0.8, vocab * 1.25)
    ax.set_xlabel("token rank (1 = most probable, per model and context)")
    ax.set_ylabel("probability (mean over chains at each rank)")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    if legend == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    elif legend:
        ax.legend(fontsize=7, loc="upper right")


def pick_generations(available, generations=None, most: int = 5) -> list[int]:
    """The generations to draw: ``generations`` (checked against ``available``), or up to ``most`` spread
    geometrically over ``available`` (the last one always included)."""
    available = sorted(int(g) for g in available)
    if not available:
        raise ValueError("no models to draw: keep the final models (keep_final=True) or pass models=")
    if generations is not None:
        want = [int(g) for g in np.atleast_1d(generations)]
        missing = [g for g in want if g not in available]
        if missing:
            raise ValueError(f"no models kept for generation(s) {missing}; available: {_span(available)} "
                             f"(pass models=trajectories(...) for intermediate generations)")
        return want
    positive = [g for g in available if g > 0]
    if len(positive) <= most:
        return positive or available
    top = positive[-1]
    marks = np.unique(np.rint(np.geomspace(positive[0], top, most)).astype(int))
    return sorted({min(positive, key=lambda a: abs(a - m)) for m in marks} | {top})


def _span(gens) -> str:
    if len(gens) > 6:
        return f"{gens[0]}, {gens[1]}, ..., {gens[-1]}"
    return ", ".join(map(str, gens))


def models_by_generation(final=None, generations_total: int | None = None, models=None) -> dict:
    """``{generation: (chains, contexts, vocab)}`` from the kept final models and ``models``: a trajectories
    array ``(chains, G+1, contexts, vocab)`` (:func:`jaxcollapse.engine.simulate.trajectories`) or a dict
    ``{generation: (chains, contexts, vocab)}``."""
    out = {}
    if models is not None:
        if isinstance(models, dict):
            out.update({int(g): np.asarray(m) for g, m in models.items()})
        else:
            m = np.asarray(models)
            if m.ndim != 4:
                raise ValueError(f"models must be (chains, generations + 1, contexts, vocab) or a dict, got shape "
                                 f"{m.shape}")
            out.update({g: m[:, g] for g in range(m.shape[1])})
    if final is not None and generations_total is not None:
        out[int(generations_total)] = np.asarray(final)       # every chain, where the trajectories have a few
    return out


def rank_frequency_figure(models: dict, truth=None, weights=None, *, generations=None, title: str = "",
                          ax=None):
    """The rank–frequency figure (or panel on ``ax``) of the chosen ``generations`` of ``models``."""
    gens = pick_generations([g for g in models if g > 0] or list(models), generations)
    chosen = {g: models[g] for g in gens}
    if ax is None:
        fig = new_figure(7.6, 4.6)
        ax = fig.subplots()
        rank_frequency_panel(ax, chosen, truth, weights, legend=False)
        ax.set_title("rank–frequency: the tail of the truth is lost over generations", fontsize=9)
        if title:
            fig.suptitle(title, fontsize=9)
        legend_below(fig, ncol=2, fontsize=7)
        return fig
    rank_frequency_panel(ax, chosen, truth, weights)
    return ax.figure


# ------------------------------------------------------------------------------------------------
# a sweep: curves per setting


def _num(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _label(keys, values) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values)) or "all points"


def sweep_figure(items, metric: str, x: str | None, groups, *, generation: int, level: float = 0.95,
                 title: str = ""):
    """Per-setting curves of a sweep.

    Args:
      items: one ``(settings, mean, ci_low, ci_high)`` per point, each array ``(G+1,)``.
      x: the setting the curves are coloured by and the right panel's abscissa (None: one point or nothing
        varies; only the left panel is drawn).
      groups: the other settings that vary: one line style and marker per combination of their values.
      generation: the generation of the right panel.

    Colour is ``x``'s value and line style (and marker) the group in both panels; one legend, right of the
    panels, says which is which.
    """
    import matplotlib
    from matplotlib.lines import Line2D

    has_x = x is not None
    fig = new_figure(13.0 if has_x else 8.5, 4.2)
    axes = fig.subplots(1, 2 if has_x else 1, squeeze=False)[0]
    left = axes[0]
    xs = sorted({json_value(s.get(x)) for s, *_ in items}, key=_order) if has_x else [None]
    numeric = has_x and all(_num(v) for v in xs if v is not None)
    cmap = matplotlib.colormaps["viridis"]

    def color(v):
        return "C0" if len(xs) == 1 else cmap(0.8 * xs.index(v) / (len(xs) - 1))

    gkeys = list(groups)
    gvals = sorted({tuple(json_value(s.get(k)) for k in gkeys) for s, *_ in items},
                   key=lambda t: tuple(map(_order, t)))
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X"]

    def group(s):
        return gvals.index(tuple(json_value(s.get(k)) for k in gkeys))

    for s, mean, lo, hi in items:
        xv = json_value(s.get(x)) if has_x else None
        gi = group(s)
        gen_axis = np.arange(len(mean))
        fin = np.isfinite(mean)
        left.plot(gen_axis[fin], np.asarray(mean)[fin], color=color(xv), ls=styles[gi % len(styles)], lw=1.3)
        if len(items) <= 4:                       # more bands than that hide each other
            band = fin & np.isfinite(lo) & np.isfinite(hi)
            left.fill_between(gen_axis, np.where(band, lo, np.nan), np.where(band, hi, np.nan), color=color(xv),
                              alpha=0.15, lw=0)
    width = max(len(m) for _, m, _, _ in items)
    left.set_xlim(0, width - 1)
    left.set_xlabel("generation")
    left.set_ylabel(UNITS.get(metric, metric))
    what = "share of chains collapsed by each generation" if metric == "collapsed" else "mean over chains"
    left.set_title(f"{NAMES.get(metric, metric)}: {what}, one curve per point", fontsize=10)
    _note_infinite(left, [np.asarray(m) for _, m, _, _ in items], metric, None)
    left.grid(alpha=0.3)
    handles = []
    if has_x and len(xs) <= 12:
        handles += [Line2D([], [], color=color(v), lw=2.5, label=f"{x} = {v}") for v in xs]
    elif has_x:
        sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, (len(xs) - 1) / 0.8))
        cb = fig.colorbar(sm, ax=axes[-1], pad=0.01)
        ticks = np.unique(np.linspace(0, len(xs) - 1, 6).round().astype(int))
        cb.set_ticks(ticks)
        cb.set_ticklabels([str(xs[t]) for t in ticks])
        cb.set_label(x)
    if len(gvals) > 1:
        handles += [Line2D([], [], color="0.2", ls=styles[i % len(styles)], marker=markers[i % len(markers)],
                           ms=4, lw=1.2, label=_label(gkeys, gv)) for i, gv in enumerate(gvals)]
    if has_x:
        right = axes[1]
        g = generation
        for gi, gv in enumerate(gvals):
            pts = sorted([(json_value(s.get(x)), m[g], lo[g], hi[g]) for s, m, lo, hi in items if group(s) == gi],
                         key=lambda t: _order(t[0]))
            shift = 0.0 if numeric else 0.25 * (gi - (len(gvals) - 1) / 2) / max(len(gvals) - 1, 1)
            pos = np.array([t[0] if numeric else xs.index(t[0]) + shift for t in pts], np.float64)
            y = np.array([t[1] for t in pts], np.float64)
            yl = np.array([t[2] for t in pts], np.float64)
            yh = np.array([t[3] for t in pts], np.float64)
            right.plot(pos, y, color="0.45", ls=styles[gi % len(styles)], lw=1.1, zorder=1)
            for (xv, *_), px, py, a, b in zip(pts, pos, y, yl, yh):
                ok = np.isfinite(a) and np.isfinite(b) and np.isfinite(py)
                right.errorbar([px], [py], yerr=[[max(py - a, 0)], [max(b - py, 0)]] if ok else None,
                               color=color(xv), marker=markers[gi % len(markers)], ms=5, capsize=2, lw=1.2,
                               zorder=2)
        nums = [float(v) for v in xs if v is not None] if numeric else []
        if not numeric:
            right.set_xlim(-0.5, len(xs) - 0.5)
            right.set_xticks(range(len(xs)))
            right.set_xticklabels([str(v) for v in xs], rotation=15, fontsize=8)
        elif len(nums) > 2 and min(nums) > 0 and max(nums) / min(nums) >= 50:
            right.set_xscale("log")
            right.set_xlim(min(nums) / 1.3, max(nums) * 1.3)
        elif nums:
            pad = 0.05 * (max(nums) - min(nums) or 1.0)
            right.set_xlim(min(nums) - pad, max(nums) + pad)
        right.set_xlabel(x)
        right.set_ylabel(UNITS.get(metric, metric))
        how = f"share, Wilson {100 * level:g}% CI" if metric == "collapsed" else f"mean, {100 * level:g}% CI"
        right.set_title(f"{NAMES.get(metric, metric)} at generation {g} ({how})", fontsize=10)
        right.grid(alpha=0.3)
        _note_infinite(right, [np.asarray(m) for _, m, _, _ in items], metric, g)
    if handles:
        fig.legend(handles=handles, fontsize=7.5, loc="outside right upper")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _note_infinite(ax, means, metric: str, generation: int | None) -> None:
    """Say on ``ax`` how many points have a mean of +inf (KL once a chain loses a token), which no curve shows."""
    if generation is None:
        inf = sum(bool(np.isinf(m).any()) for m in means)
        where = "at some generation"
    else:
        inf = sum(bool(np.isinf(m[generation])) for m in means)
        where = f"at generation {generation}"
    if not inf:
        return
    text = (f"mean = +∞ {where} for {inf} of {len(means)} points\n(a chain lost a token of p⁽⁰⁾)")
    if metric == "kl":
        text += "; see missing_mass or support"
    if inf == len(means) and generation is not None:
        ax.set_yticks([])
    ax.text(0.5, 0.5 if inf == len(means) else 0.04, text, transform=ax.transAxes, ha="center",
            va="center" if inf == len(means) else "bottom", fontsize=8, zorder=5,
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9, "boxstyle": "round,pad=0.3"})


def json_value(v):
    """A setting's value as something hashable and orderable (lists become tuples, numpy scalars Python's)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, list):
        return tuple(json_value(a) for a in v)
    return v


def _order(v):
    if v is None:
        return (2, 0, "")
    if _num(v):
        return (0, float(v), "")
    return (1, 0, str(v))


# ------------------------------------------------------------------------------------------------
# rich display


def fmt(x, digits: int = 4) -> str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def html_block(title: str, facts: list[tuple[str, str]], table: tuple[list[str], list[list[str]]] | None = None,
               figure=None, note: str = "", figure_width: int | None = None) -> str:
    """A small HTML card: a title, ``(name, value)`` facts, an optional table and an inline figure."""
    e = html.escape
    parts = ['<div class="jaxcollapse" style="font-family: sans-serif; font-size: 13px">',
             f"<div><b>{e(title)}</b></div>", '<table style="border-collapse: collapse">']
    for k, v in facts:
        parts.append(f'<tr><td style="text-align:left; padding:1px 10px 1px 0"><b>{e(k)}</b></td>'
                     f'<td style="text-align:left">{e(v)}</td></tr>')
    parts.append("</table>")
    if table is not None:
        head, rows = table
        parts.append('<table style="border-collapse: collapse; margin-top: 4px">')
        parts.append("<tr>" + "".join(f'<th style="text-align:left; padding:1px 8px">{e(h)}</th>' for h in head)
                     + "</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f'<td style="text-align:left; padding:1px 8px">{e(c)}</td>' for c in r)
                         + "</tr>")
        parts.append("</table>")
    if note:
        parts.append(f"<div><i>{e(note)}</i></div>")
    if figure is not None:
        parts.append(f"<div>{img_tag(figure, dpi=72, width=figure_width)}</div>")
    parts.append("</div>")
    return "\n".join(parts)


def headline_facts(h: dict) -> list[tuple[str, str]]:
    """``(name, value)`` lines of :func:`jaxcollapse.io.frames.headline` numbers."""
    med = h["median_collapse_time"]
    return [
        ("regime", h["regime"]),
        ("chains × generations", f"{h['chains']:,} × {h['generations']:,}"),
        ("collapsed", f"{h['collapsed']:,} of {h['chains']:,} chains = {100 * h['collapsed_share']:.1f}% "
                      f"[{100 * h['collapsed_low']:.1f}%, {100 * h['collapsed_high']:.1f}%] (Wilson 95%) by "
                      f"generation {h['generations']}"),
        ("median collapse time", "not reached (fewer than half collapsed)" if med is None else
         f"{med} generations"),
    ]


def headline_table(h: dict) -> tuple[list[str], list[list[str]]]:
    rows = [[m, UNITS.get(m, m), fmt(mean), f"[{fmt(lo)}, {fmt(hi)}]"] for m, (mean, lo, hi) in h["final"].items()]
    return ([f"at generation {h['generations']}", "", "mean", "95% CI"], rows)


def result_html(result, curves=(), *, title: str = "Result", facts=(), metric: str = "collision") -> str:
    """The rich display of a simulation: headline numbers, the final means of the main metrics and a small
    figure of ``metric`` (with its exact ``curves``)."""
    from .frames import headline

    h = headline(result)
    fig = None
    if metric in result.summary:
        fig = new_figure(4.6, 2.7)
        ax = fig.subplots()
        metric_panel(ax, metric, result.summary[metric],
                     None if result.traces is None else result.traces.get(metric), curves, legend=True)
    return html_block(title, headline_facts(h) + list(facts) + [("wall time", f"{h['wall_time']:.2f} s")],
                      headline_table(h), fig)
