"""Studies of trained estimators and autoregressive generation on text: the paper's Figure 5 and the
context-length study, plus the training-regularisation and generation-mode comparisons of ``docs/trained.md``.

Every study writes ``<name>.png``, a tidy ``<name>.csv`` (means with 95% Student-t intervals over chains) and
``<name>.json`` (headline numbers and settings) into ``out`` and returns the headline dict. ``scale``
multiplies the number of chains (the Monte Carlo precision); the other settings are fixed.

The built-in text (``jaxcollapse/data/tales.txt``, 60 kB, 40 symbols) is generated deterministically by
``jaxcollapse/data/make_tales.py`` from a fixed word list, so the studies need no download.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Callable

import numpy as np

from ..errors import check_float, check_int
from ..io.draw import legend_below

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"  # jaxcollapse/data
DEFAULT_TEXT = DATA / "tales.txt"


def default_text() -> str:
    """The built-in character corpus."""
    return DEFAULT_TEXT.read_text(encoding="utf-8")


def _ci(x: np.ndarray):
    """Mean and 95% Student-t interval over axis 0."""
    from ..stats.analysis import mean_ci

    r = mean_ci(np.asarray(x, np.float64), axis=0)
    return r.mean, r.ci_low, r.ci_high


def _write(out: pathlib.Path, name: str, rows: list[dict], headline: dict, fig) -> None:
    from ..io.rundir import write_text

    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(_cell(r[k]) for k in keys) for r in rows]
    write_text(out / f"{name}.csv", "\n".join(lines) + "\n")
    write_text(out / f"{name}.json", json.dumps(headline, indent=2) + "\n")
    tmp = out / f".{name}.png.tmp"
    fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    os.replace(tmp, out / f"{name}.png")


def _cell(v) -> str:
    if isinstance(v, float):
        return repr(float(v))
    return str(v)


def _chains(base: int, scale: float) -> int:
    scale = check_float("scale", scale, low=0.0, low_open=True)
    return max(4, int(round(base * scale)))


def _tick(progress, name):
    if progress is not None:
        progress(name)


# ------------------------------------------------------------------------------------------------
# Figure 5


def fig5(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress: Callable | None = None,
         text: str | None = None, order: int = 3, generations: int = 9, contexts_sampled: int = 300,
         estimators=("count", "embedding")) -> dict:
    """The paper's Figure 5 on character-level text with n-gram models.

    Each generation's data is ``tokens`` = the corpus's token count: text generated autoregressively by the
    current model (fully synthetic) or mixed with real corpus pairs (50% and 20% synthetic). Two estimators:
    counting (the paper's model at its optimum) and a trained neural n-gram model (embedding, adam).
    The drift is the L1 distance between ``p^(m)`` and ``p^(0)`` next-token distributions averaged over
    ``contexts_sampled`` contexts drawn from the original model's context weights (fixed by ``seed``).
    Writes ``fig5.png``, ``fig5.csv`` (estimator, synthetic_fraction, generation, mean, ci_low, ci_high, chains)
    and ``fig5.json``.
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    from ..core.autoregressive import autoregressive
    from ..io.corpus import ngram_model
    from ..core.trained import Training
    from ..engine.simulate import simulate_trained

    out = pathlib.Path(out)
    chains = _chains(16, scale)
    seed = check_int("seed", seed, low=0)
    corpus = ngram_model(default_text() if text is None else text, order=order)
    rng = np.random.default_rng(seed)
    picked = rng.choice(corpus.initial.contexts, size=contexts_sampled, p=corpus.initial.weights)
    training = Training(optimizer="adam", learning_rate=0.1, steps=100, dim=16)
    rows, headline = [], {"chains": chains, "order": order, "tokens_per_generation": corpus.events,
                          "contexts": corpus.initial.contexts, "vocab": corpus.initial.vocab,
                          "contexts_sampled": contexts_sampled, "seed": seed, "training": training.describe(),
                          "text": "built-in tales.txt" if text is None else "given", "l1_at_last": {}}
    fig = Figure(figsize=(5 * len(estimators), 4.2), layout="constrained")
    axes = fig.subplots(1, len(estimators), sharey=True, squeeze=False)[0]
    for ax, estimator in zip(axes, estimators):
        for fraction, color in ((1.0, "C3"), (0.5, "C1"), (0.2, "C0")):
            _tick(progress, f"fig5 {estimator} {fraction:g}")
            r = simulate_trained(seed, corpus, autoregressive(corpus.events, fraction), chains=chains,
                                 generations=generations, estimator=estimator, training=training,
                                 per_context=True, keep_final=False)
            drift = r.context_traces["l1_initial"][:, :, picked].mean(axis=2)
            mean, lo, hi = _ci(drift)
            for g in range(1, generations + 1):
                rows.append({"estimator": estimator, "synthetic_fraction": fraction, "generation": g,
                             "mean": float(mean[g]), "ci_low": float(lo[g]), "ci_high": float(hi[g]),
                             "chains": chains})
            headline["l1_at_last"][f"{estimator}/{fraction:g}"] = [float(mean[-1]), float(lo[-1]), float(hi[-1])]
            gens = np.arange(1, generations + 1)
            ax.plot(gens, mean[1:], "o-", ms=3, color=color,
                    label=f"{int(round(100 * fraction))}% synthetic (mean, 95% CI)")
            ax.fill_between(gens, lo[1:], hi[1:], color=color, alpha=0.3, lw=0)
        ax.set_title({"count": "counting (softmax optimum)", "softmax": "trained softmax",
                      "embedding": "trained neural n-gram"}[estimator])
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"L1 distance to p⁽⁰⁾ (mean over {contexts_sampled} contexts)")
    legend_below(fig, ncol=3)
    fig.suptitle(f"Figure 5 analogue: order-{order} character model, {corpus.events:,} tokens per generation, "
                 f"{chains} chains, autoregressive text", fontsize=10)
    _write(out, "fig5", rows, headline, fig)
    return headline


# ------------------------------------------------------------------------------------------------
# context length


def context_length(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress: Callable | None = None,
                   orders=(1, 2, 3, 4), generations: int = 20, text: str | None = None) -> dict:
    """Collapse speed against the n-gram order on the same text, for count, softmax and embedding.

    Fully synthetic, independent-context resampling with the corpus's token count per generation, split over
    the contexts by frequency (each context refitted on its corpus count). Records the weighted L1 to
    ``p^(0)`` and the missing mass at every generation. Writes ``context_length.{png,csv,json}``.
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    from ..io.corpus import ngram_model
    from ..core.regimes import fully_synthetic
    from ..core.trained import Training
    from ..engine.simulate import simulate_trained

    out = pathlib.Path(out)
    chains = _chains(16, scale)
    text = default_text() if text is None else text
    training = Training(optimizer="adam", learning_rate=0.1, steps=100, dim=16)
    rows, headline = [], {"chains": chains, "generations": generations, "training": training.describe(),
                          "orders": {}}
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    estimators = ("count", "softmax", "embedding")
    for estimator, marker in zip(estimators, ("o", "s", "^")):
        finals, missing = [], []
        for order in orders:
            _tick(progress, f"context_length {estimator} order {order}")
            corpus = ngram_model(text, order=order)
            r = simulate_trained(seed, corpus, fully_synthetic(corpus.events), chains=chains,
                                 generations=generations, estimator=estimator, training=training, keep_final=False)
            info = headline["orders"].setdefault(str(order), {"contexts": corpus.initial.contexts,
                                                               "tokens": corpus.events,
                                                               "tokens_per_context": corpus.events
                                                               / corpus.initial.contexts})
            for metric in ("l1_initial", "missing_mass"):
                mean, lo, hi = _ci(r.traces[metric])
                for g in range(generations + 1):
                    rows.append({"estimator": estimator, "order": order, "contexts": corpus.initial.contexts,
                                 "metric": metric, "generation": g, "mean": float(mean[g]),
                                 "ci_low": float(lo[g]), "ci_high": float(hi[g]), "chains": chains})
                info[f"{estimator}/{metric}"] = [float(mean[-1]), float(lo[-1]), float(hi[-1])]
            finals.append(info[f"{estimator}/l1_initial"])
            missing.append(info[f"{estimator}/missing_mass"])
        f = np.array(finals)
        axes[0].errorbar(orders, f[:, 0], yerr=[f[:, 0] - f[:, 1], f[:, 2] - f[:, 0]], marker=marker, capsize=3,
                         label=estimator)
        mm = np.array(missing)
        axes[1].errorbar(orders, mm[:, 0], yerr=[mm[:, 0] - mm[:, 1], mm[:, 2] - mm[:, 0]], marker=marker,
                         capsize=3, label=estimator)
    axes[0].set_ylabel(f"L1 distance to p⁽⁰⁾ at generation {generations}")
    axes[0].set_title("L1 distance to p⁽⁰⁾ (weighted by context, mean, 95% CI)", fontsize=9)
    axes[1].set_ylabel(f"missing mass at generation {generations}")
    axes[1].set_title("p⁽⁰⁾ mass of the tokens lost (mean, 95% CI)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("n-gram order (context = order − 1 characters)")
        ax.set_xticks(list(orders))
        ax.grid(alpha=0.3)
    legend_below(fig, ncol=3)
    fig.suptitle(f"Context length: same text, same tokens per generation, {chains} chains, fully synthetic",
                 fontsize=10)
    _write(out, "context_length", rows, headline, fig)
    return headline


# ------------------------------------------------------------------------------------------------
# training regularisation on the paper's unigram setting


TRAINING_VARIANTS = (
    ("count", "count", {}),
    ("adam lr 0.5, 100 steps", "softmax", {"learning_rate": 0.5}),
    ("adam lr 0.1, 100 steps", "softmax", {}),
    ("adam lr 0.1, 10 steps", "softmax", {"steps": 10}),
    ("sgd lr 1, 100 steps", "softmax", {"optimizer": "sgd", "learning_rate": 1.0}),
    ("adam lr 0.5, weight decay 0.01", "softmax", {"learning_rate": 0.5, "weight_decay": 0.01}),
    ("adam lr 0.5, weight decay 0.1", "softmax", {"learning_rate": 0.5, "weight_decay": 0.1}),
    ("adam lr 0.5, label smoothing 0.01", "softmax", {"learning_rate": 0.5, "label_smoothing": 0.01}),
    ("adam lr 0.5, label smoothing 0.1", "softmax", {"learning_rate": 0.5, "label_smoothing": 0.1}),
    ("adam lr 0.5, minibatch 16", "softmax", {"learning_rate": 0.5, "batch": 16}),
)


def training_study(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress: Callable | None = None,
                   n: int = 50, generations: int = 150) -> dict:
    """Finite training, weight decay and label smoothing against counting: Zipf(1.1) on 52 of 600 tokens
    (the paper's ``p``), fully synthetic with ``n`` samples per generation. Records collapse (fraction of
    chains with one token above the floor), missing mass, the smallest probability on the original support,
    and the L1 distance to ``p^(0)``. Writes ``training.{png,csv,json}``."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    from ..core.initial import zipf
    from ..core.regimes import fully_synthetic
    from ..core.trained import Training
    from ..engine.simulate import simulate_trained

    out = pathlib.Path(out)
    chains = _chains(64, scale)
    p = zipf(600, 1.1, 52)
    rows, headline = [], {"chains": chains, "n": n, "generations": generations, "variants": {}}
    at_zero = []                                           # variants whose missing mass stays 0: drawn on one line
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (label, estimator, opts) in enumerate(TRAINING_VARIANTS):
        _tick(progress, f"training {label}")
        training = Training(**{"optimizer": "adam", "learning_rate": 0.1, "steps": 100, **opts})
        r = simulate_trained(seed, p, fully_synthetic(n), chains=chains, generations=generations,
                             estimator=estimator, training=training)
        support = p.probs[0] > 0
        min_prob = r.final[:, 0, support].min(axis=1)
        off_support = r.final[:, 0, ~support].sum(axis=1)
        collapsed = r.collapsed
        k = int(collapsed.sum())
        from ..stats.analysis import wilson_ci

        _, wl, wh = wilson_ci(k, chains)
        entry = {"estimator": estimator, "options": opts, "collapsed": [k / chains, float(wl), float(wh)]}
        for name, values in (("l1_initial", r.traces["l1_initial"][:, -1]),
                             ("missing_mass", r.traces["missing_mass"][:, -1]),
                             ("max_prob", r.traces["max_prob"][:, -1]),
                             ("min_prob_on_support", min_prob), ("mass_off_support", off_support)):
            mean, lo, hi = _ci(values)
            entry[name] = [float(mean), float(lo), float(hi)]
            rows.append({"variant": label, "metric": name, "generation": generations, "mean": float(mean),
                         "ci_low": float(lo), "ci_high": float(hi), "chains": chains})
        if k:
            entry["mean_collapse_time_of_collapsed"] = float(r.collapse_time[collapsed].mean())
        rows.append({"variant": label, "metric": "collapsed_fraction", "generation": generations,
                     "mean": k / chains, "ci_low": float(wl), "ci_high": float(wh), "chains": chains})
        headline["variants"][label] = entry
        mean, lo, hi = _ci(r.traces["missing_mass"])
        axes[0].plot(mean, color=f"C{i % 10}", ls="-" if i < 10 else "--", label=label)
        if not np.any(mean > 0):
            at_zero.append(label)
        mean, lo, hi = _ci(r.traces["l1_initial"])
        axes[1].plot(mean, color=f"C{i % 10}", ls="-" if i < 10 else "--")
    if len(at_zero) > 1:
        axes[0].text(0.98, 0.06, f"{len(at_zero)} variants stay at 0 (overlaid)", transform=axes[0].transAxes,
                     ha="right", va="bottom", fontsize=8)
    axes[0].set_ylabel("missing mass (p⁽⁰⁾ mass of the tokens ≤ floor)")
    axes[0].set_title("missing mass (mean over chains)", fontsize=9)
    axes[1].set_ylabel("‖p − p⁽⁰⁾‖₁")
    axes[1].set_title("L1 distance to p⁽⁰⁾ (mean over chains)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    legend_below(fig, ncol=3, fontsize=7.5)
    fig.suptitle(f"Trained softmax vs counting: Zipf(1.1) on 52 of 600 tokens, n = {n}, {chains} chains",
                 fontsize=10)
    _write(out, "training", rows, headline, fig)
    return headline


# ------------------------------------------------------------------------------------------------
# autoregressive vs independent-context resampling


def generation_modes(out: pathlib.Path, *, scale: float = 1.0, seed: int = 0, progress: Callable | None = None,
                     order: int = 3, generations: int = 30, text: str | None = None) -> dict:
    """Autoregressive text against independent-context resampling: same truth (order-``order`` model of the
    text), same token budget (the corpus's token count), counting estimator. Writes
    ``generation_modes.{png,csv,json}`` with the weighted L1 to ``p^(0)``, the missing mass and the drift of
    the context frequencies."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figure list are left alone

    from ..core.autoregressive import autoregressive
    from ..io.corpus import ngram_model
    from ..core.regimes import fully_synthetic
    from ..engine.simulate import simulate_trained

    out = pathlib.Path(out)
    chains = _chains(16, scale)
    corpus = ngram_model(default_text() if text is None else text, order=order)
    rows, headline = [], {"chains": chains, "order": order, "tokens": corpus.events, "modes": {}}
    fig = Figure(figsize=(13, 4.0), layout="constrained")
    axes = fig.subplots(1, 3)
    for i, (label, regime) in enumerate((("independent contexts", fully_synthetic(corpus.events)),
                                         ("autoregressive text", autoregressive(corpus.events)))):
        _tick(progress, f"generation modes {label}")
        r = simulate_trained(seed, corpus, regime, chains=chains, generations=generations, estimator="count",
                             keep_final=False)
        entry = {}
        for j, metric in enumerate(("l1_initial", "missing_mass")):
            mean, lo, hi = _ci(r.traces[metric])
            axes[j].plot(mean, color=f"C{i}", label=f"{label} (mean, 95% CI)" if j == 0 else None)
            axes[j].fill_between(np.arange(generations + 1), lo, hi, color=f"C{i}", alpha=0.3, lw=0)
            for g in range(generations + 1):
                rows.append({"mode": label, "metric": metric, "generation": g, "mean": float(mean[g]),
                             "ci_low": float(lo[g]), "ci_high": float(hi[g]), "chains": chains})
            entry[metric] = [float(mean[-1]), float(lo[-1]), float(hi[-1])]
        drift = np.asarray(r.settings["context_l1"])
        axes[2].plot(np.arange(1, generations + 1), drift[1:], color=f"C{i}")
        for g in range(1, generations + 1):
            rows.append({"mode": label, "metric": "context_l1", "generation": g, "mean": float(drift[g]),
                         "ci_low": float("nan"), "ci_high": float("nan"), "chains": chains})
        entry["context_l1"] = float(drift[-1])
        entry["collapsed_contexts"] = float((r.context_collapse_time >= 0).mean())
        headline["modes"][label] = entry
    for ax, name, title in zip(axes, ("‖p − p⁽⁰⁾‖₁ (weighted by context)", "p⁽⁰⁾ mass lost",
                                      "L1 distance of context shares to weights"),
                               ("L1 distance to p⁽⁰⁾", "missing mass", "context shares of the generated text")):
        ax.set_ylabel(name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    legend_below(fig, ncol=2)
    fig.suptitle(f"Autoregressive vs independent-context data, order {order}, {corpus.events:,} tokens per "
                 f"generation, counting, {chains} chains", fontsize=10)
    _write(out, "generation_modes", rows, headline, fig)
    return headline


STUDIES = {"fig5": fig5, "context_length": context_length, "training": training_study,
           "generation_modes": generation_modes}
