"""jaxcollapse: a JAX Monte Carlo engine for model collapse under recursive training.

A categorical / n-gram language model is refitted, generation after generation, by counting on samples
drawn from its predecessor (Seddik et al., arXiv 2404.05090). ``simulate`` runs thousands of independent
chains of that recursion at once, under every data regime of the paper and its follow-ups.
"""

from . import kernel, metrics, resample, samplers
from .errors import ConfigError
from .initial import Initial, dirichlet, geometric, table, uniform, zipf
from .kernel import Config, Params, State, build, decode, first_step, init, measure, next_step, step
from .metrics import METRICS
from .regimes import (REGIMES, Decoding, Regime, accumulate, accumulate_subsample, fresh_real,
                      fully_synthetic, most_recent, partially_synthetic, random_history, regime)
from .result import Result, Summary
from .simulate import simulate
from .corpus import Corpus, load_corpus, ngram_model
from .results_io import Run, load_run, save_result
from .autoregressive import Autoregressive
from .autoregressive import autoregressive as autoregressive_regime
from .trained import Training, simulate_trained
from .sweep import Spec, SweepResult, sweep
from .sweep import merge as merge_sweep
from .phase import plot_sweep

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Initial", "dirichlet", "geometric", "table", "uniform", "zipf",
    "Config", "Params", "State", "build", "decode", "first_step", "init", "measure", "next_step", "step",
    "METRICS", "REGIMES", "Decoding", "Regime", "accumulate", "accumulate_subsample", "fresh_real",
    "fully_synthetic", "most_recent", "partially_synthetic", "random_history", "regime",
    "Result", "Summary", "simulate", "Corpus", "load_corpus", "ngram_model", "Run", "load_run", "save_result",
    "kernel", "metrics", "resample", "samplers",
    "Autoregressive", "autoregressive_regime", "Training", "simulate_trained",
    "sweep", "Spec", "SweepResult", "merge_sweep", "plot_sweep",
]

from . import reproduce  # noqa: E402  (the paper's figures: reproduce.FIGURES)

__all__ += ["reproduce"]
