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
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    from ..io.rundir import atomic_file

    manifest, rows = _load(out)
    g = int(manifest["generations"])
    plot = manifest.get("plot") or {}
    x, y = _axes(rows, x or plot.get("x"), y or plot.get("y"))
    facet_keys = [k for k in ("regime", *AXES, "initial", "sampler") if k not in (x, y)
                  and len({json_key(s.get(k)) for s, _ in rows}) > 1 and k not in ("synthetic", "real", "size",
                                                                                   "fraction")]
    facets = {}
    for s, rec in rows:
        facets.setdefault(tuple(json_key(s.get(k)) for k in facet_keys), []).append((s, rec))
    nrow = len(facets)
    fig = Figure(figsize=(15, 3.9 * nrow + 0.4))
    axes = fig.subplots(nrow, 3, squeeze=False)
    theory_cache = {}
    for r, (fkey, items) in enumerate(sorted(facets.items())):
        xs = sorted({s[x] for s, _ in items if s.get(x) is not None})
        ys = sorted({s[y] for s, _ in items if s.get(y) is not None})
        shape = (len(ys), len(xs))
        grids = {k: np.full(shape, np.nan) for k in ("collapsed", "time", "collision", "l1", "th_collision",
                                                      "th_collapse", "th_low")}
        for s, rec in items:
            if s.get(x) is None or s.get(y) is None:
                continue
            i, j = ys.index(s[y]), xs.index(s[x])
            t = np.asarray(rec["collapse_time"])
            chains = t.size
            big = np.sort(np.where(t >= 0, t, np.iinfo(np.int64).max))
            med = big[math.ceil(chains / 2) - 1]
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
        title = ", ".join(f"{k}={v.strip(chr(39))}" for k, v in zip(facet_keys, fkey))
        panels = [("time", f"median collapse time (grey: < 1/2 collapsed by {g})", "viridis"),
                  ("collision", f"mean collision probability at generation {g}", "magma"),
                  ("l1", f"mean L1 distance to p0 at generation {g}", "cividis")]
        for c, (name, label, cmap) in enumerate(panels):
            ax = axes[r, c]
            ax.set_facecolor("0.82")
            im = ax.imshow(np.ma.masked_invalid(grids[name]), origin="lower", aspect="auto", cmap=cmap,
                           interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            if min(shape) >= 2 and np.nanmax(grids["collapsed"]) >= 0.5 > np.nanmin(grids["collapsed"]):
                ax.contour(np.nan_to_num(grids["collapsed"], nan=0.0), levels=[0.5], colors="white",
                           linewidths=2.0)
            if name == "collision" and min(shape) >= 2 and np.isfinite(grids["th_collision"]).sum() >= 4:
                sim = grids["collision"]
                levels = np.unique(np.nanquantile(sim, [0.2, 0.4, 0.6, 0.8]))
                if levels.size >= 1 and np.nanmax(sim) > np.nanmin(sim):
                    ax.contour(sim, levels=levels, colors="cyan", linewidths=1.0)
                    ax.contour(grids["th_collision"], levels=levels, colors="black", linewidths=1.2,
                               linestyles="--")
            if name == "time":
                ii, jj = np.nonzero(np.isfinite(grids["th_collapse"]))
                if ii.size:
                    full = grids["th_collapse"][ii, jj] >= 0.5
                    ax.scatter(jj[full], ii[full], marker="o", s=36, c="red", edgecolors="black",
                               label="exact P(collapsed by G) ≥ 1/2")
                    ax.scatter(jj[~full], ii[~full], marker="o", s=36, facecolors="none", edgecolors="red",
                               label="exact P(collapsed by G) < 1/2")
                ii, jj = np.nonzero(grids["th_low"] >= 0.5)
                if ii.size:
                    ax.scatter(jj, ii, marker="+", s=70, c="white", label="Theorem 1 bound: P ≥ 1/2")
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7, loc="lower right", framealpha=0.7)
            ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=45, fontsize=8)
            ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys], fontsize=8)
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            ax.set_title((title + "\n" if title else "") + label, fontsize=9)
    fig.suptitle(f"phase diagram: {manifest['chains']} chains per point, {g} generations; white: 1/2 of the "
                 f"chains collapsed; dashed black: exact E[collision] at the cyan (simulated) levels", fontsize=10)
    fig.tight_layout()
    folder = os.path.join(os.fspath(out), "plots")
    os.makedirs(folder, exist_ok=True)
    made = []
    for fmt in formats:
        path = os.path.join(folder, f"phase.{fmt}")
        with atomic_file(path) as f:
            fig.savefig(f, format=fmt, dpi=110)
        made.append(path)
    return made


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

