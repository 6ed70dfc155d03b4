"""``jaxcollapse sweep FILE.toml``: run (or resume, or merge) a parameter sweep and write its tables."""

from __future__ import annotations

import json
import math
import os
import sys
import time

from ..engine.host import clock, plural
from ..errors import check_float, check_int
from .progress import add_progress_arguments, every_seconds, reporter

DESCRIPTION = """Run a parameter sweep from a TOML file: a product grid and/or a list of points over any setting
(regime, synthetic, real, size, fraction, window, train, initial, vocab, support, exponent, temperature, top_k,
top_p, smoothing, sampler), with chains, generations and a seed for all. Points that share array shapes run as one
compiled, vmapped call. Results (OUT/table.csv, OUT/points.csv, OUT/points/*.npz, OUT/manifest.json) are written as
points finish; rerunning the same command resumes an interrupted sweep. See the README's "Sweeps" section."""


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="FILE.toml", help="the sweep's TOML file")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="results directory (default: sweeps/<name of FILE>); an unfinished sweep there resumes")
    parser.add_argument("--chains", type=int, default=None, help="chains per point (overrides the file)")
    parser.add_argument("--generations", "-g", type=int, default=None, help="generations (overrides the file)")
    parser.add_argument("--seed", type=int, default=None, help="seed (overrides the file)")
    parser.add_argument("--memory", type=float, default=None, metavar="MIB",
                        help="device-memory budget per compiled call in MiB (default: 1024)")
    parser.add_argument("--points-per-call", type=int, default=None, metavar="P",
                        help="points vmapped in one call (default: from the memory budget)")
    parser.add_argument("--host", type=int, default=None, metavar="I",
                        help="run only host I's share of the points (default: jax.process_index())")
    parser.add_argument("--hosts", type=int, default=None, metavar="H",
                        help="number of hosts sharing the sweep (default: jax.process_count())")
    parser.add_argument("--merge", action="store_true",
                        help="merge the hosts' finished points into the tables (no simulation)")
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                        help="with --merge: another host's results directory to take points from (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (points, buckets, compilations) and a calibrated estimate; run nothing")
    parser.add_argument("--plot", action="store_true", help="draw the phase diagrams (OUT/plots/) when finished")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a sweep in --out that has other chains, generations or seed")
    add_progress_arguments(parser, quiet=False)
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results line and errors")


def _command(args) -> str:
    import shlex

    parts = ["jaxcollapse", "sweep", args.spec, "--out", args.out]
    for flag in ("chains", "generations", "seed", "memory", "points_per_call"):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def run_command(args) -> int:
    """``jaxcollapse sweep``: plan, estimate, run (or resume, or merge), write the tables, plot."""
    import jax

    from ..sweeps.cost import check_fits, estimate
    from ..sweeps.plan import describe_plan, make_plan
    from ..sweeps.run import run_plan
    from ..sweeps.spec import as_spec
    from ..sweeps.store import finished_points, prepare_out, write_tables
    from ..sweeps.sweep import SweepResult, merge

    every = every_seconds(args.progress_every)
    spec = as_spec(args.spec, {"chains": args.chains, "generations": args.generations, "seed": args.seed,
                                "memory": None if args.memory is None else int(check_float(
                                    "memory", args.memory, low=0.0, low_open=True) * 2**20),
                                "points_per_call": args.points_per_call})
    if args.out is None:
        args.out = os.path.join("sweeps", os.path.splitext(os.path.basename(args.spec))[0])
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.merge:
        res = merge(spec, args.out, args.sources, command=_command(args), overwrite=args.overwrite)
        say(f"merged {plural(len(res.records), 'point')}")
        return _finish(args, res, say)
    hosts = jax.process_count() if args.hosts is None else check_int("hosts", args.hosts, low=1)
    host = jax.process_index() if args.host is None else check_int("host", args.host, low=0, high=hosts - 1)
    plan = make_plan(spec)
    say(describe_plan(plan))
    if hosts > 1:
        share = sum(len(t) for ti, _, t in plan.tasks() if ti % hosts == host)
        say(f"host {host} of {hosts}: {plural(share, 'point')}")
    check_fits(plan)
    if args.dry_run:
        say(estimate(plan, hosts).describe())
        return 0
    prepare_out(args.out, spec, args.overwrite)
    done = finished_points(args.out, plan)
    if done:
        say(f"resuming: {len(done)} of {plural(len(plan.points), 'point')} already finished in {args.out}")
    todo = [p for p in plan.points if p.index not in done]
    if todo and not args.quiet:
        say(estimate(plan, hosts).describe())
    progress = reporter(sys.stderr, "jaxcollapse sweep", every, quiet=args.quiet,
                        tty_factory=lambda: Progress(sys.stderr, len(plan.points), len(done)),
                        points_total=len(plan.points), points_before=len(done))
    t0 = time.perf_counter()
    try:
        ran = run_plan(plan, args.out, host=host, hosts=hosts, done=set(done), progress=progress)
    finally:
        if progress is not None:
            progress.close()
    records = {**done, **ran}
    wall = time.perf_counter() - t0
    rate = len(ran) * spec.chains * spec.generations / max(wall, 1e-9)
    say(f"ran {plural(len(ran), 'point')} in {wall:.1f} s ({rate / 1e3:.1f}k chain-generations/s, compilation included; "
        f"{plan.compilations} compilations planned)")
    if len(records) < len(plan.points):
        say(f"{len(records)} of {plural(len(plan.points), 'point')} finished; when every host is done run "
            f"`{_command(args)} --merge`")
        return 0
    if hosts > 1:
        say(f"every point is finished; write the tables with `{_command(args)} --merge`")
        return 0
    res = SweepResult(plan, records, sorted(ran), True, wall, args.out)
    write_tables(args.out, plan, records, command=_command(args), wall_time=wall)
    return _finish(args, res, say)


def _finish(args, res, say) -> int:
    """Print the points' table (and draw the phase diagrams with ``--plot``) of a finished sweep."""
    from ..sweeps.phase import format_points
    from ..sweeps.store import MANIFEST, POINTS_CSV, POINTS_DIR, TABLE, read_manifest

    say(format_points(res.plan.points, res.records, res.plan.spec.generations))
    files = [TABLE, POINTS_CSV, POINTS_DIR + "/", MANIFEST]
    if args.plot:
        from ..io.rundir import _jsonable, write_text
        from ..sweeps.phase import plot_sweep

        made = plot_sweep(args.out)
        manifest = read_manifest(args.out)
        manifest["plots"] = [os.path.relpath(p, args.out) for p in made]
        write_text(os.path.join(args.out, MANIFEST), json.dumps(_jsonable(manifest), indent=2) + "\n")
        files.insert(3, "plots/")
    print(f"results: {args.out}{os.sep} ({', '.join(files)})")
    return 0


# ------------------------------------------------------------------------------------------------
# progress


class Progress:
    """Progress over the whole sweep on a terminal, one line redrawn: points done, chain-generations per second,
    ETA (elsewhere the command prints plain lines: :class:`jaxcollapse.cli.progress.Lines`)."""

    def __init__(self, stream, points_total: int, points_before: int = 0):
        self.stream, self.total_points, self.before = stream, points_total, points_before
        self.t0 = time.perf_counter()
        self.width = 0

    def __call__(self, done: int, total: int, points_done: int, fraction: float | None = None) -> None:
        now = time.perf_counter() - self.t0
        rate = done / now if now > 0 else 0.0
        frac = done / max(total, 1) if fraction is None else fraction
        eta = now * (1 - frac) / frac if frac >= 0.01 else float("nan")
        text = (f"sweep: {self.before + points_done}/{plural(self.total_points, 'point')}, {100 * frac:.0f}% "
                f"of this run, {rate / 1e3:.1f}k chain-generations/s, "
                f"ETA {clock(eta) if math.isfinite(eta) else '?'}")
        self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
        self.width = len(text)
        self.stream.flush()

    def close(self) -> None:
        if self.width:
            self.stream.write("\n")
            self.stream.flush()
