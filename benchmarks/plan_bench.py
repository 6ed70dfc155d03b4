"""Benchmark: planning a sweep (resolving its points, building their configurations, bucketing, call groups, one
shard's share) at 10^4, 10^5 and 10^6 points, each in a fresh process: seconds and peak resident memory.

    PYTHONPATH=. python benchmarks/plan_bench.py                  # 10^4, 10^5, 10^6 points
    PYTHONPATH=. python benchmarks/plan_bench.py --points 10000 100000 --vocab 600

The sweep is a grid of sizes x fractions in the fresh-real regime (zipf(1.1) on 52 of ``--vocab`` tokens), 1,000
chains x 100 generations (the counts only set the bucketing's weights: nothing is simulated). Prints a markdown
table with the 1-minute load average at the end of each count (the machine may be shared); ``--markdown FILE``
writes it to a file as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def grid(points: int, vocab: int) -> dict:
    sizes = list(range(2, 102))                                 # 100 sizes: 100 distinct padded sizes
    fractions = [round((k + 1) / (points // 100), 9) for k in range(points // 100)]
    return {"chains": 1000, "generations": 100, "initial": "zipf", "vocab": vocab, "support": min(52, vocab),
            "exponent": 1.1, "grid": {"regime": ["fresh_real"], "size": sizes, "fraction": fractions}}


def one(points: int, vocab: int, shards: int) -> dict:
    """Plan one sweep in this process; returns the timings (seconds) and the peak resident memory (bytes)."""
    import jax  # noqa: F401  (imported before the clock starts, as a sweep command has)

    from jaxcollapse.sweeps.plan import make_plan
    from jaxcollapse.sweeps.spec import resolve, spec_from_dict

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    spec = spec_from_dict(grid(points, vocab))
    t1 = time.perf_counter()
    pts = resolve(spec)
    t2 = time.perf_counter()
    plan = make_plan(spec, pts, platform="cpu")
    t3 = time.perf_counter()
    share = plan.share(shards - 1, shards)
    t4 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"points": len(plan.points), "spec_s": t1 - t0, "resolve_s": t2 - t1, "plan_s": t3 - t2,
            "share_s": t4 - t3, "total_s": t4 - t0, "peak_bytes": peak, "import_bytes": base,
            "buckets": len(plan.buckets), "groups": sum(len(b.tasks) for b in plan.buckets),
            "share_groups": sum(len(b.tasks) for b in share.buckets), "load": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--vocab", type=int, default=600)
    ap.add_argument("--shards", type=int, default=100, help="time the share of the last of this many shards")
    ap.add_argument("--markdown", default=None, metavar="FILE")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.vocab, args.shards)))
        return 0
    rows = []
    for n in args.points:
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--vocab", str(args.vocab), "--shards",
                              str(args.shards)], env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['points']:>9,} points: {r['total_s']:.1f} s ({r['resolve_s']:.1f} s resolving the points, "
              f"{r['plan_s']:.1f} s configurations and buckets, {r['share_s'] * 1e3:.0f} ms a shard's share), "
              f"peak {r['peak_bytes'] / 2**20:,.0f} MiB, load {r['load']:.1f}", flush=True)
    import jax

    lines = [f"Planning ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, jax "
             f"{jax.__version__}; fresh-real grid of 100 sizes x fractions, vocab {args.vocab}):", "",
             "| points | total | resolving points | configurations + buckets | one shard's share (of "
             f"{args.shards}) | buckets | call groups | peak memory (RSS) | load |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['points']:,} | {r['total_s']:.1f} s | {r['resolve_s']:.1f} s | {r['plan_s']:.1f} s | "
                     f"{r['share_s'] * 1e3:.0f} ms | {r['buckets']} | {r['groups']:,} | "
                     f"{r['peak_bytes'] / 2**20:,.0f} MiB | {r['load']:.1f} |")
    from jaxcollapse.bench.report import emit

    return emit("\n".join(lines), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
