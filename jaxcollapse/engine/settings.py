"""Study settings shared by the command line (``jaxcollapse run``) and sweeps (``jaxcollapse sweep``): the
defaults, which sizes each regime takes, the ``size``/``fraction`` shorthand, and the initial-distribution
families built from their settings.

Imports neither JAX nor NumPy at import time: the command line's option table reads its defaults here.
"""

from __future__ import annotations

from ..core.regime_table import TABLE
from ..errors import ConfigError, check_float, check_int
from .host import check_memory, table_bytes

#: Defaults of a study's settings (sizes have none here: the command line's are in its option table).
STUDY_DEFAULTS = {"regime": "fully_synthetic", "initial": "zipf", "vocab": 600, "exponent": 1.1, "ratio": 0.5,
                  "concentration": 1.0, "contexts": 1, "temperature": 1.0, "smoothing": 0.0, "sampler": "auto"}
#: Tokens with positive initial probability of zipf, uniform and geometric (the paper's), capped at the vocabulary.
DEFAULT_SUPPORT = 52
#: Initial distributions built from settings alone (the command line also reads files and corpora).
INITIAL_FAMILIES = ("zipf", "uniform", "geometric", "dirichlet")

#: Regime -> the size settings it takes, in order (from the regime table; ``autoregressive`` is the trained
#: estimators' text regime).
REGIME_SIZES = {**{k: spec.sizes + spec.optional for k, spec in TABLE.items()},
                "autoregressive": ("synthetic", "fraction")}
#: Sizes a regime may leave out.
OPTIONAL_SIZES = tuple(sorted({f for spec in TABLE.values() for f in spec.optional}))
#: Regimes whose ``size`` is split by ``fraction`` into synthetic ``n = round(fraction x size)`` and real
#: ``N = size - n`` samples (fraction = n / (N + n)).
SPLIT_REGIMES = tuple(k for k, spec in TABLE.items() if spec.shorthand == "split")
#: Regimes whose ``size`` is a generation's whole training set (the size setting it goes to) of which
#: ``fraction`` is synthetic (default 1).
SHARE_REGIMES = {**{k: "real" for k, spec in TABLE.items() if spec.shorthand == "mixed"},
                 "autoregressive": "synthetic"}


def regime_sizes(kind: str, values: dict, defaults: dict | None = None) -> dict:
    """The sizes regime ``kind`` takes (keys of :data:`REGIME_SIZES`, in its order), checked.

    ``size`` with ``fraction`` is a shorthand for the training-set size of generations ``m >= 2`` and its synthetic
    share: fresh_real and autoregressive take the size whole (fraction default 1), partially_synthetic, accumulate
    and accumulate_subsample split it (fraction required; both parts >= 1), the fully synthetic regimes take it as
    ``synthetic`` (fraction 1 or left out). Sizes given in ``values`` come next, then ``defaults``; a ConfigError
    names a size the regime needs and lacks. Values None count as not given.
    """
    if kind not in REGIME_SIZES:
        raise ConfigError(f"regime must be one of {', '.join(REGIME_SIZES)}; got {kind!r}")
    takes = REGIME_SIZES[kind]
    size, frac = values.get("size"), values.get("fraction")
    out = {}
    if size is not None:
        size = check_int("size", size, low=1)
        if kind in SHARE_REGIMES:
            out[SHARE_REGIMES[kind]] = size
            out["fraction"] = check_float("fraction", 1.0 if frac is None else frac, low=0.0, high=1.0)
        elif kind in SPLIT_REGIMES:
            if frac is None:
                raise ConfigError(f"regime {kind} with size needs fraction (the synthetic share n / (N + n))")
            frac = check_float("fraction", frac, low=0.0, high=1.0)
            n = int(round(frac * size))
            if n < 1 or size - n < 1:
                raise ConfigError(f"regime {kind}: size {size} x fraction {frac:g} leaves {n} synthetic and "
                                  f"{size - n} real samples; both must be >= 1")
            out["synthetic"], out["real"] = n, size - n
        else:
            if frac is not None and float(frac) != 1.0:
                raise ConfigError(f"regime {kind} is fully synthetic: fraction must be 1 (or left out), got {frac}")
            out["synthetic"] = size
    for source in (values, defaults or {}):
        for k in takes:
            if k in out or source.get(k) is None:
                continue
            if k == "fraction":
                out[k] = check_float(k, source[k], low=0.0, high=1.0)
            else:
                out[k] = check_int(k, source[k], low=1)
    for k in takes:
        if k not in out and k not in OPTIONAL_SIZES:
            raise ConfigError(f"regime {kind} needs {k}" + (" (or size)" if k in ("synthetic", "real") else ""))
    return {k: out[k] for k in takes if k in out}


def size_and_fraction(kind: str, sizes: dict) -> tuple:
    """The inverse of the shorthand: ``(size, fraction)`` of the sizes of regime ``kind``."""
    if kind in SHARE_REGIMES:
        return sizes[SHARE_REGIMES[kind]], float(sizes["fraction"])
    if kind in SPLIT_REGIMES:
        size = sizes["real"] + sizes["synthetic"]
        return size, sizes["synthetic"] / size
    return sizes["synthetic"], 1.0


def initial_distribution(source: str, values: dict):
    """The initial distribution of family ``source`` (:data:`INITIAL_FAMILIES`) from ``values`` (missing or None:
    :data:`STUDY_DEFAULTS`; support ``min(DEFAULT_SUPPORT, vocab)``; dirichlet's ``initial_seed`` 0).

    Returns ``(initial, settings, description)``: the :class:`~jaxcollapse.Initial`, the settings it used
    (``vocab`` first, JSON-friendly) and a one-line description.
    """
    from ..core import initial as init_mod

    v = {**STUDY_DEFAULTS, **{k: x for k, x in values.items() if x is not None}}
    if source not in INITIAL_FAMILIES:
        raise ConfigError(f"initial must be zipf, uniform, geometric or dirichlet; got {source!r}")
    vocab = check_int("vocab", v["vocab"], low=1)
    res = {"vocab": vocab}
    contexts = check_int("contexts", v["contexts"], low=1) if source == "dirichlet" else 1
    check_memory(table_bytes(contexts, vocab), f"the initial distribution (contexts {contexts} x vocab {vocab})",
                 "lower vocab" + (" or contexts" if source == "dirichlet" else ""))
    if source == "dirichlet":
        res.update(concentration=check_float("concentration", v["concentration"], low=0.0, low_open=True),
                   contexts=contexts, initial_seed=check_int("initial_seed", v.get("initial_seed", 0), low=0))
        initial = init_mod.dirichlet(vocab, concentration=res["concentration"], contexts=res["contexts"],
                                     seed=res["initial_seed"])
        return initial, res, (f"dirichlet(concentration={res['concentration']:g}, vocab={vocab}, "
                              f"contexts={res['contexts']}, seed={res['initial_seed']})")
    support = check_int("support", v.get("support", min(DEFAULT_SUPPORT, vocab)), low=1)
    if support > vocab:
        raise ConfigError(f"support must be at most vocab ({vocab}), got {support}")
    res["support"] = support
    if source == "zipf":
        res["exponent"] = check_float("exponent", v["exponent"], low=0.0)
        initial = init_mod.zipf(vocab, res["exponent"], support)
        describe = f"zipf(exponent={res['exponent']:g}, support={support}, vocab={vocab})"
    elif source == "uniform":
        initial = init_mod.uniform(vocab, support)
        describe = f"uniform(support={support}, vocab={vocab})"
    else:
        res["ratio"] = check_float("ratio", v["ratio"], low=0.0, high=1.0, low_open=True)
        initial = init_mod.geometric(vocab, res["ratio"], support)
        describe = f"geometric(ratio={res['ratio']:g}, support={support}, vocab={vocab})"
    return initial, res, describe
