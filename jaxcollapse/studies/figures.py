"""The plumbing of the reproduced figures: the tidy table of plotted numbers, the files each figure writes, the
keys, the truths and the comparison with theory (see :mod:`jaxcollapse.studies.paper` for the format)."""

from __future__ import annotations

import csv
import io
import json
import math
import pathlib
import time

import numpy as np

from ..stats import analysis

#: Chains per experiment where the paper used 100 runs.
CHAINS = 10_000

COLUMNS = ("figure", "series", "x_name", "x", "quantity", "kind", "value", "ci_low", "ci_high", "se",
           "chains", "z")


# ------------------------------------------------------------------------------------------------
# helpers


def scaled(base: int, scale: float, low: int) -> int:
    return max(low, int(round(base * scale)))


def check_scale(scale) -> float:
    """``scale`` as a float in (0, 100] (ConfigError naming it otherwise)."""
    from ..errors import check_float

    return check_float("scale", scale, low=0.0, high=100.0, low_open=True)


class Table:
    """Rows of a figure's tidy CSV."""

    def __init__(self, figure: str):
        self.figure = figure
        self.rows: list[dict] = []

    def add(self, series, x_name, xs, quantity, kind, values, ci_low=None, ci_high=None, se=None,
            chains=None, z=None):
        xs = np.asarray(xs)
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), xs.shape)

        def col(a):
            return None if a is None else np.broadcast_to(np.asarray(a, dtype=np.float64), xs.shape)

        lo, hi, s, zz = col(ci_low), col(ci_high), col(se), col(z)
        for i, x in enumerate(xs.tolist()):
            self.rows.append({
                "figure": self.figure, "series": series, "x_name": x_name, "x": x, "quantity": quantity,
                "kind": kind, "value": values[i], "ci_low": None if lo is None else lo[i],
                "ci_high": None if hi is None else hi[i], "se": None if s is None else s[i],
                "chains": "" if chains is None else int(chains), "z": None if zz is None else zz[i]})

    def mean(self, series, x_name, xs, quantity, samples, exact=None):
        """Simulated mean of ``samples`` ``(chains, len(xs))`` with its 95% t-interval; ``z`` against ``exact``."""
        res = analysis.mean_ci(samples, axis=0)
        se = np.asarray(res.sd) / math.sqrt(res.n)
        z = None
        if exact is not None:
            z = compare(samples, exact).z
        self.add(series, x_name, xs, quantity, "simulated", res.mean, res.ci_low, res.ci_high, se, res.n, z)
        return res

    def proportion(self, series, x_name, xs, quantity, successes, trials, exact=None):
        """A proportion with its Wilson interval; ``z`` from the exact value's binomial standard error."""
        successes = np.asarray(successes, dtype=np.float64)
        ci = analysis.wilson_ci(successes, trials)
        p = successes / trials
        z = None
        if exact is not None:
            ex = np.asarray(exact, dtype=np.float64)
            sd = np.sqrt(ex * (1 - ex) / trials)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(sd > 0, (p - ex) / sd, np.where(p == ex, 0.0, np.inf))
        self.add(series, x_name, xs, quantity, "simulated", p, ci.low, ci.high, np.sqrt(p * (1 - p) / trials),
                 trials, z)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        return buf.getvalue()


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return v


def compare(samples, exact):
    """``analysis.compare_to_theory`` over the generations where the chains vary: a column whose values are
    all equal up to rounding (generation 0, the truth itself) is deterministic and gets ``z`` = NaN."""
    samples = np.asarray(samples, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        spread = np.nanmax(samples, axis=0) - np.nanmin(samples, axis=0)
    varies = ~(spread <= 1e-12 * np.maximum(1.0, np.abs(exact)))
    if not varies.any():
        return analysis.compare_to_theory(samples, exact)
    cmp = analysis.compare_to_theory(samples[:, varies], exact[varies])
    z = np.full(exact.shape, np.nan)
    z[varies] = cmp.z
    mean, se = np.asarray(analysis.mean_ci(samples, axis=0).mean), np.zeros(exact.shape)
    se[varies] = cmp.se
    return cmp._replace(z=z, mean=mean, se=se)


def test(comparison) -> dict:
    """The summary of an ``analysis.compare_to_theory`` result for the JSON."""
    z = np.asarray(comparison.z, dtype=np.float64)
    return {"max_abs_z": num(comparison.max_abs_z), "p_value_bonferroni": num(comparison.p_value_max),
            "chi2": num(comparison.chi2), "dof": int(comparison.dof), "p_value_chi2": num(comparison.p_value),
            "z": [num(v) for v in z]}


def num(v):
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return round(v, 6) if abs(v) >= 1e-3 else float(f"{v:.6g}")


class Headline(dict):
    """A figure's headline numbers (the dict written to ``NAME.json``), with the drawn matplotlib ``figure``
    attached: in a notebook, ``FIGURES[name](out, ...).figure`` shows the figure inline."""

    figure = None


def write(out: pathlib.Path, name: str, fig, table: Table, headline: dict, pdf: bool = False) -> Headline:
    from ..io.rundir import atomic_file, write_text

    out.mkdir(parents=True, exist_ok=True)
    for fmt in ("png", "pdf") if pdf else ("png",):
        with atomic_file(str(out / f"{name}.{fmt}")) as f:
            fig.savefig(f, format=fmt, dpi=100, bbox_inches="tight")
    write_text(str(out / f"{name}.csv"), table.csv())
    write_text(str(out / f"{name}.json"), json.dumps(headline, indent=2, allow_nan=False) + "\n")
    result = Headline(headline)
    result.figure = fig
    return result


def new_figure(ncols: int, title: str, width: float = 5.0, height: float = 3.8):
    from ..io.draw import Figure                  # a matplotlib Figure that a notebook shows inline

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    fig.suptitle(title, fontsize=10)
    return fig, axes


def band(ax, x, res, color, label):
    ax.plot(x, res.mean, color=color, lw=1.2, label=label)
    ax.fill_between(x, res.ci_low, res.ci_high, color=color, alpha=0.3, lw=0)


def say(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def run_study(key, initial, regime, progress, label, **kw):
    """simulate(key, initial, regime, **kw), timed, with a progress line."""
    from ..engine.simulate import simulate

    t0 = time.perf_counter()
    res = simulate(key, initial, regime, **kw)
    say(progress, f"{label}: {kw['chains']:,} chains x {kw['generations']} generations in "
                   f"{time.perf_counter() - t0:.1f} s")
    return res


def series_key(seed: int, figure: int, series: int):
    """A key per (figure, series): independent streams for the runs of one reproduction."""
    import jax

    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), figure), series)


def zipf52():
    from ..core.initial import zipf

    return zipf(52, 1.1)


def p_of(initial) -> np.ndarray:
    return np.asarray(initial.probs[0], dtype=np.float64)


def settings_of(scale, seed, chains, generations, **extra) -> dict:
    return {"scale": scale, "seed": seed, "chains": chains, "generations": generations, **extra}


