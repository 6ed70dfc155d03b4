"""``jaxcollapse bench`` / ``python benchmarks/bench.py``: the command line of the benchmark.

:func:`main` parses the flags, runs :func:`jaxcollapse.bench.runner.run`, prints the Markdown and writes the
JSON / Markdown files. JAX is imported only once a benchmark runs (not for ``--help``, ``--list`` or a bad flag).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ConfigError
from ..io.files import write_text
from .machine import UNIFORMS_PER_BINOMIAL
from .report import fmt, markdown, write_json
from .runner import B_MAX_DRAWS, run
from .workloads import QUICK_CHAINS, QUICK_GENERATIONS, QUICK_WORKLOADS, WORKLOADS


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog, description="Benchmark jaxcollapse.simulate against NumPy and jax.random references "
        "on six standard workloads.", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads:\n" + "\n".join("  " + w.describe() for w in WORKLOADS.values()))
    ap.add_argument("--workloads", default=None,
                    help="comma-separated workload names (default: all; with --quick: " + ",".join(QUICK_WORKLOADS) + ")")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="divide chains and generations by this factor (default 1 = full size)")
    ap.add_argument("--chain-scale", type=float, default=None, help="divide chains by this (default: --scale)")
    ap.add_argument("--gen-scale", type=float, default=None, help="divide generations by this (default: --scale)")
    ap.add_argument("--chains", type=int, default=None, help="run exactly this many chains (every workload)")
    ap.add_argument("--generations", type=int, default=None, help="run exactly this many generations")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per implementation (default 5; quick 3)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds one timed reference run may take before it is timed on a subset and "
                         "extrapolated (default 30; quick 0.5)")
    ap.add_argument("--refs", default="a,b,c", help="references to run: any of a,b,c (default a,b,c)")
    ap.add_argument("--sampler", default="auto", help="engine sampler passed to simulate: auto (default) or one of "
                         "jaxcollapse.samplers.SAMPLERS (e.g. resample, tokens, binomial)")
    ap.add_argument("--chunk-size", type=int, default=None, help="engine chains per compiled call (default: auto)")
    ap.add_argument("--processes", type=int, default=1,
                    help="time the engine as P pinned processes on this machine "
                    "(jaxcollapse.engine.local; default 1); the references run in this process, after it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-micro", action="store_true", help="skip the engine's per-piece (sampler/step/metrics) timing")
    ap.add_argument("--rng-size", type=int, default=None,
                    help="batch size of the random-number throughput test (default 2^24; quick 2^20; 0 = skip)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: <= {QUICK_CHAINS} chains x {QUICK_GENERATIONS} generations, "
                         f"workloads {','.join(QUICK_WORKLOADS)} unless given (under a minute)")
    ap.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    ap.add_argument("--markdown", metavar="FILE", help="write the Markdown tables")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return ap


def resolve(args: argparse.Namespace) -> tuple[dict, str]:
    """The settings of a run from the parsed flags (defaults filled in, ``--quick`` applied) and their one-line
    summary for the report. Raises ConfigError on unknown workloads, references or samplers and on non-positive
    values."""
    names = (args.workloads.split(",") if args.workloads else list(QUICK_WORKLOADS if args.quick else WORKLOADS))
    names = [n.strip().upper() for n in names if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ConfigError(f"--workloads: unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    refs = [r.strip().lower() for r in args.refs.split(",") if r.strip()]
    bad = [r for r in refs if r not in ("a", "b", "c")]
    if bad:
        raise ConfigError(f"--refs: unknown reference(s) {', '.join(bad)}; choose from a, b, c")
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 30.0)
    rng_size = args.rng_size if args.rng_size is not None else (1 << 20 if args.quick else 1 << 24)
    chain_scale = args.chain_scale if args.chain_scale is not None else args.scale
    gen_scale = args.gen_scale if args.gen_scale is not None else args.scale
    for flag, value in (("--repeats", repeats), ("--budget", budget), ("--scale/--chain-scale", chain_scale),
                        ("--scale/--gen-scale", gen_scale), ("--chains", args.chains),
                        ("--generations", args.generations), ("--chunk-size", args.chunk_size)):
        if value is not None and not value > 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    from ..engine.local import core_groups
    core_groups(args.processes, name="--processes")
    if args.rng_size is not None and args.rng_size < 0:
        raise ConfigError(f"--rng-size must be >= 0 (0 = skip), got {args.rng_size}")
    settings = {"workloads": names, "refs": refs, "repeats": repeats, "budget_s": budget,
                "chain_scale": chain_scale, "gen_scale": gen_scale, "chains": args.chains,
                "generations": args.generations, "quick": args.quick, "sampler": args.sampler,
                "chunk_size": args.chunk_size, "processes": args.processes, "seed": args.seed, "rng_size": rng_size,
                "uniforms_per_binomial_estimate": UNIFORMS_PER_BINOMIAL, "b_max_draws": B_MAX_DRAWS,
                "argv": sys.argv[1:]}
    text = (f"repeats {repeats}, reference budget {fmt(budget)} s/run, chain scale {fmt(chain_scale)}, "
            f"generation scale {fmt(gen_scale)}, sampler {args.sampler}"
            + (f", engine in {args.processes} pinned processes" if args.processes > 1 else "")
            + (", QUICK" if args.quick else ""))
    return settings, text


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``jaxcollapse bench`` / ``python benchmarks/bench.py``: run, print the Markdown, write JSON/Markdown.
    A bad flag or value prints one line ``jaxcollapse: error: ...`` and returns 2."""
    parser = build_parser(prog)

    def one_line_error(message):
        raise ConfigError(message)

    parser.error = one_line_error
    try:
        args = parser.parse_args(argv)
        if args.list:
            for w in WORKLOADS.values():
                print(w.describe())
            return 0
        settings, text = resolve(args)
        for path in (args.markdown, args.json):
            if path:
                check_writable(path)
    except ConfigError as e:
        print(f"jaxcollapse: error: {e}", file=sys.stderr)
        return 2
    # compile times are of real compilations unless the caller names a cache (JAXCOLLAPSE_CACHE_DIR=DIR)
    os.environ.setdefault("JAXCOLLAPSE_CACHE_DIR", "off")
    report = run(settings, text, micro=not args.no_micro, quiet=args.quiet)
    out = markdown(report)
    print(out)
    if args.markdown:
        write_text(args.markdown, out)
    if args.json:
        write_json(report, args.json)
    return 0


def check_writable(path: str) -> None:
    """ConfigError unless ``path`` can be written (its folder exists and is writable, and it is not a folder),
    before the benchmark runs."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a directory, not a file to write")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {folder} is not a writable directory")


if __name__ == "__main__":
    sys.exit(main())
