"""Phase diagrams of a finished sweep: collapse time, final collision probability and drift over two settings.

Each figure has one row per value of the other swept settings (e.g. the regime) and three panels over the two
plotted settings ``x`` and ``y``: the median collapse time (grey where fewer than half of the chains collapsed),
the final mean collision probability and the final mean L1 distance to the truth. Every panel carries the
collapse boundary, where the fraction of chains collapsed by the last generation crosses 1/2 (white line).
The exact theory is drawn where it applies (one context, no decoding or smoothing):

* final ``E[collision]`` (fully synthetic: Theorem 1; partially synthetic: corrected Theorem 2; fresh real:
  ``S_0 + d_G``; accumulate): dashed contours at the levels of the simulated (solid) contours;
* points that are fully synthetic (fully synthetic, or fresh real with no real sample left): the exact
  Wright–Fisher ``P(collapsed by G)`` and the paper's Theorem 1 bounds on it, as markers on the collapse panel:
  filled where the exact probability is >= 1/2, open where it is below; a ``+`` where Theorem 1's lower bound
  alone already guarantees >= 1/2.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import ConfigError

#: Settings tried, in order, as the axes of a phase diagram (the first two that vary).
AXES = ("size", "fraction", "synthetic", "real", "vocab", "support", "exponent", "temperature", "top_k", "top_p",
        "smoothing", "window", "train")
#: Largest (distinct probabilities) x (n+1)^2 x generations for the exact Wright–Fisher collapse probability.
WF_BUDGET = 3e9


def theory_point(settings: dict, initial_probs: np.ndarray | None, generations: int) -> dict:
    """Exact results at the last generation for one point: ``collision`` (float), ``collapse`` (exact
    P(collapsed by G)), ``collapse_low``/``collapse_high`` (Theorem 1); keys only where they apply. The
    values at generation ``G`` of :func:`jaxcollapse.stats.lookup.exact_theory` for the point's settings."""
    from ..stats.lookup import exact_theory

    out = {}
    if initial_probs is None or initial_probs.shape[0] != 1:
        return out
    g = int(generations)
    decoding = (settings.get("temperature", 1.0) != 1.0 or settings.get("top_k") is not None
                or settings.get("top_p") is not None)
    th = exact_theory(settings["regime"], np.asarray(initial_probs[0], np.float64), g,
                      synthetic=settings.get("synthetic"), real=settings.get("real"),
                      fraction=settings.get("fraction"), train=settings.get("train"), window=settings.get("window"),
                      decoding=decoding, smoothing=bool(settings.get("smoothing", 0.0)), expected_time=False,
                      wf_budget=WF_BUDGET)
    for key, metric in (("collision", "collision"), ("collapse", "collapsed")):
        values = th.values(metric)
        if values is not None:
            out[key] = float(values[g])
    if "prob_low" in th.collapse:
        out["collapse_low"] = float(th.collapse["prob_low"][g])
        out["collapse_high"] = float(th.collapse["prob_high"][g])
    return out


def _load(out):
    from .store import read_sweep

    spec, points, records, _, _ = read_sweep(out)
    if len(records) < len(points):
        raise ConfigError(f"{os.fspath(out)} is not a finished jaxcollapse sweep ({len(records)} of {len(points)} "
                          f"points finished)")
    manifest = {"chains": spec.chains, "generations": spec.generations, "plot": spec.plot}
    return manifest, [(p.settings, records[p.index]) for p in points]


def _axes(rows, x=None, y=None):
    varying = [k for k in AXES if len({json_key(s.get(k)) for s, _ in rows}) > 1]
    if x is None or y is None:
        pick = [k for k in varying if k not in (x, y)]
        if x is None:
            x = pick.pop(0) if pick else None
        if y is None:
            y = pick.pop(0) if pick else None
    if x is None or y is None:
        raise ConfigError("a phase diagram needs two settings that vary over the sweep; give --x and --y")
    for k in (x, y):
        if all(s.get(k) is None for s, _ in rows):
            raise ConfigError(f"setting {k!r} is not set by any point of the sweep")
    return x, y


def json_key(v):
    return repr(v)


def _initial_probs(settings):
    from .spec import resolve_point

    return np.asarray(resolve_point({k: v for k, v in settings.items() if k not in ("size", "fraction")
                                     or settings["regime"] == "fresh_real" and k == "fraction"}).initial.probs)


def plot_sweep(out, x: str | None = None, y: str | None = None, formats=("png",)) -> list:
    """Draw the phase diagrams of the sweep in ``out`` into ``out/plots/``; returns the files written."""
    from ..io.rundir import atomic_file

    manifest, rows = _load(out)
    plot = manifest.get("plot") or {}
    fig = phase_figure(rows, int(manifest["generations"]), manifest["chains"], x or plot.get("x"),
                       y or plot.get("y"))
    folder = os.path.join(os.fspath(out), "plots")
    os.makedirs(folder, exist_ok=True)
    made = []
    for fmt in formats:
        path = os.path.join(folder, f"phase.{fmt}")
        with atomic_file(path) as f:
            fig.savefig(f, format=fmt, dpi=110)
        made.append(path)
    return made


#: The three panels of a row: grid name, title, colour map.
PANELS = (("time", "median collapse time T (generations)", "viridis"),
          ("collision", "mean collision probability Σ p² at generation {g}", "magma"),
          ("l1", "mean L1 distance to p⁽⁰⁾ at generation {g}", "cividis"))


def phase_figure(rows, generations: int, chains, x: str | None = None, y: str | None = None):
    """The phase diagrams of a sweep's points: ``rows`` of ``(settings, record)``, a record holding
    ``collapse_time`` ``(chains,)`` (-1: censored), ``metrics`` (names) and ``mean`` ``(metrics, G+1)``.

    One row of panels per value of the other varying settings; ``x`` and ``y`` on true numeric axes (log
    where the values span a factor of 20 or more; cells drawn between the midpoints of neighbouring values),
    equally spaced categories for a setting that is not numeric. Colour limits are shared by the rows of a
    panel and set from the 2nd-98th percentiles when there are many points, so one odd point cannot set
    them. Returns a :class:`matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    g = int(generations)
    x, y = _axes(rows, x, y)
    facet_keys = [k for k in ("regime", *AXES, "initial", "sampler") if k not in (x, y)
                  and len({json_key(s.get(k)) for s, _ in rows}) > 1 and k not in ("synthetic", "real", "size",
                                                                                   "fraction")]
    facets = {}
    for s, rec in rows:
        facets.setdefault(tuple(json_key(s.get(k)) for k in facet_keys), []).append((s, rec))
    nrow = len(facets)
    fig = Figure(figsize=(16, 4.3 * nrow + 0.6), layout="constrained")
    axes = fig.subplots(nrow, 3, squeeze=False)
    grids_by_row = [_grids(items, x, y, g) for _, items in sorted(facets.items())]
    limits = {name: _limits([gr[name] for gr, _, _ in grids_by_row]) for name, _, _ in PANELS}
    xspec = _axis_spec([s.get(x) for s, _ in rows])
    yspec = _axis_spec([s.get(y) for s, _ in rows])
    for r, ((fkey, _), (grids, xs, ys)) in enumerate(zip(sorted(facets.items()), grids_by_row)):
        title = ", ".join(f"{k}={v.strip(chr(39))}" for k, v in zip(facet_keys, fkey))
        xc, xe = _centres_edges(xs, xspec)
        yc, ye = _centres_edges(ys, yspec)
        collapsed = grids["collapsed"]
        for c, (name, label, cmap) in enumerate(PANELS):
            ax = axes[r, c]
            ax.set_facecolor("0.82")
            vmin, vmax = limits[name]
            im = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grids[name]), cmap=cmap, vmin=vmin, vmax=vmax,
                               shading="flat")
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            if name == "time":
                cb.set_label(f"generations (grey: fewer than half collapsed by {g})", fontsize=8)
            if min(collapsed.shape) >= 2 and np.nanmax(collapsed) >= 0.5 > np.nanmin(collapsed):
                cs = ax.contour(xc, yc, np.nan_to_num(collapsed, nan=0.0), levels=[0.5], colors="white",
                                linewidths=2.0)
                ax.clabel(cs, fmt={0.5: "½ collapsed"}, fontsize=7, inline=True)
            if name == "collision" and min(collapsed.shape) >= 2 and np.isfinite(grids["th_collision"]).sum() >= 4:
                sim = grids["collision"]
                levels = np.unique(np.round(np.nanquantile(sim, [0.2, 0.4, 0.6, 0.8]), 3))
                if levels.size >= 1 and np.nanmax(sim) > np.nanmin(sim):
                    cs = ax.contour(xc, yc, sim, levels=levels, colors="cyan", linewidths=1.0)
                    ax.clabel(cs, fmt="%.3g", fontsize=7, inline=True)
                    ax.contour(xc, yc, grids["th_collision"], levels=levels, colors="black", linewidths=1.2,
                               linestyles="--")
            if name == "time":
                _theory_markers(ax, grids, xc, yc)
            _set_axis(ax.xaxis, xs, xspec, x)
            _set_axis(ax.yaxis, ys, yspec, y)
            ax.set_title((title + "\n" if title else "") + label.format(g=g), fontsize=9)
    fig.suptitle(f"phase diagram: {chains} chains per point, {g} generations; white line: half of the chains "
                 f"collapsed by {g}; cyan: simulated E[Σ p²] levels (labelled), dashed black: exact E[Σ p²] at "
                 f"the same levels", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def _grids(items, x, y, g):
    """Per-point values of one row of panels on the ``(len(ys), len(xs))`` grid of its ``x`` and ``y`` values."""
    xs = sorted({s[x] for s, _ in items if s.get(x) is not None}, key=_order)
    ys = sorted({s[y] for s, _ in items if s.get(y) is not None}, key=_order)
    shape = (len(ys), len(xs))
    grids = {k: np.full(shape, np.nan) for k in ("collapsed", "time", "collision", "l1", "th_collision",
                                                  "th_collapse", "th_low")}
    theory_cache = {}
    for s, rec in items:
        if s.get(x) is None or s.get(y) is None:
            continue
        i, j = ys.index(s[y]), xs.index(s[x])
        t = np.asarray(rec["collapse_time"])
        big = np.sort(np.where(t >= 0, t, np.iinfo(np.int64).max))
        med = big[math.ceil(t.size / 2) - 1]
        names = list(rec["metrics"])
        grids["collapsed"][i, j] = float(np.mean(t >= 0))
        grids["time"][i, j] = med if med <= g else np.nan
        grids["collision"][i, j] = rec["mean"][names.index("collision"), -1]
        grids["l1"][i, j] = rec["mean"][names.index("l1_initial"), -1]
        key = json_key(sorted(s.items()))
        if key not in theory_cache:
            try:
                theory_cache[key] = theory_point(s, _initial_probs(s), g)
            except (ConfigError, ValueError):
                theory_cache[key] = {}
        th = theory_cache[key]
        grids["th_collision"][i, j] = th.get("collision", np.nan)
        grids["th_collapse"][i, j] = th.get("collapse", np.nan)
        grids["th_low"][i, j] = th.get("collapse_low", np.nan)
    return grids, xs, ys


def _theory_markers(ax, grids, xc, yc) -> None:
    """The exact P(collapsed by G) (filled: >= 1/2, open: < 1/2) and Theorem 1's guarantee on the time panel."""
    ii, jj = np.nonzero(np.isfinite(grids["th_collapse"]))
    if ii.size:
        full = grids["th_collapse"][ii, jj] >= 0.5
        ax.scatter(xc[jj[full]], yc[ii[full]], marker="o", s=36, c="red", edgecolors="black",
                   label="exact P(collapsed by G) ≥ 1/2")
        ax.scatter(xc[jj[~full]], yc[ii[~full]], marker="o", s=36, facecolors="none", edgecolors="red",
                   label="exact P(collapsed by G) < 1/2")
    ii, jj = np.nonzero(grids["th_low"] >= 0.5)
    if ii.size:
        ax.scatter(xc[jj], yc[ii], marker="P", s=60, c="white", edgecolors="black", linewidths=0.6,
                   label="Theorem 1 bound alone: P ≥ 1/2")


def _axis_spec(values) -> str:
    """How a setting is drawn: ``"log"`` (positive numbers spanning a factor >= 20), ``"linear"`` (other
    numbers) or ``"category"`` (anything else: equally spaced, in order)."""
    vals = [v for v in values if v is not None]
    if not vals or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                           for v in vals):
        return "category"
    lo, hi = min(vals), max(vals)
    return "log" if lo > 0 and hi / lo >= 20 else "linear"


def _centres_edges(values, spec) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(k,)`` (the values, or 0..k-1 for categories) and edges ``(k+1,)``: midpoints between
    neighbours (geometric on a log axis), the outer cells as wide as their neighbour."""
    k = len(values)
    if spec == "category":
        c = np.arange(k, dtype=np.float64)
        return c, np.arange(k + 1, dtype=np.float64) - 0.5
    c = np.asarray(values, np.float64)
    u = np.log(c) if spec == "log" else c
    if k == 1:
        half = 0.5 if spec == "log" else 0.5 * max(abs(u[0]), 1.0) * 0.2
        e = np.array([u[0] - half, u[0] + half])
    else:
        mid = (u[1:] + u[:-1]) / 2
        e = np.concatenate([[u[0] - (mid[0] - u[0])], mid, [u[-1] + (u[-1] - mid[-1])]])
    return c, (np.exp(e) if spec == "log" else e)


def _set_axis(axis, values, spec, name) -> None:
    """Scale, ticks (one per value) and label of a phase-diagram axis."""
    from matplotlib.ticker import FixedLocator

    if spec == "log":
        (axis.axes.set_xscale if axis.axis_name == "x" else axis.axes.set_yscale)("log")
    if spec == "category":
        axis.set_major_locator(FixedLocator(np.arange(len(values))))
        axis.set_ticklabels([_fmt(v) for v in values], fontsize=8)
        axis.set_label_text(f"{name} (categories, equally spaced)")
        return
    shown = _spaced(values, spec)
    axis.set_major_locator(FixedLocator(np.asarray(shown, np.float64)))
    axis.set_minor_locator(FixedLocator(np.asarray(values, np.float64)))
    axis.set_ticklabels([_fmt(v) for v in shown], fontsize=8)
    axis.set_label_text(f"{name} ({'log scale' if spec == 'log' else 'linear scale'})")


def _spaced(values, spec, gap: float = 0.04) -> list:
    """The values that get a tick label: neighbours closer than ``gap`` of the axis (in its scale) are thinned,
    the first and last values kept; every value keeps a minor tick."""
    u = np.log(np.asarray(values, np.float64)) if spec == "log" else np.asarray(values, np.float64)
    span = (u[-1] - u[0]) or 1.0
    kept = [0]
    for i in range(1, len(u)):
        if (u[i] - u[kept[-1]]) / span >= gap:
            kept.append(i)
    if kept[-1] != len(u) - 1:
        if len(kept) > 1 and (u[-1] - u[kept[-1]]) / span < gap:
            kept.pop()
        kept.append(len(u) - 1)
    return [values[i] for i in kept]


def _limits(grids) -> tuple[float | None, float | None]:
    """Colour limits shared by a panel's rows: the 2nd and 98th percentiles of its finite values when there are
    20 or more, else their range; widened to ±10% (or ±1) around a single value."""
    vals = np.concatenate([np.ravel(a) for a in grids])
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return None, None
    lo, hi = (np.percentile(vals, [2, 98]) if vals.size >= 20 else (vals.min(), vals.max()))
    if hi <= lo:
        pad = 0.1 * abs(lo) or 1.0
        lo, hi = lo - pad, hi + pad
    return float(lo), float(hi)


def _order(v):
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def format_points(points, records, generations: int, rows: int = 12) -> str:
    """A fixed-width table of the points: the settings that vary, collapsed fraction, median collapse time,
    final mean collision probability and L1 drift."""
    from .tables import point_summary

    settings = [p.settings if hasattr(p, "settings") else p for p in points]
    keys = [k for k in ("regime", *AXES) if len({json_key(s.get(k)) for s in settings}) > 1] or ["regime"]
    head = " ".join(f"{k:>19}" if k == "regime" else f"{k:>9}" for k in keys)
    lines = [f"{'point':>5} {head} {'collapsed':>9} {'median T':>8} {'collision':>9} {'l1_initial':>10}"]
    idx = list(range(len(points)))
    shown = idx if len(idx) <= rows else idx[: rows // 2] + [None] + idx[-rows // 2:]
    for k in shown:
        if k is None:
            lines.append("  ...")
            continue
        p = points[k]
        s = settings[k]
        summ = point_summary(records[p.index], generations)
        med = summ["median_collapse_time"]
        cells = " ".join(f"{str(s.get(c)):>19}" if c == "regime" else f"{_fmt(s.get(c)):>9}" for c in keys)
        lines.append(f"{p.index:>5} {cells} {100 * summ['collapsed_fraction']:>8.1f}% "
                     f"{'> G' if math.isnan(med) else f'{med:.0f}':>8} {summ['final_collision']:>9.4f} "
                     f"{summ['final_l1_initial']:>10.4f}")
    return "\n".join(lines)

