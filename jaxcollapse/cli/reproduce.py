"""``jaxcollapse reproduce FIGURE``: rerun the paper's figures (:mod:`jaxcollapse.studies.paper`) with confidence
intervals and theory."""

from __future__ import annotations

import json
import pathlib
import sys
import time

from ..errors import ConfigError, check_float, check_int
from .progress import Lines, add_progress_arguments, every_seconds, is_terminal

#: Chains per series at scale 1: :data:`jaxcollapse.studies.paper.CHAINS` (not imported here: the studies load
#: NumPy and SciPy, and the parser must stay light).
PAPER_CHAINS = 10_000

DESCRIPTION = """Rerun the paper's experiments (Seddik et al., arXiv 2404.05090) with 10,000 chains where the paper
used 100, and write for each NAME: NAME.png (the figure, 95% intervals and the theory curves), NAME.csv (every
plotted number, tidy: figure,series,x_name,x,quantity,kind,value,ci_low,ci_high,se,chains,z) and NAME.json
(headline numbers and the z-tests against the exact theory). 'all' runs every figure and writes summary.json
with the wall times. Progress goes to stderr."""


def add_arguments(parser) -> None:
    parser.add_argument("figure", metavar="FIGURE",
                        help="fig1, fig2, fig3, fig4, fig5, fig6, regimes, decoding (and any registered later), or all")
    parser.add_argument("--out", default="reproduce-out", metavar="DIR",
                        help="output directory (default: reproduce-out)")
    parser.add_argument("--chains", type=int, default=None,
                        help=f"chains per series (default: {PAPER_CHAINS:,} × scale)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies chain and generation counts, e.g. 0.05 for a quick look (default: 1)")
    parser.add_argument("--pdf", action="store_true", help="also write NAME.pdf")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="J",
                        help="figures run at once by 'all', each in a process of its own (default: the CPU count, "
                        "at most 4; 1 runs them one after another here). The numbers do not depend on it")
    add_progress_arguments(parser, quiet=False)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def _call(fn, out, *, scale, seed, progress, chains, pdf):
    import inspect

    kwargs = {"scale": scale, "seed": seed, "progress": progress}
    params = inspect.signature(fn).parameters
    if chains is not None:
        if "chains" in params:
            kwargs["chains"] = chains
        elif progress is not None:
            progress(f"{fn.__name__} takes no chain count: --chains ignored, --scale {scale:g} used")
    if pdf and "pdf" in params:
        kwargs["pdf"] = True
    return fn(out, **kwargs)


#: XLA's backend optimisation level below full scale: compiling dominates a small run, and level 1 compiles
#: about a fifth faster than the default (2); full-scale runs keep the default.
QUICK_XLA_LEVEL = 1


def quick_xla_flags(flags: str) -> str:
    """``XLA_FLAGS`` text ``flags`` with the optimisation level :data:`QUICK_XLA_LEVEL` added, unless it sets a
    level of its own."""
    if "xla_backend_optimization_level" in flags:
        return flags
    return f"{flags} --xla_backend_optimization_level={QUICK_XLA_LEVEL}".strip()


def quick_compilation(scale: float) -> None:
    """Below full scale, ask XLA (through ``XLA_FLAGS``, read when JAX starts, here and in the workers) to
    spend less time optimising the compiled programs, unless the caller set the level."""
    import os

    if scale < 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = quick_xla_flags(os.environ.get("XLA_FLAGS", ""))


def run_command(args) -> int:
    import platform

    quick_compilation(check_float("scale", args.scale, low=0.0, high=100.0, low_open=True))

    import jax
    import numpy as np

    from ..io.rundir import write_text
    from ..studies.paper import FIGURES, check_scale, headline_lines

    every = every_seconds(args.progress_every)
    names = list(FIGURES)
    if args.figure != "all" and args.figure not in FIGURES:
        raise ConfigError(f"figure must be one of {', '.join(names)} or all, got {args.figure!r}")
    check_scale(args.scale)
    check_int("seed", args.seed, low=0, high=2**31 - 1)
    if args.chains is not None:
        check_int("chains", args.chains, low=2, high=10**8)
    jobs = 1 if args.figure != "all" else check_int("jobs", default_jobs() if args.jobs is None else args.jobs,
                                                     low=1, high=64)
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    chosen = names if args.figure == "all" else [args.figure]

    # the studies report each finished series as a line; in a batch job a line every `every` seconds says too
    # which figure runs, how many are done, the time per figure and the time left
    lines = None
    if not args.quiet and every > 0 and not is_terminal(sys.stderr):
        lines = Lines(sys.stderr, "jaxcollapse reproduce", every, unit="figures")

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"  {msg}", file=sys.stderr, flush=True)
        if lines is not None:
            lines.update(what=f"{current}: {msg}")

    t_all = time.perf_counter()
    times = {}
    try:
        if jobs > 1:
            times = _run_parallel(chosen, out, args, jobs, lines)
        for i, name in enumerate(chosen if jobs == 1 else ()):
            current = name
            if not args.quiet:
                print(f"{name} ...", file=sys.stderr, flush=True)
            if lines is not None:
                lines(i, len(chosen))
                lines.update(what=f"{name} running")
            t0 = time.perf_counter()
            headline = _call(FIGURES[name], out, scale=args.scale, seed=args.seed, progress=progress,
                             chains=args.chains, pdf=args.pdf)
            times[name] = round(time.perf_counter() - t0, 1)
            if lines is not None:
                lines(i + 1, len(chosen))
                lines.update(what=f"{name} done")
            _report(name, times[name], out, headline, headline_lines)
    finally:
        if lines is not None:
            lines.close()
    total = time.perf_counter() - t_all
    if args.figure == "all":
        summary = {"figures": {name: times[name] for name in chosen}, "wall_time_s": round(total, 1),
                   "jobs": jobs, "scale": args.scale, "seed": args.seed,
                   "chains": args.chains, "jax": jax.__version__, "numpy": np.__version__,
                   "backend": jax.default_backend(), "machine": platform.machine(),
                   "processor": platform.processor(), "python": platform.python_version()}
        write_text(str(out / "summary.json"), json.dumps(summary, indent=2) + "\n")
        print(f"all: {total:.1f} s in total -> {out / 'summary.json'}")
    return 0


def default_jobs() -> int:
    """Figures run at once by ``reproduce all``: the CPUs of this process (at most 4)."""
    from ..engine.local import usable_cores

    return max(1, min(4, len(usable_cores())))


def _figure_job(name, out, scale, seed, chains, pdf, quiet) -> tuple[dict, float]:
    """One figure in a worker process: its headline numbers (a plain dict) and its wall time in seconds."""
    from ..studies.paper import FIGURES

    def progress(msg: str) -> None:
        if not quiet:
            print(f"  {name}: {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    headline = _call(FIGURES[name], pathlib.Path(out), scale=scale, seed=seed, progress=progress, chains=chains,
                     pdf=pdf)
    return dict(headline), round(time.perf_counter() - t0, 1)


def _run_parallel(chosen, out, args, jobs, lines) -> dict:
    """Run the figures ``chosen``, ``jobs`` at a time, each in a fresh process (JAX does not survive a fork);
    print each one's report as it finishes. Returns the wall time of each figure."""
    import concurrent.futures as cf
    import multiprocessing
    import os
    import shutil
    import tempfile

    times = {}
    ctx = multiprocessing.get_context("spawn")
    # the workers share one compilation cache (this run's, unless the caller keeps one): a program that two
    # figures run (the same regime and sizes) is compiled once
    cache = None
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        cache = tempfile.mkdtemp(prefix="jaxcollapse-reproduce-cache-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    from ..studies.paper import headline_lines

    try:
        with cf.ProcessPoolExecutor(max_workers=min(jobs, len(chosen)), mp_context=ctx) as pool:
            _collect(pool, chosen, out, args, jobs, lines, times, headline_lines)
    finally:
        if cache is not None:
            del os.environ["JAX_COMPILATION_CACHE_DIR"]
            shutil.rmtree(cache, ignore_errors=True)
    return times


def _collect(pool, chosen, out, args, jobs, lines, times, headline_lines) -> None:
    """Submit the figures to ``pool``; report each as it finishes and record its wall time in ``times``."""
    import concurrent.futures as cf

    futures = {pool.submit(_figure_job, name, str(out), args.scale, args.seed, args.chains, args.pdf,
                           args.quiet): name for name in chosen}
    if not args.quiet:
        print(f"{', '.join(chosen)}: {min(jobs, len(chosen))} at a time ...", file=sys.stderr, flush=True)
    for done, future in enumerate(cf.as_completed(futures), 1):
        name = futures[future]
        headline, times[name] = future.result()
        if lines is not None:
            lines(done, len(chosen))
            lines.update(what=f"{name} done")
        _report(name, times[name], out, headline, headline_lines)


def _report(name, seconds, out, headline, headline_lines) -> None:
    print(f"{name}: {seconds:.1f} s -> {out / (name + '.png')}, {name}.csv, {name}.json")
    for line in headline_lines(headline):
        print(f"  {line}")
    sys.stdout.flush()
