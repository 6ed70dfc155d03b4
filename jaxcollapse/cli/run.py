"""``jaxcollapse run``, ``show`` and ``plot``: simulate a study and write its results directory, print a finished
run, redraw its figures. JAX and the engine are imported inside the commands only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time

from .. import interrupts
from ..engine.host import USABLE, available_memory, clock, plural, rate_text, size_text
from ..engine import local
from ..engine.local import JOB_ENV
from ..errors import ConfigError, check_int
from .options import OPTIONS, PROG, one_line
from ..io.study import training
from .progress import Bar, every_seconds, reporter
from .settings import RunSettings, default_out_name, describe_fit, rerun_command, resolve

#: Chains whose models are recorded every generation for the simplex picture (3-token vocabularies), and the
#: most memory those records may take.
TRAJECTORY_CHAINS = 8
TRAJECTORY_BYTES = 64 << 20
#: Smallest device bytes one chain takes per cell of its ``contexts x vocab`` model (the resampling sampler's
#: state; every sampler needs at least this), checked against ``--memory`` before the study is built.
BYTES_PER_CELL = 32
#: A run whose measured time left exceeds this many seconds gets a warning (once).
LONG_RUN_S = 3600.0


# ------------------------------------------------------------------------------------------------
# memory


def host_bytes(chains: int, generations: int, contexts: int, vocab: int, *, traces: bool, per_context: bool,
               final: bool, metrics: int = 8) -> int:
    """Host memory a run holds: per-chain traces, per-context traces, final models and collapse records."""
    width = generations + 1
    total = chains * contexts * 8 * 2 + chains * 8
    if traces:
        total += chains * width * metrics * 8
    if per_context:
        total += chains * width * contexts * metrics * 8
    if final:
        total += chains * contexts * vocab * 8
    return total


# ------------------------------------------------------------------------------------------------
# progress


# ------------------------------------------------------------------------------------------------
# trajectories for the simplex picture


# ------------------------------------------------------------------------------------------------
# trained estimators (``--estimator softmax|embedding``, ``--regime autoregressive``)


def _check_trained(settings: RunSettings) -> None:
    """Validate a trained run before any output (decoding and smoothing are refused by the resolver)."""
    import jax

    from ..core.trained import build

    res = settings.resolved
    if res.get("chunk_size") is not None:
        check_int("--chunk-size", res["chunk_size"], low=1)
    with jax.enable_x64(True):
        build(settings.corpus if settings.corpus is not None else settings.initial, settings.regime,
              generations=res["generations"], estimator=res["estimator"], training=training(res))


def _trained_launcher(settings: RunSettings):
    """A stand-in for :func:`jaxcollapse.simulate` with its signature that runs the trained study of the resolved
    settings (the count kernel's arguments: decoding, smoothing, sampler, memory, are unused)."""
    from ..engine.simulate import simulate_trained

    res = settings.resolved

    def run(seed, initial, regime, *, chains, generations, per_context=False, keep_final=None, progress=None,
            chunk_size=None, devices=None, **count_only):
        return simulate_trained(seed, settings.corpus if settings.corpus is not None else initial, regime,
                                chains=chains, generations=generations, estimator=res["estimator"],
                                training=training(res), chunk_size=chunk_size, per_context=per_context,
                                keep_final=keep_final, progress=progress, devices=devices)

    return run


# ------------------------------------------------------------------------------------------------
# commands


def _default_out(name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{stamp}-{name}")
    out, i = base, 2
    while os.path.exists(out):
        out = f"{base}-{i}"
        i += 1
    return out


def _warn(msg: str) -> None:
    print(f"{PROG}: warning: {msg}", file=sys.stderr)


def _out_and_overwrite(flags: dict, settings: RunSettings) -> tuple[str | None, bool]:
    """The results directory asked for (``--out``, else the config file's ``out``; None for the default) and
    whether it may be overwritten."""
    given = settings.given["config_file_settings"] or {}
    return flags.get("out") or given.get("out"), bool(flags.get("overwrite") or given.get("overwrite"))


def launch_run(args: argparse.Namespace, raw: list[str]) -> int:
    """``jaxcollapse run --processes P``: check the settings here (one line on an error, before any process
    starts), then run the same command in ``P`` pinned processes on this machine that run the study together
    (:mod:`jaxcollapse.engine.local`); process 0 prints and writes the results directory."""
    from ..io.rundir import check_out_dir

    flags = {o.key: getattr(args, o.key) for o in OPTIONS}
    settings = resolve(flags, args.config)
    local.core_groups(check_int("--processes", args.processes, low=1), name="--processes")
    out, overwrite = _out_and_overwrite(flags, settings)
    if out is None:                       # one name for every process, checked here
        out = _default_out(default_out_name(settings.resolved))
        raw = [*raw, "--out", out]
    check_out_dir(out, overwrite)
    status = local.launch("jaxcollapse.cli.app:main_in_job", raw, args.processes)
    if status == interrupts.EXIT_STATUS:
        interrupts.clear()              # the processes have said so
    return status


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    """``jaxcollapse run``: resolve the settings, check them and the memory, simulate, save, plot."""
    flags = {o.key: getattr(args, o.key) for o in OPTIONS}
    every = every_seconds(getattr(args, "progress_every", None))
    settings = resolve(flags, args.config)     # before JAX is imported: bad settings are refused at once
    res = settings.resolved
    c, v = settings.initial.probs.shape
    per_chain = BYTES_PER_CELL * c * v
    if per_chain > res["memory"] * 2**20:
        raise ConfigError(f"one chain needs at least {size_text(per_chain)} of memory (contexts {c} x vocab {v}), "
                          f"more than --memory {res['memory']:g} MiB; lower --vocab or --contexts, or raise --memory")
    from ..core import count as kernel
    from ..io.files import output_lock
    from ..io.rundir import check_out_dir

    with interrupts.deferred():
        devices = _local_devices(res["devices"])
        # In a job of several processes every process simulates its share; process 0 alone prints and writes.
        primary = local.job()[0] == 0
    quiet = bool(flags.get("quiet") or (settings.given["config_file_settings"] or {}).get("quiet")) or not primary
    out, overwrite = _out_and_overwrite(flags, settings)
    for w in settings.warnings:
        if not quiet:
            _warn(w)
    initial = settings.initial
    c, v = initial.probs.shape
    chains, generations = res["chains"], res["generations"]
    # validate everything the engine checks before any output or compilation
    trained = "estimator" in res
    with interrupts.deferred():
        if trained:
            _check_trained(settings)
        else:
            kernel.build(initial, settings.regime, generations=generations, decoding=settings.decoding,
                         smoothing=res["smoothing"], sampler=res["sampler"])
    # host memory
    per_context = res["per_context"]
    need = host_bytes(chains, generations, c, v, traces=res["traces"], per_context=per_context,
                      final=settings.keep_final)
    avail = available_memory()
    if avail is not None:       # every process of ``run --processes`` holds the whole result
        avail //= int(os.environ.get(JOB_ENV) or 1)
    if avail is not None and need > USABLE * avail and per_context and "per_context" not in _explicit(settings):
        per_context = res["per_context"] = False
        need = host_bytes(chains, generations, c, v, traces=res["traces"], per_context=False, final=settings.keep_final)
        if not quiet:
            _warn("per-context traces would not fit in memory; running without them (collapse times per context "
                  "are still recorded)")
    if avail is not None and need > USABLE * avail:
        parts = {"--no-traces": host_bytes(chains, generations, c, v, traces=True, per_context=False, final=False),
                 "--no-per-context": host_bytes(chains, generations, c, v, traces=False, per_context=per_context,
                                                final=False),
                 "--no-final": host_bytes(chains, generations, c, v, traces=False, per_context=False,
                                          final=settings.keep_final)}
        hints = [flag for flag, b in parts.items() if b > need / 10] or ["--no-traces"]
        raise ConfigError(f"this run needs about {size_text(need)} of host memory for its results but only "
                          f"{size_text(avail)} is available; use {', '.join(hints)}, fewer --chains or fewer "
                          "--generations")
    if out is None and primary:
        out = _default_out(default_out_name(res))
    if primary:
        check_out_dir(out, overwrite)
    with output_lock(out) if primary else contextlib.nullcontext():
        return _simulate_and_save(args, settings, argv, out, overwrite, quiet, primary, devices, per_context,
                                  trained, progress_every=every)


def _simulate_and_save(args, settings: RunSettings, argv, out, overwrite, quiet, primary, devices, per_context,
                       trained, progress_every) -> int:
    """The run itself, holding the output directory's lock: simulate, print, save, plot."""
    import numpy as np

    from ..io.rundir import context_stats, format_contexts, save_result, theory_for, theory_lines

    res = settings.resolved
    initial = settings.initial
    c, v = initial.probs.shape
    chains, generations = res["chains"], res["generations"]
    every = progress_every
    command = rerun_command(res)
    if not quiet:
        s0 = float((initial.probs ** 2).sum(axis=1) @ initial.weights)
        fit = describe_fit(res)
        print(f"{PROG} run: {settings.regime.describe()} · {settings.describe_initial} · Σp² = {s0:.4g} · "
              + (f"{fit} · " if fit else "")
              + f"{plural(chains, 'chain')} × {plural(generations, 'generation')} · seed {res['seed']}")
        if settings.corpus is not None:
            size = res.get("synthetic", res.get("real"))
            how = ("the corpus tokens that follow a kept context: each context is refitted on its corpus count"
                   if size == settings.corpus.events else "split over the contexts by frequency")
            print(f"sample size per generation: {size:,} tokens ({how})")
    progress = reporter(sys.stderr, f"{PROG} run", every, quiet=quiet, tty_factory=lambda: Bar(sys.stderr))
    from ..engine.simulate import simulate
    launcher = _trained_launcher(settings) if trained else simulate

    t0 = time.perf_counter()
    watch = _Watch(progress, quiet, job=chains * generations if local.job()[1] > 1 else None)
    try:
        with interrupts.deferred():
            result = launcher(res["seed"], initial, settings.regime, chains=chains, generations=generations,
                              decoding=settings.decoding, smoothing=res["smoothing"], sampler=res["sampler"],
                              chunk_size=res["chunk_size"], memory=int(res["memory"] * 2**20),
                              per_context=per_context, keep_traces=res["traces"], keep_final=settings.keep_final,
                              progress=watch, devices=devices)
    finally:
        watch.close()
    if not primary:
        return 0
    if not quiet:
        print(result.format())
        for line in theory_lines(result, theory_for(result.settings, initial, generations)):
            print(line)
        if c > 1:
            stats = context_stats(result.context_collapse_time, result.collapse_token, initial, generations)
            print(format_contexts(stats, initial, generations, chains))
        sys.stdout.flush()
    trajectories = None
    extra = {"initial_description": settings.describe_initial}
    k = min(chains, TRAJECTORY_CHAINS, TRAJECTORY_BYTES // ((generations + 1) * c * 3 * 8))
    if v == 3 and k >= 1 and not trained:
        from ..engine.simulate import trajectories as record

        with interrupts.deferred():
            trajectories = record(res["seed"], initial, settings.regime, chains=k, generations=generations,
                                  decoding=settings.decoding, smoothing=res["smoothing"], sampler=res["sampler"])
        if result.final is not None:
            extra["trajectories_match_final"] = bool(np.array_equal(trajectories[:, -1], result.final[:k]))
    if settings.corpus is not None:
        extra["corpus"] = settings.corpus.info()
    config = dict(res)
    config["initial_description"] = settings.describe_initial
    manifest = save_result(result, out, config, argv, initial=initial, given=settings.given, command=command,
                           extra=extra, trajectories=trajectories, overwrite=overwrite)
    plot_files = []
    if res["plots"]:
        from ..io.plots import plot_run
        from ..io.rundir import add_to_manifest, load_run

        try:
            plot_files = plot_run(load_run(out), formats=("png", "pdf") if res["pdf"] else ("png",))
            add_to_manifest(out, plots=[os.path.relpath(p, out) for p in plot_files])
        except Exception as e:  # the results are complete: a figure that fails is a warning, not a failed run
            plot_files = []
            _warn(f"the figures could not be drawn ({one_line(e)}); the results are complete; "
                  f"'{PROG} plot {out}' draws them again")
    total = time.perf_counter() - t0
    if not quiet:
        rate = chains * generations / max(result.wall_time, 1e-9)
        dev = manifest.get("jax", {})
        print(f"simulated in {result.wall_time:.1f} s, compilation included ({rate_text(rate)} chain-generations/s) "
              f"on {dev.get('backend')} (device: {dev.get('device_kind')}"
              + (f", {result.settings['processes']} processes" if result.settings.get("processes", 1) > 1 else "")
              + f"); {total:.1f} s with saving and plots")
    names = ["summary.csv", "traces.npz", "collapse.csv"] + (["contexts.csv"] if c > 1 else []) \
        + (["plots/"] if plot_files else []) + ["manifest.json"]
    print(f"results: {out}{os.sep} ({', '.join(names)})")
    return 0


class _Watch:
    """The run's progress callback: a safe point for interrupts (between compiled segments), one warning when the
    time left at the measured rate exceeds :data:`LONG_RUN_S`, then the progress display ``inner`` (or None).
    In a job of several processes, ``job`` is the whole job's chain-generations: this process counts its own
    share, and the shares are balanced, so its counts are scaled to the job."""

    def __init__(self, inner, quiet: bool, job: int | None = None):
        self.inner, self.quiet, self.calls, self.mark, self.warned = inner, quiet, 0, None, False
        self.job = job

    def __call__(self, done: int, total: int) -> None:
        interrupts.check()
        if self.job is not None:
            done, total = done * self.job // max(total, 1), self.job
        self.calls += 1
        now = time.perf_counter()
        if self.calls == 2:     # the first call includes the compilations: measure from the second
            self.mark = (now, done)
        elif self.mark is not None and not self.warned and done > self.mark[1] and now > self.mark[0]:
            left = (total - done) * (now - self.mark[0]) / (done - self.mark[1])
            self.warned = True
            if left > LONG_RUN_S and not self.quiet:
                _warn(f"this run will take about {clock(left)} more at the measured rate; Ctrl-C stops it (nothing "
                      "is written); fewer --chains or --generations, or a smaller --vocab, shorten it")
        if self.inner is not None:
            self.inner(done, total)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def _explicit(settings: RunSettings) -> set:
    keys = set(settings.given["flags"])
    keys |= set(settings.given["config_file_settings"] or {})
    return keys


def cmd_show(args) -> int:
    """``jaxcollapse show DIR``: the summary table and settings of a finished run."""
    from ..core.metrics import METRICS
    from ..io.rundir import context_stats, format_contexts, load_run, theory_lines

    _check_run_dir(args.dir)
    run = load_run(args.dir)
    res = run.result
    m = run.manifest
    metrics = ("collision", "max_prob", "l1_initial", "support", "entropy", "kl")
    if args.metrics:
        metrics = tuple(x.strip() for x in args.metrics.split(",") if x.strip())
        bad = [x for x in metrics if x not in res.summary]
        if bad:
            raise ConfigError(f"unknown metric {bad[0]!r}; known: {', '.join(METRICS)}")
    rows = check_int("rows", args.rows, low=1)
    cfg = run.config
    print(f"run: {os.path.abspath(run.path)}")
    print(f"created {m.get('created')} with jaxcollapse {m.get('versions', {}).get('jaxcollapse')} "
          f"(jax {m.get('versions', {}).get('jax')}, backend {m.get('jax', {}).get('backend')}, device "
          f"{m.get('jax', {}).get('device_kind')}); simulated in {float(m.get('wall_time_s') or 0):.1f} s")
    print(f"study: {res.settings.get('regime')} · {cfg.get('initial_description', '')} · "
          f"{plural(res.chains, 'chain')} × {plural(res.generations, 'generation')} · seed {m.get('seed')}")
    skip = {"initial_description"}
    items = [f"{k}={v}" for k, v in cfg.items() if k not in skip and v is not None]
    print("settings: " + " ".join(items))
    if m.get("command"):
        print(f"rerun: {m['command']}")
    print(res.format(metrics=metrics, rows=rows))
    for line in theory_lines(res, run.theory):
        print(line)
    if run.initial is not None and res.context_collapse_time.shape[1] > 1:
        stats = context_stats(res.context_collapse_time, res.collapse_token, run.initial, res.generations)
        print(format_contexts(stats, run.initial, res.generations, res.chains))
    return 0


def _check_run_dir(path) -> None:
    """A file where a run directory is expected is not 'not found'."""
    if os.path.isfile(path):
        raise ConfigError(f"{path} is a file, not a run directory (give the directory that run --out wrote)")


def cmd_plot(args) -> int:
    """``jaxcollapse plot DIR``: redraw the figures of a finished run."""
    from ..io.plots import plot_run
    from ..io.rundir import add_to_manifest, load_run

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise ConfigError(f"--format must list png, pdf or svg; got {args.format!r}")
    _check_run_dir(args.dir)
    run = load_run(args.dir)
    files = plot_run(run, formats=formats)
    add_to_manifest(run.path, plots=[os.path.relpath(p, run.path) for p in files])
    if not getattr(args, "quiet", False):
        for f in files:
            print(f)
    return 0


def _local_devices(setting: str | None):
    """The devices of ``--devices`` (a ConfigError naming the flag and the available count if there are fewer)."""
    import jax

    found = jax.local_devices()
    if setting in (None, "all"):
        return found
    if int(setting) > len(found):
        raise ConfigError(f"--devices must be 'all' or a number from 1 to {len(found)} (the {jax.default_backend()} "
                          f"devices of this process); got {setting}")
    return found[: int(setting)]

