"""Figures of a finished run, drawn from its saved files (matplotlib, Agg; PNG and PDF).

* ``traces``: every metric per generation, the mean over chains with its 95% confidence band, a few chains
  faint, and the exact theory where one applies (:func:`jaxcollapse.stats.lookup.exact_theory`: fully
  synthetic, or fresh real with no real sample left, or most-recent with window 1: collision probability, and
  the expected support from the Wright–Fisher chain when cheap; partially synthetic: Theorem 2 corrected, and
  as printed dashed; fresh real, accumulate, accumulate-subsample: collision probability).
* ``collapse``: histogram of the observed collapse times and the Kaplan–Meier survival ``P(T > m)`` with its
  interval; for fully synthetic runs, the exact expected collapse time, Littler's approximation and the
  Theorem 1 bounds as vertical lines, and the exact survival curve and Theorem 1 probability bounds.
* ``contexts`` (several contexts): the share of contexts collapsed per generation, the distribution of
  per-context median collapse times, and per-context L1 drift when per-context traces were kept.
* ``simplex`` (3-token vocabularies, the paper's Figure 1): trajectories of the first chains in barycentric
  coordinates, points coloured by generation.
* ``rank_frequency`` (when the final models were kept): the truth's probabilities in decreasing order against
  token rank (log–log), and the models of a few generations ranked the same way, averaged over chains rank by
  rank: the tail of the truth is lost first. The last generation comes from the final models, earlier ones from
  the saved trajectories of the first chains when there are any.

The panels are drawn by :mod:`jaxcollapse.io.draw` from arrays, the same code as ``Result.plot`` and
``Result.plot_rank_frequency`` in a notebook.

``plot_run(directory)`` writes them all to ``directory/plots/``; ``jaxcollapse plot DIR`` calls it.
"""

from __future__ import annotations

import os

import numpy as np

from ..engine.result import METRIC_NAMES
from .draw import (FAINT_CHAINS, Figure, legend_below, metric_panel, models_by_generation, rank_frequency_figure,
                   text_panel)
from .rundir import PLOTS, Run, atomic_file, load_run

FORMATS = ("png",)


def _figure(*args, **kwargs):
    return Figure(*args, **kwargs)


def _save(fig, folder: str, name: str, formats) -> list[str]:
    paths = []
    for fmt in formats:
        path = os.path.join(folder, f"{name}.{fmt}")
        with atomic_file(path) as f:
            fig.savefig(f, format=fmt, dpi=120 if fmt == "png" else None, bbox_inches="tight")
        paths.append(path)
    return paths


def _title(run: Run) -> str:
    s = run.result.settings
    cfg = run.config
    init = cfg.get("initial_description") or ""
    return (f"{s.get('regime', '?')}  ·  {init + '  ·  ' if init else ''}{run.result.chains} chains × "
            f"{run.result.generations} generations")


def plot_traces(run: Run, folder: str, formats=FORMATS) -> list[str]:
    """Metric traces: mean with 95% CI band, a few chains faint, theory overlaid."""
    res = run.result
    theory = run.theory
    metrics = [m for m in METRIC_NAMES if m in res.summary] + [m for m in res.summary if m not in METRIC_NAMES]
    cols = 4
    rows = (len(metrics) + cols - 1) // cols
    fig = _figure(figsize=(4.2 * cols, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, m in zip(axes, metrics):
        traces = res.traces.get(m) if res.traces is not None else None
        metric_panel(ax, m, res.summary[m], traces, theory.curves.get(m, []), faint=FAINT_CHAINS, legend=False,
                     sentence=True)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    legend_below(fig, ncol=6)
    fig.suptitle(_title(run), fontsize=10)
    return _save(fig, folder, "traces", formats)


def plot_collapse(run: Run, folder: str, formats=FORMATS) -> list[str]:
    """Collapse times: the histogram of the chains that collapsed with the censored ones counted beside it, and
    the Kaplan–Meier survival curve; both against the exact theory where it applies."""
    fig = collapse_figure(run.result, run.theory, title=_title(run))
    return _save(fig, folder, "collapse", formats)


def collapse_figure(res, theory, title: str = ""):
    """The collapse-time figure of a result ``res`` (``collapse_time`` ``(chains,)`` int, -1 when censored)
    with the exact ``theory`` (:class:`jaxcollapse.stats.lookup.Theory`).

    Left: the histogram of the observed collapse times, and the means that can be compared: the mean of the
    collapsed chains alone (biased low: it leaves the censored chains out), the Kaplan–Meier restricted mean
    ``E[min(T, G)]`` with its 95% interval against its exact value (the area under the exact survival curve),
    and the exact ``E[T]`` of the uncensored chain. Right: the Kaplan–Meier ``P(T > m)`` with its interval
    against the exact Wright–Fisher curve and Theorem 1's bounds."""
    from ..stats.analysis import kaplan_meier

    big_g = res.generations
    t = np.asarray(res.collapse_time)
    done = t >= 0
    k = int(done.sum())
    col = theory.collapse
    exact = theory.curves.get("collapsed", [])[:1]
    if not k and not exact and "prob_low" not in col:   # a survival curve of 1 throughout: only the sentence
        fig = _figure(figsize=(9, 2.2), layout="constrained")
        text_panel(fig.subplots(), f"No chain collapsed within {big_g} generations: all {res.chains:,} are "
                   "censored, and no exact result applies to this run.", width=90)
        if title:
            fig.suptitle(title, fontsize=10)
        return fig
    fig = _figure(figsize=(12, 4.6), layout="constrained")
    ax_h, ax_s = fig.subplots(1, 2)
    km = kaplan_meier(np.where(done, t, big_g), done, horizon=big_g)
    censored = f"{res.chains - k:,} of {res.chains:,} chains ({100 * (1 - k / res.chains):.1f}%) not collapsed by " \
               f"generation {big_g} (censored)"
    if k:
        obs = t[done]
        bins = np.arange(0, big_g + 2) - 0.5 if big_g <= 100 else np.linspace(-0.5, big_g + 0.5, 51)
        ax_h.hist(obs, bins=bins, color="C0", alpha=0.75, label=f"collapse times of the {k:,} collapsed chains")
        ax_h.set_xlim(-0.5, big_g + 0.5)
        ax_h.set_xlabel("collapse time T (generation)")
        ax_h.set_ylabel("chains")
        ax_h.set_title(f"collapse times; {censored}", fontsize=9, wrap=True)
        ax_h.grid(alpha=0.3)
        lines = [(float(obs.mean()), f"mean of the collapsed chains only = {obs.mean():.1f} (censored left out)",
                  "0.35", (0, (4, 2)))]
        lines.append((km.restricted_mean, f"Kaplan–Meier restricted mean E[min(T, {big_g})] = "
                      f"{km.restricted_mean:.1f} ± {1.96 * km.restricted_mean_se:.1f}", "C0", "-"))
        if exact:
            rmst = float(np.sum(1.0 - np.asarray(exact[0].values, np.float64)[:big_g]))
            lines.append((rmst, f"exact E[min(T, {big_g})] = {rmst:.1f}", "C3", ":"))
        for key, label, color, ls in (("expected", "exact E[T] (no censoring)", "C3", "-"),
                                      ("littler", "Littler's E[T] (approx.)", "C1", "--"),
                                      ("bound_low", "Theorem 1 lower bound on E[T]", "0.3", "-."),
                                      ("bound_high", "Theorem 1 upper bound on E[T]", "0.3", (0, (1, 3)))):
            if key in col:
                x = float(col[key])
                lines.append((x, f"{label} = {x:.4g}" + ("" if x <= big_g * 1.05 else " (off scale)"), color, ls))
        for x, label, color, ls in lines:
            if x <= big_g * 1.05:
                ax_h.axvline(x, color=color, ls=ls, lw=1.5, label=label)
            else:
                ax_h.plot([], [], color=color, ls=ls, lw=1.5, label=label)
        ax_h.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    else:
        sentence = f"No chain collapsed within {big_g} generations: all {res.chains:,} are censored."
        if "expected" in col:
            sentence += f" The exact E[T] is {float(col['expected']):.4g} generations."
        text_panel(ax_h, sentence, width=44)
    x = np.append(km.time, big_g)
    ax_s.step(x, np.append(km.survival, km.survival[-1]), where="post", color="C0", lw=1.6,
              label="Kaplan–Meier P(T > m)")
    ax_s.fill_between(x, np.append(km.ci_low, km.ci_low[-1]), np.append(km.ci_high, km.ci_high[-1]), step="post",
                      color="C0", alpha=0.3, lw=0, label="its 95% CI")
    gens = np.arange(big_g + 1)
    for c in exact:
        ax_s.plot(gens, 1 - c.values, color="C3", lw=1.2, ls="--", label=c.label)
    if "prob_low" in col:
        ax_s.plot(gens, 1 - col["prob_low"], color="0.3", ls=":", lw=1.2, label="Theorem 1 bounds")
        ax_s.plot(gens, 1 - col["prob_high"], color="0.3", ls=":", lw=1.2)
    ax_s.set_ylim(-0.02, 1.02)
    ax_s.set_xlim(0, big_g)
    ax_s.set_xlabel("generation m")
    ax_s.set_ylabel("P(not collapsed by m)")
    ax_s.set_title("survival of the collapse time (censored at the last generation)", fontsize=9)
    ax_s.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax_s.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_contexts(run: Run, folder: str, formats=FORMATS) -> list[str]:
    """Per-context collapse: share of contexts collapsed, median collapse times, per-context drift."""
    from .corpus import show_label
    from .rundir import context_stats

    res, init = run.result, run.initial
    t = res.context_collapse_time
    big_g = res.generations
    w = np.asarray(init.weights)
    gens = np.arange(big_g + 1)
    tt = np.where(t >= 0, t, big_g + 1)
    # share of contexts collapsed by generation m, averaged over chains (weighted and unweighted)
    hist = np.zeros((big_g + 2,))
    hist_w = np.zeros((big_g + 2,))
    for j in range(t.shape[1]):
        b = np.bincount(tt[:, j], minlength=big_g + 2)[: big_g + 2]
        hist += b
        hist_w += w[j] * b
    share = np.cumsum(hist)[: big_g + 1] / t.size
    share_w = np.cumsum(hist_w)[: big_g + 1] / t.shape[0]
    drift = "context_mean_l1_initial" in run.arrays
    fig = _figure(figsize=(15 if drift else 10, 4), layout="constrained")
    axes = fig.subplots(1, 3 if drift else 2)
    ax = axes[0]
    ax.plot(gens, share_w, color="C0", label="weighted by context frequency")
    ax.plot(gens, share, color="C1", ls="--", label="unweighted")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("generation")
    ax.set_ylabel("share of contexts collapsed")
    ax.set_title("contexts collapsed (mean over chains)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    st = context_stats(t, res.collapse_token, init, big_g)
    ax = axes[1]
    med = st.median_time[(st.support >= 2) & np.isfinite(st.median_time)]
    not_reached = int(((st.support >= 2) & np.isnan(st.median_time)).sum())
    if med.size:
        ax.hist(med, bins=min(40, max(5, med.size // 3)), color="C0", alpha=0.8)
        ax.set_xlabel("median collapse time of the context (generation)")
        ax.set_ylabel("contexts")
        ax.set_title(f"{med.size} contexts with a median ≤ {big_g}; {not_reached} beyond", fontsize=10)
        ax.grid(alpha=0.3)
    else:
        text_panel(ax, f"No context collapses in half of the chains within {big_g} generations: the median "
                   f"collapse time of all {not_reached} contexts with two tokens or more lies beyond {big_g}.",
                   width=40)
    if drift:
        ax = axes[2]
        l1 = run.arrays["context_mean_l1_initial"]
        top = np.argsort(-w, kind="stable")[:8]
        for j in top:
            label = show_label(init.context_labels[j]) if init.context_labels else str(j)
            ax.plot(gens, l1[:, j], lw=0.9, label=f"'{label}' (w {w[j]:.3f})")
        ax.plot(gens, np.nanmean(l1, axis=1), color="k", lw=2, label="average over contexts")
        ax.plot(gens, l1 @ w, color="k", lw=2, ls="--", label="weighted by frequency")
        ax.set_xlabel("generation")
        ax.set_ylabel("mean ‖p − p⁽⁰⁾‖₁ of the context")
        ax.set_title("L1 drift of next-token distributions", fontsize=10)
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        ax.grid(alpha=0.3)
    fig.suptitle(_title(run), fontsize=10)
    return _save(fig, folder, "contexts", formats)


def barycentric(p: np.ndarray) -> np.ndarray:
    """2-D coordinates ``(..., 2)`` of 3-token distributions ``(..., 3)`` in the equilateral triangle."""
    p = np.asarray(p, np.float64)
    x = p[..., 1] + 0.5 * p[..., 2]
    y = (np.sqrt(3) / 2) * p[..., 2]
    return np.stack([x, y], axis=-1)


def plot_simplex(run: Run, folder: str, formats=FORMATS) -> list[str]:
    """The paper's Figure 1: trajectories in the 3-token simplex, coloured by generation."""
    traj = run.arrays.get("trajectories")
    if traj is None or traj.shape[-1] != 3:
        return []
    k, width, c, _ = traj.shape
    init = run.initial
    fig = _figure(figsize=(6.5, 5.8), layout="constrained")
    ax = fig.subplots()
    corners = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="k", lw=1)
    labels = init.labels if init is not None and init.labels else ("token 0", "token 1", "token 2")
    from .corpus import show_label

    for (x, y), lab, ha, va in zip(corners[:3], labels, ("right", "left", "center"), ("top", "top", "bottom")):
        ax.text(x, y, f" {show_label(str(lab))} ", ha=ha, va=va, fontsize=10)
    gens = np.arange(width)
    if c == 1:
        pts = traj[:, :, 0, :]                      # (chains, G+1, 3)
        what = f"{k} chains"
    else:
        pts = np.moveaxis(traj[0, :, : min(c, 100), :], 1, 0)  # (contexts, G+1, 3) of chain 0
        what = f"{pts.shape[0]} contexts of chain 0"
    xy = barycentric(pts)
    for line in xy:
        ax.plot(line[:, 0], line[:, 1], color="0.6", lw=0.5, alpha=0.6, zorder=1)
    sc = ax.scatter(xy[..., 0].ravel(), xy[..., 1].ravel(), c=np.broadcast_to(gens, xy.shape[:2]).ravel(),
                    cmap="viridis", s=9, zorder=2)
    if init is not None:
        p0 = barycentric(np.asarray(init.probs)[: min(c, 100)])
        ax.scatter(p0[:, 0], p0[:, 1], marker="*", s=90 if c == 1 else 30, color="C3", edgecolor="k", lw=0.4,
                   zorder=3, label="p⁽⁰⁾")
        ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=ax, label="generation", shrink=0.8)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{run.result.settings.get('regime', '')}: {what} in the simplex", fontsize=10)
    return _save(fig, folder, "simplex", formats)


def plot_rank_frequency(run: Run, folder: str, formats=FORMATS) -> list[str]:
    """Rank–frequency of the truth and the models (final models, and saved trajectories when there are any)."""
    res = run.result
    if res.final is None:
        return []
    models = models_by_generation(res.final, res.generations, run.arrays.get("trajectories"))
    init = run.initial
    fig = rank_frequency_figure(models, None if init is None else init.probs, None if init is None else init.weights,
                                title=_title(run))
    return _save(fig, folder, "rank_frequency", formats)


def plot_run(run, out_dir: str | None = None, formats=FORMATS) -> list[str]:
    """Draw every figure of a run (a :class:`~jaxcollapse.io.rundir.Run` or its directory) into
    ``out_dir`` (default ``<run>/plots``); returns the files written."""
    if not isinstance(run, Run):
        run = load_run(run)
    folder = out_dir or os.path.join(run.path, PLOTS)
    os.makedirs(folder, exist_ok=True)
    files = plot_traces(run, folder, formats)
    files += plot_collapse(run, folder, formats)
    if run.initial is not None and run.result.context_collapse_time.shape[1] > 1:
        files += plot_contexts(run, folder, formats)
    files += plot_simplex(run, folder, formats)
    files += plot_rank_frequency(run, folder, formats)
    return files
