"""Time per generation of the CLI's default study and of 10,000 chains at vocabulary 600, n = 100, against
NumPy's ``Generator.multinomial`` (2-D pvals, a Python loop over generations, the same 8 metrics), in one run.

    python benchmarks/default_study.py [--repeats 5]
"""

from __future__ import annotations

import os

# compile times here are of real compilations: no persistent cache unless one is named
os.environ.setdefault("JAXCOLLAPSE_CACHE_DIR", "off")

import argparse
import statistics
import time

import numpy as np

import jaxcollapse as jc
from jaxcollapse.bench.reference import numpy_multinomial


def numpy_reference(p0: np.ndarray, n: int, chains: int, generations: int, seed: int) -> float:
    """Seconds for the whole study with ``rng.multinomial`` and the 8 metrics in NumPy (reference (a) of
    ``jaxcollapse bench``, :func:`jaxcollapse.bench.reference.numpy_multinomial`)."""
    t0 = time.perf_counter()
    numpy_multinomial(p0, n, chains, generations, seed)
    return time.perf_counter() - t0


def engine(initial, n: int, chains: int, generations: int, seed: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = jc.simulate(seed, initial, jc.fully_synthetic(n), chains=chains, generations=generations, keep_final=False)
    return time.perf_counter() - t0, r.settings["sampler"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    studies = [
        ("default study: zipf(1.1) on 52 of 600 tokens, n=100, 2000 chains x 200 gens",
         jc.zipf(600, 1.1, support=52), 100, 2000, 200),
        ("zipf(1.1) on 52 of 600 tokens, n=100, 10000 chains x 200 gens", jc.zipf(600, 1.1, support=52), 100, 10000, 200),
        ("zipf(1.1) on all 600 tokens, n=100, 10000 chains x 200 gens", jc.zipf(600, 1.1), 100, 10000, 200),
    ]
    print("| study | engine ms/gen (sampler) | first call s | NumPy ms/gen | speed-up |")
    print("|---|---|---|---|---|")
    for name, initial, n, chains, gens in studies:
        first, sampler = engine(initial, n, chains, gens, 0)
        eng = [engine(initial, n, chains, gens, s + 1)[0] for s in range(args.repeats)]
        ref = [numpy_reference(initial.probs[0], n, chains, gens, s) for s in range(args.repeats)]
        e, r = statistics.median(eng) / gens * 1e3, statistics.median(ref) / gens * 1e3
        print(f"| {name} | {e:.2f} ({sampler}) | {first:.2f} | {r:.2f} | {r / e:.2f}x |", flush=True)
    print(f"\nmedians of {args.repeats} runs each; first call includes compilation")


if __name__ == "__main__":
    main()
