"""Golden outputs at fixed seeds: every regime, sampler, decoding, smoothing, n-gram table, trained
estimator, the autoregressive regime, a sweep and the trajectory recorder.

``python tests/golden_cases.py`` records them into ``tests/golden/`` (only when the random streams are
meant to change, said in the commit); ``tests/test_golden.py`` checks that the engine still reproduces them.
Integer records (collapse times and tokens) and the models must match bit for bit; metric traces are sums
whose order XLA may choose per program, so they are compared to 1e-12 relative.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")

CHAINS, GENERATIONS = 6, 12


def _count_cases():
    import jaxcollapse as jc

    z = jc.zipf(20, 1.1, 12)
    table = jc.dirichlet(6, concentration=1.0, contexts=4, seed=3)
    cases = {}
    regimes = {
        "fully": jc.fully_synthetic(15),
        "partial": jc.partially_synthetic(20, 10),
        "fresh": jc.fresh_real(16, 0.5),
        "accumulate": jc.accumulate(12, 6),
        "subsample": jc.accumulate_subsample(12, 6, 10),
        "recent": jc.most_recent(12, 3),
        "history": jc.random_history(12),
    }
    samplers = {"fully": ("auto", "resample", "tokens", "binomial"),
                "partial": ("resample", "tokens", "binomial"),
                "fresh": ("resample", "tokens", "binomial"),
                "accumulate": ("resample", "tokens", "binomial"),
                "subsample": ("tokens", "binomial"),
                "recent": ("tokens", "binomial"),
                "history": ("tokens", "binomial")}
    for name, regime in regimes.items():
        for s in samplers[name]:
            cases[f"{name}-{s}"] = dict(initial=z, regime=regime, sampler=s)
    cases["fully-temperature"] = dict(initial=z, regime=regimes["fully"], decoding=jc.Decoding(temperature=0.8))
    cases["fully-topk"] = dict(initial=z, regime=regimes["fully"], decoding=jc.Decoding(top_k=5))
    cases["fresh-topp"] = dict(initial=z, regime=regimes["fresh"], decoding=jc.Decoding(top_p=0.8))
    cases["recent-temperature"] = dict(initial=z, regime=regimes["recent"], decoding=jc.Decoding(temperature=1.3))
    cases["history-topk"] = dict(initial=z, regime=regimes["history"], decoding=jc.Decoding(top_k=4))
    cases["fully-smoothing"] = dict(initial=z, regime=regimes["fully"], smoothing=0.01)
    cases["partial-smoothing"] = dict(initial=z, regime=regimes["partial"], smoothing=0.05)
    cases["table-fully-resample"] = dict(initial=table, regime=jc.fully_synthetic(40), sampler="resample",
                                         per_context=True)
    cases["table-fully-tokens"] = dict(initial=table, regime=jc.fully_synthetic(40), sampler="tokens",
                                       per_context=True)
    cases["table-partial-binomial"] = dict(initial=table, regime=jc.partially_synthetic(40, 20),
                                           sampler="binomial", per_context=True)
    cases["table-recent"] = dict(initial=table, regime=jc.most_recent(48, 2), per_context=True)
    cases["table-subsample"] = dict(initial=table, regime=jc.accumulate_subsample(40, 16, 30), per_context=True)
    cases["large-n-binomial"] = dict(initial=jc.zipf(50, 1.1), regime=jc.fully_synthetic(10**7),
                                     sampler="binomial")
    return cases


def _trained_cases():
    import jaxcollapse as jc

    z = jc.zipf(10, 1.1, 8)
    corpus = jc.ngram_model("the cat sat on the mat and the dog sat on the log " * 8, order=2, tokenizer="chars")
    tr = jc.Training(optimizer="adam", learning_rate=0.1, steps=20)
    return {
        "trained-count": dict(initial=z, regime=jc.fully_synthetic(30), estimator="count"),
        "trained-softmax": dict(initial=z, regime=jc.partially_synthetic(20, 10), estimator="softmax", training=tr),
        "trained-softmax-fresh": dict(initial=z, regime=jc.fresh_real(20, 0.5), estimator="softmax", training=tr),
        "trained-embedding": dict(initial=corpus, regime=jc.accumulate(60, 30), estimator="embedding",
                                  training=jc.Training(steps=10, dim=4, hidden=8)),
        "trained-autoregressive": dict(initial=corpus, regime=jc.autoregressive_regime(200, fraction=0.5,
                                                                                        length=16),
                                       estimator="softmax", training=tr),
    }


def _arrays(res) -> dict:
    out = {"collapse_time": res.collapse_time, "collapse_token": res.collapse_token,
           "context_collapse_time": res.context_collapse_time, "final": res.final}
    for m, t in res.traces.items():
        out[f"trace/{m}"] = t
    if res.context_traces is not None:
        for m, t in res.context_traces.items():
            out[f"context/{m}"] = t
    return out


def _simulate_case(kw):
    def run():
        import jax
        import jaxcollapse as jc

        k = dict(kw)
        initial, regime = k.pop("initial"), k.pop("regime")
        res = jc.simulate(jax.random.key(7), initial, regime, chains=CHAINS, generations=GENERATIONS,
                          keep_final=True, chunk_size=4, **k)
        return _arrays(res)
    return run


def _trained_case(kw):
    def run():
        import jaxcollapse as jc

        k = dict(kw)
        initial, regime = k.pop("initial"), k.pop("regime")
        res = jc.simulate_trained(11, initial, regime, chains=4, generations=5, keep_final=True, chunk_size=3,
                                  **k)
        arrays = _arrays(res)
        arrays["context_l1"] = np.asarray(res.settings["context_l1"])
        return arrays
    return run


def _sweep_case():
    import jaxcollapse as jc

    sw = jc.sweep({"chains": 5, "generations": 10, "seed": 3, "keep_final": True, "vocab": 20, "support": 12,
                   "grid": [{"regime": ["fully_synthetic"], "size": [8, 16]},
                            {"regime": ["fresh_real"], "size": [8, 16], "fraction": [0.5, 0.9]}]})
    return {f"{i}/{k}": rec[k] for i, rec in sw.records.items()
            for k in ("collapse_time", "collapse_token", "context_collapse_time", "final", "mean", "collapsed")}


def _trajectories_case():
    import jaxcollapse as jc
    from jaxcollapse.engine.simulate import trajectories

    return {"models": trajectories(5, jc.zipf(8, 1.0), jc.fully_synthetic(10), chains=3, generations=8)}


def cases() -> dict:
    """``{case name: function returning {array name: array}}``."""
    out = {name: _simulate_case(kw) for name, kw in _count_cases().items()}
    out.update({name: _trained_case(kw) for name, kw in _trained_cases().items()})
    out["sweep"] = _sweep_case
    out["trajectories"] = _trajectories_case
    return out


def path(case: str) -> str:
    return os.path.join(GOLDEN, f"{case}.npz")


def record() -> None:
    os.makedirs(GOLDEN, exist_ok=True)
    for case, run in cases().items():
        arrays = run()
        np.savez_compressed(path(case), **{k: v for k, v in arrays.items() if v is not None})
    import jax

    with open(os.path.join(GOLDEN, "versions.json"), "w") as f:
        json.dump({"jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
                   "numpy": np.__version__}, f, indent=1)
    print(f"recorded {len(os.listdir(GOLDEN)) - 1} golden files in {GOLDEN}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    record()
