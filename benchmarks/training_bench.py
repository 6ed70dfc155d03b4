"""Cost of gradient-trained estimators against the counting estimator, per generation per chain.

Each setting runs ``jaxcollapse.trained.simulate_trained`` with the estimators count, softmax and embedding on
the same data regime (same keys, same sample sizes); one untimed run compiles, then the median of
``--repeats`` timed runs is reported. Prints a markdown table: microseconds per chain-generation and the
ratio to counting in the same run.

    python benchmarks/training_bench.py [--chains 128] [--generations 10] [--steps 100] [--repeats 3]
"""

from __future__ import annotations

import os

# compile times here are of real compilations: no persistent cache unless one is named
os.environ.setdefault("JAXCOLLAPSE_CACHE_DIR", "off")

import argparse
import platform
import statistics
import time

import jax

import jaxcollapse as jc
from jaxcollapse import text_study
from jaxcollapse.core.trained import Training
from jaxcollapse.engine.simulate import simulate_trained


def settings():
    corpus = jc.ngram_model(text_study.default_text(), order=3)
    return [
        ("Zipf(1.1), 52 of 600 tokens, n = 100, fully synthetic", jc.zipf(600, 1.1, 52), jc.fully_synthetic(100)),
        (f"tales.txt order 3 ({corpus.initial.contexts}×{corpus.initial.vocab}), {corpus.events:,} tokens, "
         "fully synthetic", corpus, jc.fully_synthetic(corpus.events)),
        ("tales.txt order 3, autoregressive text", corpus, jc.autoregressive_regime(corpus.events)),
    ]


def time_one(initial, regime, estimator, training, chains, generations, repeats) -> float:
    kw = dict(chains=chains, generations=generations, estimator=estimator, training=training, keep_final=False)
    simulate_trained(0, initial, regime, **kw)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        simulate_trained(r + 1, initial, regime, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=128)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    training = Training(optimizer="adam", learning_rate=0.1, steps=args.steps)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}); {platform.processor() or platform.machine()}; "
          f"jax {jax.__version__}; {args.chains} chains × {args.generations} generations, adam, "
          f"{args.steps} full-batch steps per generation; median of {args.repeats} runs after one compiling run\n")
    print("| setting | estimator | µs per chain-generation | ratio to count |")
    print("|---|---|---:|---:|")
    work = args.chains * args.generations
    for name, initial, regime in settings():
        base = None
        for estimator in ("count", "softmax", "embedding"):
            t = time_one(initial, regime, estimator, training, args.chains, args.generations, args.repeats)
            us = 1e6 * t / work
            base = us if estimator == "count" else base
            print(f"| {name} | {estimator} | {us:,.0f} | {us / base:,.1f}× |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
