"""``jaxcollapse sweep-merge DIR``: check that the shards of a sweep hold every point and write its manifest."""

from __future__ import annotations

DESCRIPTION = """Merge the shards of a sweep (DIR/shards/I-of-N/, written by `jaxcollapse sweep FILE.toml --shard I/N`
or by the tasks of a SLURM job array): check that together they hold every point (an error names the missing
points and the shards found), write DIR/manifest.json and print the points' table. No simulation; the shards'
files are read, not copied."""


def add_arguments(parser) -> None:
    parser.add_argument("out", metavar="DIR", help="the sweep's results directory (holding shards/)")
    parser.add_argument("--plot", action="store_true", help="draw the phase diagrams (DIR/plots/)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results line and errors")


def run_command(args) -> int:
    from ..io.report import plural
    from ..sweeps.sweep import merge
    from .sweep import finish

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    res = merge(args.out, command=f"jaxcollapse sweep-merge {args.out}")
    say(f"merged {plural(len(res.records), 'point')}")
    return finish(args, res, say)
