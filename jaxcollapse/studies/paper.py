"""The paper's figures (Seddik et al., arXiv 2404.05090), rerun at scale with confidence intervals and theory.

``FIGURES`` maps a name to a function ``(out: pathlib.Path, *, scale=1.0, seed=0, progress=None) -> dict`` that
simulates one experiment, writes ``out/NAME.png`` (the figure), ``out/NAME.csv`` (every plotted number, tidy)
and ``out/NAME.json`` (headline numbers, also returned). ``scale`` multiplies the chain and generation counts
(``scale=0.01`` for a quick look); ``progress`` is called with one-line status messages (``str``).

The CSV has one value per row: ``figure, series, x_name, x, quantity, kind, value, ci_low, ci_high, se,
chains, z``. ``kind`` is ``simulated`` (a mean over chains with its 95% t-interval, or a proportion with its
Wilson interval; ``se`` its standard error) or the name of a theory curve (``exact``, ``printed``,
``bound_lower``, ``bound_upper``, ``littler``, ``cauchy_schwarz``, ``recursion_bound``); ``z = (simulated - exact) / se`` on the
simulated rows that have an exact curve.

Distributions with a support smaller than the vocabulary are simulated on their support only: a token of
probability zero is never drawn, so the other 548 tokens of the paper's ``s = 600`` change no model, metric
or collapse time (the law of every reported quantity is identical); it makes the runs 1.5-2x faster.
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Callable

import numpy as np

from ..stats import analysis, theory
from ..io.draw import legend_below
from .figures import (CHAINS, COLUMNS, Table, band, check_scale, compare, new_figure, num,  # noqa: F401
                      p_of, run_study, say, scaled, series_key, settings_of, test, write, zipf52)
from .history import decoding, fig6, regimes


# ------------------------------------------------------------------------------------------------
# Figure 1: 81 three-token contexts drift to the vertices of the simplex


FIG1_CONTEXTS, FIG1_VOCAB, FIG1_N, FIG1_GENERATIONS = 81, 3, 1000, 40
FIG1_SNAPSHOTS = (0, 10, 20, 40)


def fig1(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
         pdf: bool = False) -> dict:
    """Paper Figure 1: fully synthetic trigram-style model, ``s = 3`` tokens, ``ℓ = 4`` (81 contexts), ``n =
    1000`` samples per generation split over the contexts by their weights (about 12 each).

    The paper draws its truth without stating it: each context's distribution here is Dirichlet(1) on the 3
    tokens (NumPy seed 0), contexts equally weighted. Plotted: one chain's 81 contexts on the simplex at
    generations 0, 10, 20, 40; the share of contexts collapsed and the context-averaged collision probability
    over ``CHAINS`` chains with 95% intervals, against their exact values (Wright–Fisher per context)."""
    from ..core.initial import dirichlet, split_sizes
    from ..core.regimes import fully_synthetic

    scale = check_scale(scale)
    chains = chains or scaled(CHAINS, scale, 20)
    g = scaled(FIG1_GENERATIONS, min(scale, 1.0), 10) if scale < 1 else FIG1_GENERATIONS
    truth = dirichlet(FIG1_VOCAB, concentration=1.0, contexts=FIG1_CONTEXTS, seed=0)
    sizes = split_sizes(FIG1_N, np.asarray(truth.weights))
    regime = fully_synthetic(sizes)
    res = run_study(series_key(seed, 1, 0), truth, regime, progress, "fig1", chains=chains, generations=g,
                    keep_final=False, sampler="resample")
    probs = np.asarray(truth.probs)
    weights = np.asarray(truth.weights)
    ctx_collapsed = np.stack([theory.collapsed_probability(probs[c], int(sizes[c]), g)
                              for c in range(FIG1_CONTEXTS)])
    exact_share = ctx_collapsed.mean(axis=0)
    exact_coll = sum(weights[c] * theory.fully_synthetic_collision(probs[c], int(sizes[c]), g)
                     for c in range(FIG1_CONTEXTS))
    gens = np.arange(g + 1)
    ct = res.context_collapse_time                                           # (chains, contexts), -1: censored
    share = np.stack([((ct >= 0) & (ct <= m)).mean(axis=1) for m in gens], axis=1)
    table = Table("fig1")
    r_share = table.mean("all contexts", "generation", gens, "share_collapsed", share, exact_share)
    table.add("all contexts", "generation", gens, "share_collapsed", "exact", exact_share)
    coll = res.traces["collision"]
    r_coll = table.mean("all contexts", "generation", gens, "collision", coll, exact_coll)
    table.add("all contexts", "generation", gens, "collision", "exact", exact_coll)
    # one chain's contexts at a few generations (chain 0 of its own key)
    from ..engine.simulate import trajectories

    models = trajectories(series_key(seed, 1, 1), truth, regime, chains=1, generations=max(FIG1_SNAPSHOTS),
                          sampler="tokens")[0]
    snaps = {m: models[m] for m in FIG1_SNAPSHOTS}
    for m, mat in snaps.items():
        for c in range(FIG1_CONTEXTS):
            for tok in range(FIG1_VOCAB):
                table.add(f"chain 0, context {c}", "generation", [m], f"p[{tok}]", "simulated", mat[c, tok])
    cmp_share = compare(share, exact_share)
    cmp_coll = compare(coll, exact_coll)
    at = {m: int(m) for m in (10, 20, 40) if m <= g}
    headline = {
        "figure": "fig1", "claim": "fully synthetic: the 81 context distributions drift to the simplex vertices "
        "by generations 10-40",
        "settings": settings_of(scale, seed, chains, g, vocab=FIG1_VOCAB, contexts=FIG1_CONTEXTS, n_total=FIG1_N,
                              n_per_context=[int(sizes.min()), int(sizes.max())],
                              truth="Dirichlet(1) per context, NumPy seed 0, equal context weights (chosen: the "
                              "paper does not state its truth)"),
        "share_collapsed": {str(m): {"simulated": num(r_share.mean[m]), "ci": [num(r_share.ci_low[m]),
                            num(r_share.ci_high[m])], "exact": num(exact_share[m])} for m in at},
        "collision": {str(m): {"simulated": num(r_coll.mean[m]), "exact": num(exact_coll[m])} for m in at},
        "test_share_collapsed": test(cmp_share), "test_collision": test(cmp_coll),
        "wall_time_s": round(res.wall_time, 2),
    }
    fig, axes = new_figure(3, f"Figure 1 · fully synthetic · 81 contexts × 3 tokens · n = {FIG1_N} in total · "
                        f"{chains:,} chains")
    from ..io.plots import barycentric

    ax = axes[0]
    tri = barycentric(np.eye(3))
    ax.plot(*np.vstack([tri, tri[:1]]).T, color="0.5", lw=0.8)
    for i, (m, mat) in enumerate(sorted(snaps.items())):
        xy = barycentric(mat)
        ax.scatter(xy[:, 0], xy[:, 1], s=10, color=f"C{i}", label=f"generation {m}", alpha=0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("one chain's 81 contexts in the simplex", fontsize=9)
    band(axes[1], gens, r_share, "C0", "simulated: share of contexts collapsed (95% CI)")
    axes[1].plot(gens, exact_share, "k--", lw=1, label="exact (Wright–Fisher)")
    axes[1].set(xlabel="generation m", ylabel="share of contexts collapsed", ylim=(-0.02, 1.02))
    axes[1].set_title("contexts collapsed (mean over chains)", fontsize=9)
    band(axes[2], gens, r_coll, "C1", "simulated: collision probability (95% CI)")
    axes[2].plot(gens, exact_coll, "k:", lw=1.2, label="exact (Theorem 1)")
    axes[2].set(xlabel="generation m", ylabel="Σ p² (mean over contexts)")
    axes[2].set_title("collision probability", fontsize=9)
    legend_below(fig, ncol=4)
    return write(out, "fig1", fig, table, headline, pdf)


# ------------------------------------------------------------------------------------------------
# Figure 2: collapse time against n


FIG2_NS = (10, 50, 100, 200, 300, 400)
FIG2_CDF_N = 100


def _fig2_distributions():
    from ..core.initial import geometric, uniform, zipf

    return {"zipf(1.1) on 52": zipf(52, 1.1), "uniform on 10": uniform(10), "geometric(0.5) on 10":
            geometric(10, 0.5)}


#: Chain-generations below which a round of :func:`collapse_times` is lengthened: such a round costs less than
#: its compilation (a few seconds of CPU, about a million chain-generations).
ROUND_BUDGET = 1_000_000


def collapse_times(key, initial, n: int, chains: int, progress=None, label: str = "") -> np.ndarray:
    """Collapse times ``T`` of ``chains`` fully synthetic chains run until every one has collapsed, ``(chains,)``.

    The engine runs all chains for about Littler's ``E[T]`` generations (chain ``i`` keyed by ``fold_in(key,
    i)``); the chains still alive then (about a third) are run again, with the same keys and so the same
    trajectories, for twice as many generations, and so on until none is left. A run of fixed length long
    enough for the tail of ``T`` would cost several ``E[T]`` per chain; this costs about ``1.7 E[T]``.

    Each round is a compilation of its own, which costs more than a small round: when the first round would
    be fewer than ``ROUND_BUDGET`` chain-generations it is lengthened to the power of 2 nearest above
    ``ROUND_BUDGET / chains`` generations, at most 256 times Littler's ``E[T]`` (chains that have all
    collapsed skip their remaining generations, so the extra length is almost free). A few hundred chains
    then finish in one round, and truths of the same support share their compiled programs. ``T`` of a chain
    does not depend on the rounds (the same key gives the same trajectory), only the time does."""
    from ..core.regimes import fully_synthetic

    p = p_of(initial)
    g = max(2, int(math.ceil(theory.littler_collapse_time(p, n))))
    t = np.full(chains, -1, np.int64)
    ids = np.arange(chains)
    if chains * g < ROUND_BUDGET:
        g = max(g, min(1 << math.ceil(math.log2(ROUND_BUDGET / chains)), 256 * g))
    while ids.size:
        res = run_study(key, initial, fully_synthetic(n), progress, label, chains=ids.size, generations=g,
                        keep_traces=False, keep_final=False, sampler="resample", chain_ids=ids)
        t[ids] = res.collapse_time
        ids = ids[res.collapse_time < 0]
        g *= 2
    return t


#: The truths of Figure 2, by name (a function, so that the distributions are built when it runs).
FIG2_DISTRIBUTIONS = _fig2_distributions


def fig2(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
         pdf: bool = False) -> dict:
    """Paper Figure 2: fully synthetic, mean collapse time ``T`` against the sample size ``n``, for three
    truths of different ``S_0`` and support, with Theorem 1's bounds, Littler's approximation and the exact
    ``E[T]``; and ``P(T <= m)`` at ``n = 100`` against the exact Wright–Fisher curve and Theorem 1's bounds.

    Chosen (the paper gives ``n ∈ {10, 50, 100, ..., 400}`` and "several p" on ``s = 600`` tokens): ``n`` in
    ``FIG2_NS`` (the end points and four values between, to keep ``all`` under 15 minutes on 2 CPU cores)
    and the truths Zipf(1.1) on 52 tokens (``S_0 = 0.0998``), uniform on 10 (``S_0 = 0.1``: same ``S_0``,
    other support) and geometric(0.5) on 10 (``S_0 = 0.334``). Every chain is run to collapse
    (:func:`collapse_times`), so no time is censored. With ``scale < 1`` only the ``n`` up to
    ``max(50, 400 · scale)`` are run."""
    scale = check_scale(scale)
    chains = chains or scaled(CHAINS, scale, 20)
    ns = [n for n in FIG2_NS if n <= max(50, 400 * scale)]
    dists = FIG2_DISTRIBUTIONS()
    table = Table("fig2")
    headline = {"figure": "fig2", "claim": "fully synthetic: the mean collapse time grows about linearly in n, "
                "faster collapse for larger S_0; Theorem 1 lower-bounds it",
                "settings": settings_of(scale, seed, chains, None, ns=ns, distributions=list(dists)),
                "distributions": {}}
    fig, axes = new_figure(2, f"Figure 2 · fully synthetic · collapse time · {chains:,} chains per point")
    t0 = time.perf_counter()
    cdf_times = None
    cdf_n = FIG2_CDF_N if FIG2_CDF_N in ns else ns[-1]          # a smaller scale runs fewer n: the largest one
    for d, (name, init) in enumerate(dists.items()):
        p = p_of(init)
        samples = np.empty((chains, len(ns)))
        for j, n in enumerate(ns):
            samples[:, j] = collapse_times(series_key(seed, 2, 100 * d + j), init, n, chains, progress,
                                           f"fig2: {name}, n={n}")
            if d == 0 and n == cdf_n:                           # the first truth's P(T <= m) panel
                cdf_times = samples[:, j].copy()
        exact = np.array([theory.expected_collapse_time(p, n) for n in ns])
        littler = np.array([theory.littler_collapse_time(p, n) for n in ns])
        bounds = np.array([theory.theorem1_collapse_time_bounds(p, n) for n in ns])
        res = table.mean(name, "n", ns, "collapse_time", samples, exact)
        table.add(name, "n", ns, "collapse_time", "exact", exact)
        table.add(name, "n", ns, "collapse_time", "littler", littler)
        table.add(name, "n", ns, "collapse_time", "bound_lower", bounds[:, 0])
        table.add(name, "n", ns, "collapse_time", "bound_upper", bounds[:, 1])
        cmp = compare(samples, exact)
        headline["distributions"][name] = {
            "S0": num(theory.collision(p)), "support": int(np.count_nonzero(p)),
            "mean_T": {str(n): num(res.mean[j]) for j, n in enumerate(ns)},
            "mean_T_ci": {str(n): [num(res.ci_low[j]), num(res.ci_high[j])] for j, n in enumerate(ns)},
            "exact_E_T": {str(n): num(v) for n, v in zip(ns, exact)},
            "littler": {str(n): num(v) for n, v in zip(ns, littler)},
            "theorem1_lower": {str(n): num(v) for n, v in zip(ns, bounds[:, 0])},
            "theorem1_upper": {str(n): num(v) for n, v in zip(ns, bounds[:, 1])},
            "ratio_mean_T_to_lower": {str(n): num(res.mean[j] / bounds[j, 0]) for j, n in enumerate(ns)},
            "ratio_upper_to_mean_T": {str(n): num(bounds[j, 1] / res.mean[j]) for j, n in enumerate(ns)},
            "mean_T_per_n": {str(n): num(res.mean[j] / n) for j, n in enumerate(ns)},
            "test_exact_E_T": test(cmp),
        }
        ax = axes[0]
        color = f"C{d}"
        ax.errorbar(ns, res.mean, yerr=[res.mean - res.ci_low, res.ci_high - res.mean], fmt="o", ms=3,
                    color=color, label=f"{name} (S₀={theory.collision(p):.3f}): simulated")
        ax.plot(ns, exact, "-", color=color, lw=1, alpha=0.8)
        ax.plot(ns, littler, ":", color=color, lw=1)
        ax.plot(ns, bounds[:, 0], "--", color=color, lw=1)
    ax = axes[0]
    ax.plot([], [], "k-", lw=1, label="exact E[T]")
    ax.plot([], [], "k:", lw=1, label="Littler's approximation")
    ax.plot([], [], "k--", lw=1, label="Theorem 1 lower bound")
    ax.set(xlabel="n (samples per generation)", ylabel="mean collapse time E[T] (generations)")
    ax.set_title("mean collapse time (95% CI; every chain run to collapse)", fontsize=9)
    if cdf_times is not None:
        first = next(iter(dists))
        label = f"{first}, n={cdf_n}"
        p = p_of(dists[first])
        gmax = int(np.max(cdf_times))
        grid = np.unique(np.linspace(0, gmax, 61).astype(int))
        exact_cdf = theory.collapsed_probability(p, cdf_n, gmax)[grid]
        lower, upper = (b[grid] for b in theory.theorem1_collapse_probability_bounds(p, cdf_n, gmax))
        hits = np.array([(cdf_times <= m).sum() for m in grid])
        table.proportion(label, "generation", grid, "P(T<=m)", hits, chains, exact_cdf)
        table.add(label, "generation", grid, "P(T<=m)", "exact", exact_cdf)
        table.add(label, "generation", grid, "P(T<=m)", "bound_lower", lower)
        table.add(label, "generation", grid, "P(T<=m)", "bound_upper", upper)
        ci = analysis.wilson_ci(hits, chains)
        ax = axes[1]
        ax.plot(grid, hits / chains, color="C0", lw=1.4, label=f"simulated P(T ≤ m), {label} (Wilson 95% CI)")
        ax.fill_between(grid, ci.low, ci.high, color="C0", alpha=0.3, lw=0)
        ax.plot(grid, exact_cdf, "k--", lw=1, label="exact P(T ≤ m) (Wright–Fisher)")
        ax.plot(grid, lower, color="C3", ls="-.", lw=1, label="Theorem 1 bounds on P(T ≤ m)")
        ax.plot(grid, upper, color="C3", ls="-.", lw=1)
        ax.set(xlabel="generation m", ylabel="P(collapsed by m)", ylim=(-0.02, 1.02))
        ax.set_title(f"distribution of the collapse time, {label}", fontsize=9)
        sd = np.sqrt(exact_cdf * (1 - exact_cdf) / chains)
        with np.errstate(divide="ignore", invalid="ignore"):
            zs = np.where(sd > 0, (hits / chains - exact_cdf) / sd, 0.0)
        headline["P_collapsed_n100_max_abs_z"] = num(np.max(np.abs(zs)))
    headline["wall_time_s"] = round(time.perf_counter() - t0, 2)
    legend_below(fig, ncol=3)
    return write(out, "fig2", fig, table, headline, pdf)


# ------------------------------------------------------------------------------------------------
# Figures 3 and 4: partially synthetic


PARTIAL_N_REAL, PARTIAL_GENERATIONS = 100, 50


def _partial_series(table, name, key, init, N, n, chains, g, progress, label):
    """Simulate one partially synthetic series and add its rows; returns (summaries, headline dict)."""
    from ..core.regimes import partially_synthetic

    p = p_of(init)
    res = run_study(key, init, partially_synthetic(N, n), progress, label, chains=chains, generations=g,
                    keep_final=False, sampler="resample")
    gens = np.arange(g + 1)
    coll = res.traces["collision"]
    corrected = theory.theorem2_collision(p, N, n, g)
    printed = theory.theorem2_collision(p, N, n, g, corrected=False)
    r_coll = table.mean(name, "generation", gens, "collision", coll, corrected)
    table.add(name, "generation", gens, "collision", "exact", corrected)
    table.add(name, "generation", gens, "collision", "printed", printed)
    # E‖p^(m) - p^(1)‖² = E σ_m - E σ_1 (E[p^(m) | p^(1)] = p^(1)); estimated per chain by σ_m - σ_1
    dev = coll[:, 1:] - coll[:, 1:2]
    exact_dev = theory.partial_sq_deviation_from_first(p, N, n, g)[1:]
    r_dev = table.mean(name, "generation", gens[1:], "sq_deviation_from_first", dev, exact_dev)
    table.add(name, "generation", gens[1:], "sq_deviation_from_first", "exact", exact_dev)
    l1 = res.traces["l1_first"][:, 1:]
    r_l1 = table.mean(name, "generation", gens[1:], "l1_from_first", l1)
    cs = np.sqrt(np.count_nonzero(p) * exact_dev)
    table.add(name, "generation", gens[1:], "l1_from_first", "cauchy_schwarz", cs)
    rb = theory.partial_l1_bound(p, N, n)
    table.add(name, "generation", gens[1:], "l1_from_first", "recursion_bound", np.full(g, rb))
    cmp_c = compare(coll, corrected)
    cmp_p = compare(coll, printed)
    cmp_d = compare(dev, exact_dev)
    h = {"N": N, "n": n, "S0": num(theory.collision(p)),
         "collision_final": num(r_coll.mean[-1]), "collision_final_ci": [num(r_coll.ci_low[-1]),
                                                                         num(r_coll.ci_high[-1])],
         "theorem2_corrected_final": num(corrected[-1]), "theorem2_printed_final": num(printed[-1]),
         "sq_deviation_final": num(r_dev.mean[-1]), "sq_deviation_final_ci": [num(r_dev.ci_low[-1]),
                                                                             num(r_dev.ci_high[-1])],
         "sq_deviation_exact_final": num(exact_dev[-1]),
         "sq_deviation_limit": num(theory.partial_deviation_limit(p, N, n)),
         "l1_from_first_final": num(r_l1.mean[-1]), "l1_from_first_final_ci": [num(r_l1.ci_low[-1]),
                                                                               num(r_l1.ci_high[-1])],
         "l1_cauchy_schwarz_bound_final": num(cs[-1]), "l1_recursion_bound": num(rb),
         "test_corrected_theorem2": test(cmp_c), "test_printed_theorem2": test(cmp_p),
         "test_sq_deviation": test(cmp_d),
         "printed_minus_corrected_in_se": {"max": num(np.nanmax(np.abs(cmp_p.z - cmp_c.z))),
                                           "at_generation_2": num((printed[2] - corrected[2]) / cmp_c.se[2])
                                           if g >= 2 else None},
         "wall_time_s": round(res.wall_time, 2)}
    return (r_coll, corrected, printed, r_dev, exact_dev, r_l1, cs), h


def _partial_figure(name, title, series_list, g):
    fig, axes = new_figure(3, title)
    gens = np.arange(g + 1)
    for i, (label, (r_coll, corrected, printed, r_dev, exact_dev, r_l1, cs)) in enumerate(series_list):
        c = f"C{i}"
        band(axes[0], gens, r_coll, c, label)
        axes[0].plot(gens, corrected, "k-", lw=0.8)
        axes[0].plot(gens, printed, "k:", lw=1.0)
        # the deviation from p^(1) is 0 at generation 1: drawn from generation 2 on (log scale)
        band(axes[1], gens[2:], _rows(r_dev, slice(1, None)), c, label)
        axes[1].plot(gens[2:], exact_dev[1:], "k-", lw=0.8)
        band(axes[2], gens[1:], r_l1, c, label)
        axes[2].plot(gens[1:], cs, color=c, ls="--", lw=1.0)
    axes[0].plot([], [], "k-", lw=0.8, label="Theorem 2 (corrected, exact)")
    axes[0].plot([], [], "k:", lw=1.0, label="Theorem 2 as printed")
    axes[0].set(xlabel="generation m", ylabel=r"$E\,[\sigma_m] = E\,[\sum_i p_i^2]$")
    axes[0].set_title("collision probability", fontsize=9)
    axes[1].plot([], [], "k-", lw=0.8, label="exact squared L2 deviation")
    axes[1].set(xlabel="generation m", ylabel="E ‖p⁽ᵐ⁾ − p⁽¹⁾‖₂²", yscale="log")
    axes[1].set_title("squared L2 distance to p⁽¹⁾ (log scale)", fontsize=9)
    axes[2].plot([], [], color="0.3", ls="--", lw=1.0, label="Cauchy–Schwarz bound √(s̃ · exact E‖·‖₂²), s̃ = 52")
    axes[2].set(xlabel="generation m", ylabel="E ‖p⁽ᵐ⁾ − p⁽¹⁾‖₁", ylim=(0, None))
    axes[2].set_title("L1 distance to p⁽¹⁾ and its bound", fontsize=9)
    for a in axes:
        a.set_xlim(0 if a is axes[0] else 1, g)
    legend_below(fig, ncol=4)
    return fig


def _rows(res, index):
    """The mean and interval of ``res`` (an ``analysis.mean_ci`` result) at ``index``."""
    return res._replace(mean=np.asarray(res.mean)[index], ci_low=np.asarray(res.ci_low)[index],
                        ci_high=np.asarray(res.ci_high)[index])


FIG3_NS = (10, 50, 100, 500)


def fig3(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
         pdf: bool = False) -> dict:
    """Paper Figure 3: partially synthetic, ``N = 100`` real samples reused, ``n`` synthetic samples per
    generation for ``n`` in ``FIG3_NS`` (chosen: the paper says "several n"), 50 generations, Zipf(1.1) on 52
    tokens (``S_0 = 0.0998``). Plotted: ``E σ_m`` against Theorem 2 (corrected, exact) and as printed; the
    squared L2 deviation from ``p^(1)`` against its exact value; the L1 deviation from ``p^(1)`` with the
    bounds ``sqrt(s̃ · E‖·‖₂²)`` (Cauchy–Schwarz and Jensen, ``s̃ = 52``) and ``√(n (k - 1))/N``
    (:func:`jaxcollapse.theory.partial_l1_bound`), in the CSV."""
    scale = check_scale(scale)
    chains = chains or scaled(CHAINS, scale, 20)
    g = scaled(PARTIAL_GENERATIONS, min(scale, 1.0), 5)
    init = zipf52()
    table = Table("fig3")
    series, heads = [], {}
    for i, n in enumerate(FIG3_NS):
        name = f"N={PARTIAL_N_REAL}, n={n}"
        s, h = _partial_series(table, name, series_key(seed, 3, i), init, PARTIAL_N_REAL, n, chains, g, progress,
                               f"fig3: {name}")
        series.append((name, s))
        heads[name] = h
    fig = _partial_figure("fig3", f"Figure 3 · partially synthetic · zipf(1.1) on 52 tokens · {chains:,} "
                          "chains", series, g)
    headline = {"figure": "fig3", "claim": "partially synthetic: no collapse; the deviation from p^(1) "
                "saturates at a level that grows with n/N; Theorem 2 gives E σ_m",
                "settings": settings_of(scale, seed, chains, g, N=PARTIAL_N_REAL, ns=list(FIG3_NS),
                                      truth="zipf(1.1) on 52 tokens"),
                "series": heads, "wall_time_s": round(sum(h["wall_time_s"] for h in heads.values()), 2)}
    return write(out, "fig3", fig, table, headline, pdf)


FIG4_EXPONENTS = (0.5, 1.1, 2.0, 3.0)
FIG4_N = 10


def fig4(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None, chains=None,
         pdf: bool = False) -> dict:
    """Paper Figure 4: partially synthetic, ``n = 10``, ``N = 100``, 50 generations, truths of growing
    ``S_0``: Zipf on 52 tokens with exponents ``FIG4_EXPONENTS`` (chosen; ``S_0`` = 0.027, 0.0998, 0.409,
    0.704). As ``S_0`` grows ``E σ_m`` rises and the drift from ``p^(1)`` falls (the exact deviation is
    proportional to ``1 - S_0``)."""
    from ..core.initial import zipf

    scale = check_scale(scale)
    chains = chains or scaled(CHAINS, scale, 20)
    g = scaled(PARTIAL_GENERATIONS, min(scale, 1.0), 5)
    table = Table("fig4")
    series, heads = [], {}
    for i, a in enumerate(FIG4_EXPONENTS):
        init = zipf(52, a)
        name = f"zipf({a:g}), S0={theory.collision(p_of(init)):.3f}"
        s, h = _partial_series(table, name, series_key(seed, 4, i), init, PARTIAL_N_REAL, FIG4_N, chains, g,
                               progress, f"fig4: {name}")
        series.append((name, s))
        heads[name] = h
    fig = _partial_figure("fig4", f"Figure 4 · partially synthetic · N = {PARTIAL_N_REAL}, n = {FIG4_N} · "
                          f"{chains:,} chains", series, g)
    headline = {"figure": "fig4", "claim": "partially synthetic, n=10, N=100: as S_0 grows, sigma_m rises and the "
                "drift from p^(1) falls", "settings": settings_of(scale, seed, chains, g, N=PARTIAL_N_REAL,
                                                                 n=FIG4_N, exponents=list(FIG4_EXPONENTS)),
                "series": heads, "wall_time_s": round(sum(h["wall_time_s"] for h in heads.values()), 2)}
    return write(out, "fig4", fig, table, headline, pdf)


#: The experiments, by name; ``all`` runs them in this order.
def fig5(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress=None) -> dict:
    """Paper Figure 5 on the built-in character text: counting and a trained neural n-gram model, fully
    synthetic against 50% and 20% synthetic data (:func:`jaxcollapse.text_study.fig5`)."""
    from .text import fig5 as text_fig5

    return text_fig5(out, scale=scale, seed=seed, progress=progress)


FIGURES: dict[str, Callable[..., dict]] = {
    "fig1": fig1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6, "regimes": regimes,
    "decoding": decoding,
}


def headline_lines(h: dict) -> list[str]:
    """A few human-readable lines from a figure's headline numbers."""
    lines = []
    fig = h.get("figure")
    if fig == "fig1":
        for m, v in h.get("share_collapsed", {}).items():
            lines.append(f"generation {m}: {v['simulated']:.4f} of contexts collapsed [{v['ci'][0]:.4f}, "
                         f"{v['ci'][1]:.4f}], exact {v['exact']:.4f}")
        lines.append(f"max |z| vs exact: share {h['test_share_collapsed']['max_abs_z']}, collision "
                     f"{h['test_collision']['max_abs_z']}")
    elif fig == "fig2":
        for name, d in h.get("distributions", {}).items():
            ns = list(d["mean_T"])
            last = ns[-1]
            lines.append(f"{name}: mean T at n={last}: {d['mean_T'][last]:.1f} {d['mean_T_ci'][last]}, exact "
                         f"{d['exact_E_T'][last]:.1f}, Theorem 1 lower {d['theorem1_lower'][last]:.1f} "
                         f"(ratio {d['ratio_mean_T_to_lower'][last]:.2f}), max |z| "
                         f"{d['test_exact_E_T']['max_abs_z']}")
    elif "l1_at_last" in h:
        for name, (mean, lo, hi) in h["l1_at_last"].items():
            lines.append(f"{name} synthetic: L1 drift at the last generation {mean:.4f} [{lo:.4f}, {hi:.4f}]")
    else:
        for name, d in h.get("series", {}).items():
            if "theorem2_corrected_final" in d:
                lines.append(f"{name}: E σ_final {d['collision_final']:.5f} {d['collision_final_ci']}, "
                             f"Theorem 2 corrected {d['theorem2_corrected_final']:.5f}, printed "
                             f"{d['theorem2_printed_final']:.5f}; max |z| corrected "
                             f"{d['test_corrected_theorem2']['max_abs_z']}, printed "
                             f"{d['test_printed_theorem2']['max_abs_z']}")
            else:
                q = "diversity" if "diversity_final" in d else "collision"
                extra = (f", exact {d['exact_' + q + '_final']:.5f} (max |z| {d['test_' + q]['max_abs_z']})"
                         if "exact_" + q + "_final" in d else "")
                lines.append(f"{name}: {q} {d[q + '_final']:.5f}{extra}; collapsed "
                             f"{d['collapsed_final']:.4f}")
    return lines
