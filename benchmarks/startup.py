"""Start-up with and without the persistent compilation cache: each case runs in a fresh process twice against
one new, empty cache directory (first: compiles and fills it; second: reads it back), alternating cases.

    python benchmarks/startup.py [--rounds 2] [--chains 8] [--generations 3]

Cases: the default ``jaxcollapse run`` (process wall time, ``--quiet --no-plots``) and each workload W1-W6 at
``--chains`` chains x ``--generations`` generations (the process wall time; the first ``simulate`` call,
``import jax`` included as before; and the call alone, after ``import jax`` and the engine's modules). Prints a
Markdown table of medians over the rounds; the cache size is that of all cases together.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SIMULATE = """
import time, jaxcollapse as jc
from jaxcollapse.bench.workloads import WORKLOADS
w = WORKLOADS[{name!r}]
initial, regime = w.engine_inputs()
t = time.perf_counter()
import jax, jaxcollapse.engine.simulate
t1 = time.perf_counter()
jc.simulate(0, initial, regime, chains={chains}, generations={gens}, keep_final=False)
t2 = time.perf_counter()
print(t2 - t, t2 - t1)
"""


def run_case(name: str, cache: str, chains: int, gens: int, out: str) -> tuple[float, float | None, float | None]:
    """``(process wall seconds, first simulate call seconds with imports, without; None for the command)`` of
    one fresh process."""
    env = dict(os.environ, JAXCOLLAPSE_CACHE_DIR=cache, PYTHONPATH=ROOT)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if name == "run":
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "jaxcollapse", "run", "--quiet", "--no-plots", "--out", out]
    else:
        cmd = [sys.executable, "-c", _SIMULATE.format(name=name, chains=chains, gens=gens)]
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    if name == "run":
        return wall, None, None
    with_imports, call = (float(x) for x in p.stdout.split()[-2:])
    return wall, with_imports, call


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--cases", default="run,W1,W2,W3,W4,W5,W6")
    args = ap.parse_args()
    cases = args.cases.split(",")
    times = {c: {"cold": [], "cached": []} for c in cases}
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            cache = os.path.join(tmp, f"cache{r}")
            for c in cases:
                for kind in ("cold", "cached"):
                    times[c][kind].append(run_case(c, cache, args.chains, args.generations, os.path.join(tmp, "out")))
                    print(f"round {r} {c} {kind}: {times[c][kind][-1]} load {os.getloadavg()[0]:.2f}",
                          file=sys.stderr, flush=True)
            size = dir_bytes(cache)
    print("| case | process s, cold | process s, cached | first `simulate` s, cold | first `simulate` s, cached "
          "| the call alone s, cold | the call alone s, cached |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        def med(kind, i):
            xs = [t[i] for t in times[c][kind] if t[i] is not None]
            return f"{statistics.median(xs):.2f}" if xs else "-"
        label = ("`jaxcollapse run` (default study)" if c == "run"
                 else f"{c}, {args.chains} chains x {args.generations} gens")
        print(f"| {label} | {med('cold', 0)} | {med('cached', 0)} | {med('cold', 1)} | {med('cached', 1)} "
              f"| {med('cold', 2)} | {med('cached', 2)} |")
    print(f"\nmedians of {args.rounds} rounds; cache after all cases: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
