"""``jaxcollapse sweep-plot DIR``: draw the phase diagrams of a finished sweep."""

from __future__ import annotations

DESCRIPTION = "Draw the phase diagrams of a finished sweep (OUT/plots/phase.png) from its files."


def add_arguments(parser) -> None:
    parser.add_argument("dir", metavar="DIR", help="a finished sweep's results directory")
    parser.add_argument("--x", default=None, help="setting on the x axis (default: the sweep's plot.x, or the "
                        "first of size, fraction, ... that varies)")
    parser.add_argument("--y", default=None, help="setting on the y axis")
    parser.add_argument("--format", default="png", help="comma-separated formats (default: png)")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not list the files written")


def run_command(args) -> int:
    from ..sweeps.phase import plot_sweep

    made = plot_sweep(args.dir, args.x, args.y, tuple(f.strip() for f in args.format.split(",") if f.strip()))
    if not args.quiet:
        for path in made:
            print(path)
    return 0
