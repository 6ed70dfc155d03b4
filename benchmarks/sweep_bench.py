"""Benchmark: a parameter sweep as bucketed, vmapped calls against running its points one by one with
``simulate``.

    PYTHONPATH=. python benchmarks/sweep_bench.py                       # examples/sweep-phase.toml, in full
    PYTHONPATH=. python benchmarks/sweep_bench.py --every 4 --chains 500 --sequential 10

``--every K`` keeps every K-th point of the sweep (a smaller but representative sweep: same regimes, sizes and
fractions spread over the grid); ``--sequential P`` times only P of the points one by one (spread over the sweep)
and scales that time up to all points, said so in the table. Both paths start from empty compilation caches and
count compilation, as a user running either would. Prints a table and a markdown snippet (``--markdown FILE``
writes it to a file as well).
"""

from __future__ import annotations

import os

# compile times here are of real compilations: no persistent cache unless one is named
os.environ.setdefault("JAXCOLLAPSE_CACHE_DIR", "off")

import argparse
import importlib
import platform
import sys
import time

import jax

import jaxcollapse as jc

SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "examples",
                                                            "sweep-phase.toml"))
    ap.add_argument("--every", type=int, default=1, help="keep every K-th point (default: all)")
    ap.add_argument("--chains", type=int, default=None)
    ap.add_argument("--generations", type=int, default=None)
    ap.add_argument("--sequential", type=int, default=None, metavar="P",
                    help="time P points one by one and scale up (default: all points)")
    ap.add_argument("--markdown", default=None, metavar="FILE")
    args = ap.parse_args(argv)

    spec = SP.load_spec(args.spec)
    spec.points = spec.points[:: args.every]
    if args.chains:
        spec.chains = args.chains
    if args.generations:
        spec.generations = args.generations
    plan = PL.make_plan(spec)
    n = len(plan.points)
    work = n * spec.chains * spec.generations
    print(PL.describe_plan(plan), flush=True)

    jax.clear_caches()
    t0 = time.perf_counter()
    res = jc.sweep(spec)
    t_sweep = time.perf_counter() - t0
    assert res.complete

    jax.clear_caches()
    k = n if args.sequential is None else max(1, min(args.sequential, n))
    chosen = [plan.points[round(i * (n - 1) / max(k - 1, 1))] for i in range(k)] if k < n else plan.points
    t0 = time.perf_counter()
    for p in chosen:
        jc.simulate(SP.point_key(spec.seed, p), p.initial, p.regime, chains=spec.chains,
                    generations=spec.generations, decoding=p.decoding, smoothing=p.smoothing, sampler=p.sampler,
                    keep_traces=False, keep_final=False)
    t_one = (time.perf_counter() - t0) * n / k

    dev = jax.devices()[0]
    where = f"{dev.platform} ({dev.device_kind}), {os.cpu_count()} CPU cores, {platform.machine()}"
    one_note = "" if k == n else f" (timed {k} of {n} points, scaled)"
    rows = [
        ("sweep (bucketed, vmapped)", t_sweep, plan.compilations),
        ("simulate, one point at a time" + one_note, t_one, None),
    ]
    lines = [f"sweep benchmark: {os.path.basename(args.spec)}, {n} points x {spec.chains} chains x "
             f"{spec.generations} generations ({work / 1e6:.1f}M chain-generations) on {where}; "
             f"one run each, compilation included, jax {jax.__version__}", "",
             "| method | wall time (s) | chain-generations/s | compilations |", "|---|---:|---:|---:|"]
    for name, t, comp in rows:
        lines.append(f"| {name} | {t:.1f} | {work / t / 1e3:.0f}k | {comp if comp is not None else 'one per shape'} |")
    lines.append("")
    lines.append(f"speed-up of the sweep: {t_one / t_sweep:.1f}x")
    from jaxcollapse.bench.report import emit

    return emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
