"""Benchmark: a sweep run through a local Ray cluster against the same sweep in one process.

    PYTHONPATH=. python benchmarks/ray_bench.py                     # 500 points x 100 chains x 50 generations
    PYTHONPATH=. python benchmarks/ray_bench.py --sizes 10 --cpus 2

The sweep: regimes fresh_real and partially_synthetic x ``--sizes`` sample sizes x ``--fractions`` fractions
(vocabulary 100, Zipf). One process runs :func:`run_plan`; Ray runs :func:`run_plan_ray` on a local cluster of
``--cpus`` CPUs (one task per call group); both count compilation (each Ray worker compiles the buckets it runs),
and the Ray time is given with and without starting the cluster. The records are checked equal, array by array.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import time

import numpy as np

SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")
RUN = importlib.import_module("jaxcollapse.sweeps.run")
RE = importlib.import_module("jaxcollapse.sweeps.ray_engine")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, default=25)
    ap.add_argument("--fractions", type=int, default=10)
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--generations", type=int, default=50)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    sizes = [int(s) for s in np.unique(np.geomspace(20, 400, args.sizes).round())]
    fractions = [round(float(f), 3) for f in np.linspace(0.1, 0.9, args.fractions)]
    spec = SP.spec_from_dict({"chains": args.chains, "generations": args.generations, "seed": 0, "vocab": 100,
                              "support": 50, "initial": "zipf",
                              "grid": {"regime": ["fresh_real", "partially_synthetic"], "size": sizes,
                                       "fraction": fractions}})
    plan = PL.make_plan(spec)
    n = len(plan.points)
    print(PL.describe_plan(plan), flush=True)
    load = [os.getloadavg()]

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    t1 = time.perf_counter()
    by_ray = RE.run_plan_ray(plan)
    t_ray = time.perf_counter() - t1
    t_start = t1 - t0
    ray.shutdown()
    load.append(os.getloadavg())

    t0 = time.perf_counter()
    one = RUN.run_plan(plan)
    t_one = time.perf_counter() - t0
    load.append(os.getloadavg())

    for i, rec in one.items():
        for k, v in rec.items():
            if isinstance(v, np.ndarray):
                assert np.array_equal(by_ray[i][k], v, equal_nan=True), (i, k)
    work = n * spec.chains * spec.generations
    print(f"\n{n} points x {spec.chains} chains x {spec.generations} generations = {work / 1e6:.2f}M "
          f"chain-generations, {plan.compilations} buckets, {sum(len(b.tasks) for b in plan.buckets)} call groups")
    print("| run | wall s | k chain-generations/s |\n|---|---:|---:|")
    print(f"| one process (`run_plan`) | {t_one:.1f} | {work / t_one / 1e3:.1f} |")
    print(f"| Ray, {args.cpus} CPU workers (`run_plan_ray`), cluster running | {t_ray:.1f} | "
          f"{work / t_ray / 1e3:.1f} |")
    print(f"| Ray, starting the cluster included (+{t_start:.1f} s) | {t_ray + t_start:.1f} | "
          f"{work / (t_ray + t_start) / 1e3:.1f} |")
    print("records equal, array by array; load average (1, 5, 15 min) before / after Ray / after one process: "
          + " / ".join(", ".join(f"{x:.1f}" for x in la) for la in load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
