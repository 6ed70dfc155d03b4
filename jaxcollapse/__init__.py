"""jaxcollapse: a JAX Monte Carlo engine for model collapse under recursive training.

A categorical / n-gram language model is refitted, generation after generation, by counting on samples
drawn from its predecessor (Seddik et al., arXiv 2404.05090). ``simulate`` runs thousands of independent
chains of that recursion at once, under every data regime of the paper and its follow-ups.

The names below are loaded on first use (PEP 562), so that ``import jaxcollapse`` and the command line's
``--help`` do not start JAX.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> (module, attribute); attribute None means the module itself.
_EXPORTS = {
    "ConfigError": ("jaxcollapse.errors", "ConfigError"),
    **{name: ("jaxcollapse.core.initial", name) for name in ("Initial", "dirichlet", "geometric", "table",
                                                             "uniform", "zipf")},
    **{name: ("jaxcollapse.core.count", name) for name in ("Config", "Params", "State", "build", "decode",
                                                           "first_step", "init", "measure", "next_step",
                                                           "step")},
    "METRICS": ("jaxcollapse.core.metrics", "METRICS"),
    **{name: ("jaxcollapse.core.regimes", name) for name in ("REGIMES", "Decoding", "Regime", "accumulate",
                                                             "accumulate_subsample", "fresh_real",
                                                             "fully_synthetic", "most_recent",
                                                             "partially_synthetic", "random_history",
                                                             "regime")},
    "Result": ("jaxcollapse.engine.result", "Result"),
    "Summary": ("jaxcollapse.engine.result", "Summary"),
    "simulate": ("jaxcollapse.engine.simulate", "simulate"),
    "simulate_trained": ("jaxcollapse.engine.simulate", "simulate_trained"),
    "Corpus": ("jaxcollapse.io.corpus", "Corpus"),
    "load_corpus": ("jaxcollapse.io.corpus", "load_corpus"),
    "ngram_model": ("jaxcollapse.io.corpus", "ngram_model"),
    "Run": ("jaxcollapse.io.rundir", "Run"),
    "load_run": ("jaxcollapse.io.rundir", "load_run"),
    "save_result": ("jaxcollapse.io.rundir", "save_result"),
    "Autoregressive": ("jaxcollapse.core.autoregressive", "Autoregressive"),
    "autoregressive_regime": ("jaxcollapse.core.autoregressive", "autoregressive"),
    "Training": ("jaxcollapse.core.trained", "Training"),
    "sweep": ("jaxcollapse.sweeps.sweep", "sweep"),
    "Spec": ("jaxcollapse.sweeps.spec", "Spec"),
    "SweepResult": ("jaxcollapse.sweeps.sweep", "SweepResult"),
    "merge_sweep": ("jaxcollapse.sweeps.sweep", "merge"),
    "load_sweep": ("jaxcollapse.sweeps.sweep", "load_sweep"),
    "plot_sweep": ("jaxcollapse.sweeps.phase", "plot_sweep"),
    # modules
    "kernel": ("jaxcollapse.core.count", None),
    "resample": ("jaxcollapse.core.resample", None),
    "samplers": ("jaxcollapse.core.samplers", None),
    "metrics": ("jaxcollapse.core.metrics", None),
    "trained": ("jaxcollapse.core.trained", None),
    "theory": ("jaxcollapse.stats.theory", None),
    "analysis": ("jaxcollapse.stats.analysis", None),
    "reproduce": ("jaxcollapse.studies.paper", None),
    "text_study": ("jaxcollapse.studies.text", None),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'jaxcollapse' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
