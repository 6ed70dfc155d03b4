"""``jaxcollapse sweep-export DIR --csv``: write a sweep's tables as CSV files."""

from __future__ import annotations

DESCRIPTION = """Write the tables of a sweep's results directory as CSV: table.csv (one row per point, generation and
metric, the point's settings as columns, mean,sd,ci_low,ci_high,n) and points.csv (one row per point: final
collapsed fraction with its Wilson interval, median collapse time, final metric means), written line by line.
Only finished points are written."""


def add_arguments(parser) -> None:
    parser.add_argument("out", metavar="DIR", help="the sweep's results directory")
    parser.add_argument("--csv", action="store_true", required=True, help="write table.csv and points.csv")
    parser.add_argument("--to", metavar="DIR2", default=None, help="folder to write them into (default: DIR)")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not list the files written")


def run_command(args) -> int:
    import os

    from ..sweeps.tables import write_csv
    from ..sweeps.sweep import load_sweep

    res = load_sweep(args.out)
    done = res._done()
    if not done:
        raise ValueError(f"{args.out} holds no finished point")
    to = args.to or args.out
    os.makedirs(to, exist_ok=True)
    made = write_csv(to, done, res.records, res.generations)
    if not args.quiet:
        if not res.complete:
            print(f"{len(done)} of {len(res.points)} points finished")
        for path in made:
            print(path)
    return 0
