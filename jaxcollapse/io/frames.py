"""Results as tables and labelled arrays: the one conversion behind ``to_pandas`` / ``to_xarray`` of a
:class:`~jaxcollapse.Result`, a loaded :class:`~jaxcollapse.Run` and a :class:`~jaxcollapse.SweepResult`, and
the headline numbers of their rich display.

pandas and xarray are imported when a conversion is asked for (``pip install 'jaxcollapse[io]'``).

**Censoring.** A chain that did not collapse within the run has no collapse time: in a DataFrame
``collapse_time`` is a nullable integer (``pd.NA``) and ``censored`` is True; in a Dataset ``collapse_time`` is
a float with NaN and ``censored`` a bool. (The engine's arrays and ``traces.npz`` use -1; ``collapse.csv`` leaves
``collapse_time`` empty, with ``censored = 1``.)

**Datasets** have a ``metric`` dimension (one variable per quantity, indexed by metric name), not one variable
per metric: ``ds["summary_mean"].sel(metric="collision")``. The summary variables are named ``summary_*``
because ``Dataset.mean`` is a method.
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np

#: The optional dependencies' extra.
EXTRA = "io"
#: Metrics of the headline numbers, when present.
HEADLINE_METRICS = ("collision", "max_prob", "support", "entropy", "l1_initial", "kl")


def require(module: str, what: str):
    """Import ``module`` or raise ImportError with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}: pip install 'jaxcollapse[{EXTRA}]' (or pip install "
                          f"{module})") from None


def _censored_int(pd, t):
    """A nullable Int64 array: ``t`` where ``t >= 0``, NA where ``t < 0``."""
    t = np.asarray(t, np.int64)
    return pd.arrays.IntegerArray(np.where(t >= 0, t, 0), t < 0)


def _nan_times(t) -> np.ndarray:
    t = np.asarray(t)
    return np.where(t >= 0, t, np.nan).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# one simulation


def summary_frame(summary: dict, what: str = "to_pandas"):
    """The tidy summary: one row per (generation, metric), sorted like ``summary.csv``; columns
    ``generation, metric, mean, sd, ci_low, ci_high, n``."""
    pd = require("pandas", what)
    names = sorted(summary)
    width = len(next(iter(summary.values())).mean) if names else 0
    stack = {k: np.stack([np.asarray(getattr(summary[m], k)) for m in names], axis=1) if names else np.zeros((0, 0))
             for k in ("mean", "sd", "ci_low", "ci_high", "n")}
    return pd.DataFrame({
        "generation": np.repeat(np.arange(width, dtype=np.int64), len(names)),
        "metric": np.tile(np.array(names, dtype=object), width),
        **{k: stack[k].ravel().astype(np.float64) for k in ("mean", "sd", "ci_low", "ci_high")},
        "n": stack["n"].ravel().astype(np.int64),
    })


def chains_frame(traces: dict | None, collapse_time, what: str = "to_pandas"):
    """Per-chain values: one row per (metric, chain, generation); columns ``chain, generation, metric, value,
    collapse_time`` (nullable, NA when censored) and ``censored``."""
    pd = require("pandas", what)
    if traces is None:
        raise ValueError("per-chain traces were not kept (keep_traces=False); kind='summary' or 'collapse' "
                         "are available")
    names = list(traces)
    chains, width = np.asarray(traces[names[0]]).shape
    t = np.asarray(collapse_time, np.int64)
    per = chains * width
    chain = np.repeat(np.arange(chains, dtype=np.int64), width)
    times = np.tile(np.repeat(t, width), len(names))
    return pd.DataFrame({
        "chain": np.tile(chain, len(names)),
        "generation": np.tile(np.arange(width, dtype=np.int64), chains * len(names)),
        "metric": pd.Categorical.from_codes(np.repeat(np.arange(len(names)), per), categories=names),
        "value": np.concatenate([np.asarray(traces[m], np.float64).ravel() for m in names]),
        "collapse_time": _censored_int(pd, times),
        "censored": times < 0,
    })


def collapse_frame(collapse_time, collapse_token, what: str = "to_pandas"):
    """One row per chain: ``chain, collapse_time`` (NA when censored), ``censored`` and, for one context, the
    ``token`` it collapsed onto (NA when censored)."""
    pd = require("pandas", what)
    t = np.asarray(collapse_time, np.int64)
    out = {"chain": np.arange(t.size, dtype=np.int64), "collapse_time": _censored_int(pd, t), "censored": t < 0}
    tok = np.asarray(collapse_token)
    if tok.ndim == 2 and tok.shape[1] == 1:
        out["token"] = _censored_int(pd, np.where(t >= 0, tok[:, 0], -1))
    return pd.DataFrame(out)


def result_frame(result, kind: str = "summary"):
    """:meth:`Result.to_pandas`: ``kind`` ``"summary"`` (:func:`summary_frame`), ``"chains"``
    (:func:`chains_frame`) or ``"collapse"`` (:func:`collapse_frame`)."""
    if kind == "summary":
        return summary_frame(result.summary)
    if kind == "chains":
        return chains_frame(result.traces, result.collapse_time)
    if kind == "collapse":
        return collapse_frame(result.collapse_time, result.collapse_token)
    raise ValueError(f"kind must be 'summary', 'chains' or 'collapse', got {kind!r}")


def _attrs(settings: dict) -> dict:
    """netCDF-friendly attributes: the scalar settings as they are, the whole settings as JSON."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = int(v)
        elif isinstance(v, (int, float, str, np.integer, np.floating)):
            out[k] = v
    out["settings_json"] = json.dumps(settings, default=str, sort_keys=True)
    return out


def result_dataset(result, initial=None, extra_attrs: dict | None = None):
    """:meth:`Result.to_xarray`: dims ``chain``, ``generation``, ``metric`` (and ``context``, ``token``).

    Variables: ``trace`` (metric, chain, generation) when traces were kept; ``summary_mean``, ``summary_sd``,
    ``summary_ci_low``, ``summary_ci_high``, ``summary_n``, ``summary_infinite`` (metric, generation);
    ``collapsed_fraction`` (generation); ``collapse_time`` (chain; NaN = censored) and ``censored``;
    ``context_collapse_time`` (chain, context; NaN = none) and ``collapse_token`` (chain, context; -1 = none);
    ``final`` (chain, context, token) when kept; ``initial`` (context, token) and ``weight`` (context) when the
    truth is known. Attributes: the scalar settings, ``settings_json``, ``wall_time``, ``level``.
    """
    xr = require("xarray", "to_xarray")
    names = list(result.summary)
    width = result.generations + 1
    chains = result.chains
    ctx_t = np.asarray(result.context_collapse_time)
    coords = {"chain": np.arange(chains), "generation": np.arange(width), "metric": names,
              "context": np.arange(ctx_t.shape[1])}
    data = {}
    if result.traces is not None:
        data["trace"] = (("metric", "chain", "generation"),
                         np.stack([np.asarray(result.traces[m], np.float64) for m in names]))
    for k in ("mean", "sd", "ci_low", "ci_high"):
        data[f"summary_{k}"] = (("metric", "generation"),
                                np.stack([np.asarray(getattr(result.summary[m], k), np.float64) for m in names]))
    for k in ("n", "infinite"):
        data[f"summary_{k}"] = (("metric", "generation"),
                                np.stack([np.asarray(getattr(result.summary[m], k), np.int64) for m in names]))
    data["collapsed_fraction"] = (("generation",), np.asarray(result.collapsed_fraction(), np.float64))
    data["collapse_time"] = (("chain",), _nan_times(result.collapse_time))
    data["censored"] = (("chain",), np.asarray(result.collapse_time) < 0)
    data["context_collapse_time"] = (("chain", "context"), _nan_times(ctx_t))
    data["collapse_token"] = (("chain", "context"), np.asarray(result.collapse_token, np.int64))
    vocab = None
    if result.final is not None:
        final = np.asarray(result.final, np.float64)
        vocab = final.shape[-1]
        data["final"] = (("chain", "context", "token"), final)
    if initial is not None:
        probs = np.asarray(initial.probs, np.float64)
        vocab = probs.shape[-1]
        data["initial"] = (("context", "token"), probs)
        data["weight"] = (("context",), np.asarray(initial.weights, np.float64))
        if initial.labels is not None:
            coords["token_label"] = ("token", [str(x) for x in initial.labels])
        if initial.context_labels is not None:
            coords["context_label"] = ("context", [str(x) for x in initial.context_labels])
    if vocab is not None:
        coords["token"] = np.arange(vocab)
    level = getattr(next(iter(result.summary.values())), "level", 0.95) if names else 0.95
    attrs = {**_attrs(result.settings), "chains": chains, "generations": result.generations,
             "wall_time": float(result.wall_time), "level": float(level),
             "censoring": "collapse_time is NaN for a chain that did not collapse within the run (censored)",
             **(extra_attrs or {})}
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    ds["summary_mean"].attrs["description"] = "mean over chains (+inf where a chain's value is +inf)"
    ds["summary_ci_low"].attrs["description"] = f"{100 * level:g}% Student-t interval of the mean, low bound"
    ds["summary_ci_high"].attrs["description"] = f"{100 * level:g}% Student-t interval of the mean, high bound"
    return ds


def headline(result) -> dict:
    """The numbers a result's display leads with: chains, generations, collapsed count and share with its
    Wilson 95% interval, the median collapse time (None when fewer than half collapsed), and the final mean with
    its interval of each headline metric present."""
    from ..stats.analysis import wilson_ci

    t = np.asarray(result.collapse_time)
    k = int((t >= 0).sum())
    ci = wilson_ci(k, result.chains)
    big = np.where(t >= 0, t, np.iinfo(np.int64).max)
    half = math.ceil(result.chains / 2) - 1
    kth = int(np.partition(big, half)[half]) if t.size else -1
    g = result.generations
    finals = {}
    for m in HEADLINE_METRICS:
        if m in result.summary:
            s = result.summary[m]
            finals[m] = (float(s.mean[g]), float(s.ci_low[g]), float(s.ci_high[g]))
    return {"regime": str(result.settings.get("regime", "?")), "chains": int(result.chains), "generations": g,
            "collapsed": k, "collapsed_share": k / result.chains, "collapsed_low": float(ci.low),
            "collapsed_high": float(ci.high), "median_collapse_time": kth if 0 <= kth <= g else None,
            "final": finals, "wall_time": float(result.wall_time)}


# ------------------------------------------------------------------------------------------------
# a sweep


def _setting_array(values):
    """A per-point coordinate: floats (NaN for unset) when every set value is a number, else strings ("" unset)."""
    vals = [v.item() if isinstance(v, np.generic) else v for v in values]
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vals) and \
            any(v is not None for v in vals):
        if all(v is None or isinstance(v, int) for v in vals) and all(v is not None for v in vals):
            return np.array(vals, np.int64)
        return np.array([np.nan if v is None else float(v) for v in vals], np.float64)
    return np.array(["" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                     for v in vals], dtype=object)


def sweep_dataset(points, records: dict, columns, attrs: dict | None = None):
    """:meth:`SweepResult.to_xarray`: dims ``point``, ``generation``, ``metric``, ``chain``.

    Variables: ``summary_mean``, ``summary_sd``, ``summary_ci_low``, ``summary_ci_high``, ``summary_n``,
    ``summary_infinite`` (point, metric, generation); ``collapsed_fraction`` (point, generation);
    ``collapse_time`` (point, chain; NaN = censored) and ``censored``; ``final_value`` (point, metric, chain),
    each chain's metric at the last generation; ``traces`` (point, metric, chain, generation) when the sweep kept
    them. Coordinates along ``point``: ``id`` and every setting column.
    """
    xr = require("xarray", "to_xarray")
    done = [p for p in points if p.index in records]
    if not done:
        raise ValueError("no finished point to convert")
    recs = [records[p.index] for p in done]
    names = list(recs[0]["metrics"])
    for r in recs:
        if list(r["metrics"]) != names:
            raise ValueError("the points record different metrics")

    def stack(key, dtype):
        return np.stack([np.asarray(r[key], dtype) for r in recs])

    data = {f"summary_{k}": (("point", "metric", "generation"), stack(k, np.float64))
            for k in ("mean", "sd", "ci_low", "ci_high")}
    data.update({f"summary_{k}": (("point", "metric", "generation"), stack(k, np.int64)) for k in ("n", "infinite")})
    data["collapsed_fraction"] = (("point", "generation"), stack("collapsed", np.float64))
    t = stack("collapse_time", np.int64)
    data["collapse_time"] = (("point", "chain"), _nan_times(t))
    data["censored"] = (("point", "chain"), t < 0)
    data["final_value"] = (("point", "metric", "chain"),
                           np.stack([np.stack([np.asarray(r[f"final_{m}"], np.float64) for m in names])
                                     for r in recs]))
    if all("traces" in r for r in recs):
        data["traces"] = (("point", "metric", "chain", "generation"), stack("traces", np.float64))
    coords = {"point": [p.index for p in done], "generation": np.arange(data["collapsed_fraction"][1].shape[1]),
              "metric": names, "chain": np.arange(t.shape[1]), "id": ("point", [p.id for p in done])}
    for c in columns:
        coords[c] = ("point", _setting_array([p.settings.get(c) for p in done]))
    return xr.Dataset(data, coords=coords, attrs={**(attrs or {}), "censoring": "collapse_time is NaN for a chain "
                                                  "that did not collapse within the run (censored)"})
