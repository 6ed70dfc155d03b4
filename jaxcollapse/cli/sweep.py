"""``jaxcollapse sweep FILE.toml``: run (or resume, or merge) a parameter sweep and write its tables."""

from __future__ import annotations

import json
import math
import os
import sys
import time

from ..engine.host import clock, plural
from ..errors import check_float
from .progress import add_progress_arguments, every_seconds, reporter

DESCRIPTION = """Run a parameter sweep from a TOML file: a product grid and/or a list of points over any setting
(regime, synthetic, real, size, fraction, window, train, initial, vocab, support, exponent, temperature, top_k,
top_p, smoothing, sampler), with chains, generations and a seed for all. Points that share array shapes run as one
compiled, vmapped call. Results (OUT/parts/*.parquet: summary rows; OUT/arrays.zarr: per-point arrays;
OUT/manifest.json) are written as call groups finish; rerunning the same command resumes an interrupted sweep.
With --shard I/N (or inside a SLURM job array) only shard I's share runs, into OUT/shards/I-of-N/; then
`jaxcollapse sweep-merge OUT`. See the README's "Sweeps" section."""


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
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="run only shard I of N (0 <= I < N) into DIR/shards/I-of-N/ (default: from "
                        "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT in a SLURM job array, else the whole "
                        "sweep); merge with `jaxcollapse sweep-merge DIR`")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run the call groups (of this shard) as tasks of a Ray cluster: a local one, or the one "
                             "at ADDRESS (e.g. HOST:6379 of `ray start --head`); pip install \"jaxcollapse[ray]\"")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (points, buckets, compilations) and a calibrated estimate; run nothing")
    parser.add_argument("--plot", action="store_true", help="draw the phase diagrams (OUT/plots/) when finished")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a sweep in --out that has other points, chains, generations or seed")
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
    """``jaxcollapse sweep``: plan, estimate, run (or resume) this shard's share, write the manifest, plot."""
    from ..sweeps.cost import check_fits, estimate
    from ..sweeps.plan import describe_plan, make_plan
    from ..sweeps.ray_engine import run_plan_on
    from ..sweeps.spec import as_spec
    from ..sweeps.store import close, part_paths, prepare_store, read_store, store_dir
    from ..sweeps.tables import write_manifest
    from ..sweeps.sweep import SweepResult, _shard

    every = every_seconds(args.progress_every)
    spec = as_spec(args.spec, {"chains": args.chains, "generations": args.generations, "seed": args.seed,
                                "memory": None if args.memory is None else int(check_float(
                                    "memory", args.memory, low=0.0, low_open=True) * 2**20),
                                "points_per_call": args.points_per_call})
    if args.out is None:
        args.out = os.path.join("sweeps", os.path.splitext(os.path.basename(args.spec))[0])
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    shard, shards = _shard(args.shard)
    plan = make_plan(spec)
    mine = plan.share(shard, shards)
    share = set(mine.share_points)
    say(describe_plan(plan))
    if shards > 1:
        say(f"shard {shard} of {shards}: {plural(len(share), 'point')} in "
            f"{plural(sum(len(b.tasks) for b in mine.buckets), 'call group')} of "
            f"{plural(len(mine.buckets), 'bucket')}")
    check_fits(mine)
    if args.dry_run:
        if share:
            say(estimate(mine).describe())
        return 0
    d = store_dir(args.out, shard, shards)
    prepare_store(d, spec, args.overwrite, (shard, shards))
    done, _ = read_store(d, plan.points, repair=True)
    before = len(share & done.keys())
    if before:
        say(f"resuming: {before} of {plural(len(share), 'point')} already finished in {d}")
    if before < len(share) and not args.quiet:
        say(estimate(mine).describe())
    progress = reporter(sys.stderr, "jaxcollapse sweep", every, quiet=args.quiet,
                        tty_factory=lambda: Progress(sys.stderr, len(share), before),
                        points_total=len(share), points_before=before)
    t0 = time.perf_counter()
    try:
        ran = run_plan_on(args.ray, mine, d, done=set(done), progress=progress)
    finally:
        close(d)
        if progress is not None:
            progress.close()
    records = {**done, **ran}
    wall = time.perf_counter() - t0
    rate = len(ran) * spec.chains * spec.generations / max(wall, 1e-9)
    say(f"ran {plural(len(ran), 'point')} in {wall:.1f} s ({rate / 1e3:.1f}k chain-generations/s, compilation "
        f"included; {plural(mine.compilations, 'compilation')} planned)")
    if shards > 1:
        say(f"shard {shard} of {shards} finished ({plural(len(share), 'point')} in {d}); when every shard is "
            f"done run `jaxcollapse sweep-merge {args.out}`")
        return 0
    write_manifest(args.out, plan, stores=[d], command=_command(args), wall_time=wall)
    res = SweepResult(plan, records, sorted(ran), True, wall, args.out, part_paths(d))
    return finish(args, res, say)


def finish(args, res, say) -> int:
    """Print the points' table (and draw the phase diagrams with ``--plot``) of a finished sweep."""
    from ..sweeps.phase import format_points
    from ..sweeps.store import ARRAYS, PARTS
    from ..sweeps.tables import MANIFEST, read_manifest

    say(format_points(res.plan.points, res.records, res.plan.spec.generations))
    files = [PARTS + "/", ARRAYS + "/", MANIFEST]
    if getattr(args, "plot", False):
        from ..io.rundir import _jsonable, write_text
        from ..sweeps.phase import plot_sweep

        made = plot_sweep(args.out)
        manifest = read_manifest(args.out)
        manifest["plots"] = [os.path.relpath(p, args.out) for p in made]
        write_text(os.path.join(args.out, MANIFEST), json.dumps(_jsonable(manifest), indent=2) + "\n")
        files.insert(2, "plots/")
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
