"""Curves over generations for several regimes: the paper's Figure 6 (history regimes) and two figures beyond the
paper (data regimes; decoding before generation), each against the exact theory where one applies
(:func:`jaxcollapse.stats.lookup.regime_theory`)."""

from __future__ import annotations

import pathlib
import time

import numpy as np

from ..stats import analysis
from ..io.draw import legend_below, text_panel
from .figures import (CHAINS, Table, band, check_scale, compare, new_figure, num, p_of, run_study, scaled,
                      series_key, settings_of, test, write, zipf52)


# ------------------------------------------------------------------------------------------------
# curves over generations for several regimes (Figure 6, regimes, decoding)


def _curves(figure, number, out, title, runs, *, scale, seed, chains, generations, progress, pdf, claim,
            settings, diversity=False):
    """Run each ``(name, initial, regime, decoding)`` of ``runs``; plot ``E σ_m`` (or ``E[1 - σ_m]``) and
    ``P(collapsed by m)``, each with its exact curve where the theory lookup has one."""
    from ..stats.lookup import regime_theory

    scale = check_scale(scale)
    chains = chains or scaled(CHAINS, scale, 20)
    g = scaled(generations, min(scale, 1.0), 5)
    table = Table(figure)
    fig, axes = new_figure(2, f"{title} · {chains:,} chains")
    gens = np.arange(g + 1)
    heads = {}
    t0 = time.perf_counter()
    quantity = "diversity" if diversity else "collision"
    for i, (name, init, regime, decoding) in enumerate(runs):
        res = run_study(series_key(seed, number, i), init, regime, progress, f"{figure}: {name}", chains=chains,
                        generations=g, decoding=decoding, keep_final=False)
        p = p_of(init)
        exact = regime_theory(regime, p, g, decoding=decoding, expected_time=False)
        ex_coll, ex_col = exact.values("collision"), exact.values("collapsed")
        vals = res.traces["collision"]
        if diversity:
            vals = 1.0 - vals
            ex_coll = None if ex_coll is None else 1.0 - ex_coll
        r = table.mean(name, "generation", gens, quantity, vals, ex_coll)
        if ex_coll is not None:
            table.add(name, "generation", gens, quantity, "exact", ex_coll)
        ct = res.collapse_time
        hits = np.array([((ct >= 0) & (ct <= m)).sum() for m in gens])
        table.proportion(name, "generation", gens, "P(T<=m)", hits, chains, ex_col)
        if ex_col is not None:
            table.add(name, "generation", gens, "P(T<=m)", "exact", ex_col)
        c = f"C{i}"
        band(axes[0], gens, r, c, name)
        if ex_coll is not None:
            axes[0].plot(gens, ex_coll, "k--", lw=0.9)
        ci = analysis.wilson_ci(hits, chains)
        axes[1].plot(gens, hits / chains, color=c, lw=1.2, label=name)
        axes[1].fill_between(gens, ci.low, ci.high, color=c, alpha=0.3, lw=0)
        if ex_col is not None:
            axes[1].plot(gens, ex_col, "k--", lw=0.9)
        h = {quantity + "_final": num(r.mean[-1]), quantity + "_final_ci": [num(r.ci_low[-1]),
                                                                            num(r.ci_high[-1])],
             "collapsed_final": num(hits[-1] / chains), "collapsed_final_ci": [num(ci.low[-1]),
                                                                                num(ci.high[-1])],
             "wall_time_s": round(res.wall_time, 2)}
        if ex_coll is not None:
            h["exact_" + quantity + "_final"] = num(ex_coll[-1])
            h["test_" + quantity] = test(compare(vals, ex_coll))
        if ex_col is not None:
            h["exact_collapsed_final"] = num(ex_col[-1])
        obs = ct >= 0
        if obs.any():
            km = analysis.kaplan_meier(np.where(obs, ct, g), obs)
            h["median_collapse_time"] = num(km.median)
        heads[name] = h
    if any("exact_" + quantity + "_final" in h for h in heads.values()):
        axes[0].plot([], [], "k--", lw=0.9, label="exact")
    axes[0].set(xlabel="generation m", ylabel="E[1 − Σ p²]" if diversity else "E[Σ p²]")
    axes[0].set_title("diversity 1 − collision probability (mean, 95% CI)" if diversity else
                      "collision probability (mean, 95% CI)", fontsize=9)
    axes[0].set_xlim(0, g)
    if any(h["collapsed_final"] for h in heads.values()) or any(h.get("exact_collapsed_final") for h in heads.values()):
        axes[1].set(xlabel="generation m", ylabel="P(collapsed by m)", ylim=(-0.02, 1.02), xlim=(0, g))
        axes[1].set_title("share of chains collapsed (Wilson 95% CI)", fontsize=9)
    else:                                       # nothing but zeros to draw
        axes[1].cla()
        text_panel(axes[1], f"No chain of any series collapsed within {g} generations ({chains:,} chains each).",
                   width=40)
    legend_below(fig, ncol=4)
    headline = {"figure": figure, "claim": claim, "settings": settings_of(scale, seed, chains, g, **settings),
                "series": heads, "wall_time_s": round(time.perf_counter() - t0, 2)}
    return write(out, figure, fig, table, headline, pdf)


FIG6_N, FIG6_GENERATIONS, FIG6_WINDOWS = 10, 500, (1, 2, 5, 10)
FIG6_RANDOM_HISTORY = True


def fig6(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
         pdf: bool = False) -> dict:
    """Paper Figure 6: most-recent-K (``K`` in ``FIG6_WINDOWS``, chosen; ``⌊n/K⌋`` samples from each of the last
    ``K`` models) and random history, ``n = 10``, 500 generations, Zipf(1.1) on 52 tokens. ``K = 1`` is the
    fully synthetic chain, with its exact ``E σ_m`` (Theorem 1) and ``P(collapsed by m)``."""
    from ..core.regimes import most_recent, random_history

    init = zipf52()
    runs = [(f"most recent K={k}", init, most_recent(FIG6_N, k), None) for k in FIG6_WINDOWS]
    if FIG6_RANDOM_HISTORY:
        runs.append(("random history", init, random_history(FIG6_N), None))

    return _curves("fig6", 6, out, f"Figure 6 · history regimes · n = {FIG6_N} · zipf(1.1) on 52 tokens", runs,
                   scale=scale, seed=seed, chains=chains, generations=FIG6_GENERATIONS, progress=progress,
                   pdf=pdf, claim="reusing older generations slows collapse; random history "
                   "(which keeps drawing real data) does not collapse", settings={"n": FIG6_N,
                                                                                 "windows": list(FIG6_WINDOWS)})


REGIMES_SIZE, REGIMES_GENERATIONS = 100, 200
#: The series of the ``regimes`` figure, by name.
REGIMES_SERIES = ("fully synthetic", "fresh real, 50% synthetic", "fresh real, 90% synthetic", "accumulate",
                  "accumulate-subsample")


def regimes(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
            pdf: bool = False) -> dict:
    """Beyond the paper: which data regimes collapse. Zipf(1.1) on 52 tokens, 100 samples per generation,
    200 generations: fully synthetic, fresh real data with a synthetic share of 50% and 90%, accumulate
    (100 real, 100 synthetic appended per generation) and accumulate-subsample (a training set of 100 drawn
    without replacement from that pool). Plotted: the diversity ``E[1 - σ_m]`` with its exact value (fully
    synthetic: Theorem 1; fresh real: ``1 - S_0 - d_m``; accumulate: Gerstgrasser's product;
    accumulate-subsample: :func:`jaxcollapse.theory.accumulate_subsample_collision`) and ``P(collapsed by m)``."""
    from ..core.regimes import accumulate, accumulate_subsample, fresh_real, fully_synthetic

    init = zipf52()
    m = REGIMES_SIZE
    runs = [("fully synthetic", init, fully_synthetic(m), None),
            ("fresh real, 50% synthetic", init, fresh_real(m, 0.5), None),
            ("fresh real, 90% synthetic", init, fresh_real(m, 0.9), None),
            ("accumulate", init, accumulate(m, m), None),
            ("accumulate-subsample", init, accumulate_subsample(m, m, m), None)]
    runs = [r for r in runs if r[0] in REGIMES_SERIES]

    return _curves("regimes", 7, out, f"Data regimes · {m} samples per generation · zipf(1.1) on 52 tokens", runs,
                   scale=scale, seed=seed, chains=chains, generations=REGIMES_GENERATIONS, progress=progress,
                   pdf=pdf, diversity=True,
                   claim="only the fully synthetic regime collapses; fresh real data and accumulation keep a "
                   "positive diversity", settings={"size": m})


DECODING_N, DECODING_GENERATIONS = 100, 200
#: The series of the ``decoding`` figure, by name.
DECODING_SERIES = ("plain sampling", "temperature 0.9", "temperature 0.7", "top-k 20", "top-k 5",
                   "fresh real 50%, temperature 0.7")


def decoding(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
             pdf: bool = False) -> dict:
    """Beyond the paper: generation-time decoding. Fully synthetic, ``n = 100``, 200 generations, Zipf(1.1) on
    52 tokens, each model decoded before it generates: none (exact Theorem 1 curves), temperature 0.9 and
    0.7, top-k 20 and 5; and fresh real data with a 50% synthetic share decoded at temperature 0.7 (real data
    does not stop a decoded model from narrowing). Plotted: ``E σ_m`` and ``P(collapsed by m)``."""
    from ..core.regimes import Decoding, fresh_real, fully_synthetic

    init = zipf52()
    n = DECODING_N
    runs = [("plain sampling", init, fully_synthetic(n), None),
            ("temperature 0.9", init, fully_synthetic(n), Decoding(temperature=0.9)),
            ("temperature 0.7", init, fully_synthetic(n), Decoding(temperature=0.7)),
            ("top-k 20", init, fully_synthetic(n), Decoding(top_k=20)),
            ("top-k 5", init, fully_synthetic(n), Decoding(top_k=5)),
            ("fresh real 50%, temperature 0.7", init, fresh_real(n, 0.5), Decoding(temperature=0.7))]
    runs = [r for r in runs if r[0] in DECODING_SERIES]

    return _curves("decoding", 8, out, f"Decoding before generation · n = {n} · zipf(1.1) on 52 tokens", runs,
                   scale=scale, seed=seed, chains=chains, generations=DECODING_GENERATIONS, progress=progress,
                   pdf=pdf, claim="temperature < 1 and top-k speed collapse up",
                   settings={"n": n})


