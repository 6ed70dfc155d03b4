"""The ``jaxcollapse`` command line: the parser, the dispatch to the commands and the error handling.

``jaxcollapse run``    simulate a study and write a results directory (``jaxcollapse run --help``).
``jaxcollapse show``   print the summary and settings of a finished run.
``jaxcollapse plot``   redraw the figures of a finished run from its files.
``jaxcollapse bench``  the benchmark of ``benchmarks/`` on whatever backend JAX sees (``jaxcollapse.bench``).
and the commands of :data:`COMMANDS` (reproduce, plan, sweep, sweep-merge, sweep-export, sweep-plot,
examples).

Every error (bad flag, value, file or configuration) is one line ``jaxcollapse: error: ...`` on stderr and
exit status 2. Building the parser imports no JAX: the commands import it when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from ..engine.local import JOB_ENV
from ..errors import ConfigError
from .options import PROG, add_options, number, one_line

# Subcommands that live in their own module: name -> (module, one-line help). Each module defines
# ``add_arguments(parser)`` and ``run_command(args) -> int`` (exit status); it is imported only when the
# parser is built, so it must import JAX lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("jaxcollapse.cli.reproduce", "rerun the paper's figures with confidence intervals and theory"),
    "plan": ("jaxcollapse.cli.plan", "how many chains a wanted precision needs, from a short pilot run"),
    "sweep": ("jaxcollapse.cli.sweep", "run a parameter sweep from a TOML file (grid of settings, bucketed "
              "vmapped calls, resumable)"),
    "sweep-merge": ("jaxcollapse.cli.sweep_merge", "check a sweep's shards hold every point and write its manifest"),
    "sweep-export": ("jaxcollapse.cli.sweep_export", "write a sweep's tables as CSV (table.csv, points.csv)"),
    "sweep-plot": ("jaxcollapse.cli.sweep_plot", "draw the phase diagrams of a finished sweep"),
    "examples": ("jaxcollapse.cli.examples", "list, print or copy the example study and sweep files"),
}


class CLIError(Exception):
    """A command-line error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise CLIError(message)


_RUN_EPILOG = """\
config file (--config FILE.toml): the same settings as keys, named like the long flags (top_k or top-k),
e.g.
    regime = "partially_synthetic"
    real = 100
    synthetic = 10
    chains = 1000
    traces = false
Flags given on the command line override the file; relative paths in the file are relative to it.

results (DIR): summary.csv (generation,metric,mean,sd,ci_low,ci_high,n), traces.npz (per-chain traces,
collapse times, final models), collapse.csv, contexts.csv (several contexts), plots/, manifest.json
(configuration, versions, command line; written last). Metrics: collision (Σp²), max_prob, l1_initial,
l1_first, entropy (nats), support (tokens alive), missing_mass, kl (KL(p0||p), nats, +inf once a token is lost).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Monte Carlo engine for model collapse: recursive training of "
                     "categorical / n-gram language models (Seddik et al., arXiv 2404.05090).")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    names = ["run", "show", "plot", "bench", *COMMANDS]
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(names) + "}", parser_class=_Parser)
    run = sub.add_parser("run", help="simulate a study and write a results directory",
                         description="Simulate many independent chains of recursive training and write a results "
                         "directory (default study: the paper's fully synthetic setting, Zipf(1.1) on 52 of "
                         "600 tokens, n = 100, 2000 chains, 200 generations).",
                         epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", metavar="FILE.toml", default=None,
                     help="read settings from a TOML file; flags given explicitly override it")
    add_options(run)
    run.add_argument("--processes", type=number("int"), default=1, metavar="P",
                     help="run as P processes on this machine, each pinned to its own CPU cores, sharing the "
                     "chains (default: 1). On a multi-core CPU this is faster for large samples (n much larger "
                     "than the vocabulary). Trajectories are the same")
    show = sub.add_parser("show", help="print the summary table and settings of a finished run",
                          description="Print the summary table and settings of a finished run, read back from "
                          "its files.")
    show.add_argument("dir", metavar="DIR", help="run directory")
    show.add_argument("--rows", type=number("int"), default=8, help="generations shown (default: 8)")
    show.add_argument("--metrics", default=None,
                      help="comma-separated metrics to show (default: collision,max_prob,l1_initial,support,"
                      "entropy,kl)")
    plot = sub.add_parser("plot", help="redraw the figures of a finished run into DIR/plots",
                          description="Redraw the figures of a finished run from its saved files into DIR/plots "
                          "(traces, collapse, contexts for several contexts, simplex for 3-token vocabularies).")
    plot.add_argument("dir", metavar="DIR", help="run directory")
    plot.add_argument("--format", default="png", help="comma-separated formats: png, pdf, svg (default: png)")
    plot.add_argument("--quiet", "-q", action="store_true", help="do not list the files written")
    sub.add_parser("bench", help="benchmarks (jaxcollapse.bench; arguments passed on)", add_help=False)
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=getattr(mod, "DESCRIPTION", help_),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
    return parser


def cmd_bench(argv: list[str]) -> int:
    from ..bench.command import main as bench_main

    return int(bench_main(argv, prog=f"{PROG} bench") or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxcollapse`` command; returns the exit status.

    An interrupt (Ctrl-C) at any stage prints one line and returns 130, leaving no temporary file and no
    manifest (:mod:`jaxcollapse.interrupts`); called as the process's command (``argv`` None) the process then
    ends at once, without waiting for work JAX still has in flight."""
    from .. import interrupts

    with interrupts.handling(hard_exit=argv is None):
        status = _main(list(sys.argv[1:] if argv is None else argv))
        if interrupts.pending():
            status = _interrupted()
    if status == interrupts.EXIT_STATUS and argv is None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def main_in_job(argv: list[str]) -> int:
    """:func:`main` as the command of one process of ``run --processes`` (:mod:`jaxcollapse.engine.local`):
    a second interrupt ends the process at once, as in the command's own process."""
    sys.argv = [PROG, *argv]
    return main()


def _interrupted() -> int:
    print(f"{PROG}: interrupted", file=sys.stderr)
    return 130


def _main(raw: list[str]) -> int:
    try:
        if raw and raw[0] == "bench":
            return cmd_bench(raw[1:])
        parser = build_parser()
        args = parser.parse_args(raw)
        importlib.import_module("jaxcollapse.engine.cache").configure()   # before JAX starts
        if args.command is None:
            parser.print_help()
            return 0
        if args.command in ("run", "show", "plot"):
            from .run import cmd_plot, cmd_run, cmd_show

            if args.command == "run":
                if args.processes != 1 and not os.environ.get(JOB_ENV):
                    from .run import launch_run

                    return launch_run(args, raw)
                return cmd_run(args, [PROG] + raw)
            return cmd_show(args) if args.command == "show" else cmd_plot(args)
        if args.command in COMMANDS:
            from .. import interrupts

            mod = importlib.import_module(COMMANDS[args.command][0])
            with interrupts.deferred():     # these commands stop at their next file written, or at the end
                return int(mod.run_command(args) or 0)
        raise CLIError(f"unknown command {args.command!r}")
    except BrokenPipeError:
        _quiet_stdout()         # the reader went away (``jaxcollapse show DIR | head``): nothing to report
        return 1
    except (CLIError, ConfigError, ValueError, OSError) as e:
        msg = one_line(e) if not isinstance(e, OSError) or not e.strerror else _os_message(e)
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from .. import interrupts

        interrupts.clear()
        return _interrupted()
    except RuntimeError as e:
        if "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower():
            print(f"{PROG}: error: the device ran out of memory; lower --memory or --chunk-size", file=sys.stderr)
            return 2
        raise


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _os_message(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return one_line(f"{e.strerror}{where}")
