"""Running the benchmark: the references timed on each workload, speed-ups against the engine, the whole run.

Implementations timed on the same chains x generations (see :mod:`jaxcollapse.bench.reference`):

* ``engine``: :func:`jaxcollapse.simulate` (:func:`jaxcollapse.bench.workloads.bench_engine`).
* ``(a)``: ``numpy.random.default_rng(seed).multinomial(n, pvals_2d)`` for all chains at once, in a Python
  loop over generations, with the 8 metrics in vectorised NumPy.
* ``(b)``: the per-chain loop of public collapse studies: for each chain, for each generation,
  ``rng.choice(vocab, size=n, p=p)`` + ``np.bincount(minlength=vocab)``, metrics per chain.
* ``(c)``: ``jax.random.multinomial`` under ``jit`` + ``vmap`` over chains in a ``lax.scan`` over
  generations, float64 (``jax.enable_x64``), metrics in ``jax.numpy``; its counts are checked for exactness
  (integral, non-negative, rows summing exactly to ``n``) and calibration at the workload's ``n``.

A reference whose full run would take longer than ``budget`` seconds is timed on a subset and extrapolated
linearly, and labelled so: (a) and (b) keep every generation and drop chains (their cost is linear in chains),
(c) keeps every chain and drops generations (its cost per generation is constant); (b) at ``n > 10^7`` draws
``10^7`` tokens per chain and generation and scales linearly in ``n``. Times per generation are always for the
chains of the row (``chains x gens timed`` shows what actually ran), so the engine speed-up compares like with
like.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import numpy as np

from . import reference
from .machine import copy_bandwidth, machine_info, metrics_share, rng_share, rng_throughput
from .timing import collision_stats, loadavg, log, median, plan_subset, pool, timed, timing_row
from .workloads import (TARGET_B, TARGET_COMPILE_S, WORKLOADS, Workload, bench_engine, bench_engine_micro,
                        bench_engine_processes, sizes_for)

#: Reference (b) draws at most this many tokens per chain and generation; larger ``n`` is extrapolated.
B_MAX_DRAWS = 10 ** 7
#: Reference (a) keeps at least this many chains when it is timed on a subset (per-generation Python
#: overhead stays negligible).
A_MIN_CHAINS = 256


# ----------------------------------------------------------------------------------------------------------
# the references on a workload
# ----------------------------------------------------------------------------------------------------------

def bench_ref_a(w: Workload, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    """Time reference (a): the timing row and the pooled collision probabilities at ``check_gen``."""
    def run(c, g, s):
        return reference.numpy_multinomial(w.truth(), w.n, c, g, s, real=w.real)

    pc, pg = min(chains, A_MIN_CHAINS), min(gens, 5)
    pilot, _ = timed(run, pc, pg, seed)
    unit = pilot / (pc * pg)
    tc, tg = plan_subset(unit, chains, gens, budget, prefer="chains", min_chains=min(chains, A_MIN_CHAINS))
    seconds, pooled = [], []
    for r in range(repeats):
        s, traces = timed(run, tc, tg, seed + 1 + r)
        seconds.append(s)
        pool(pooled, traces[:, :, 0], check_gen)
    row = timing_row("a", chains, gens, tc, tg, seconds)
    log(f"  (a) {row['ms_per_gen']:.2f} ms/gen (timed {tc} x {tg})", quiet)
    return row, pooled


def bench_ref_b(w: Workload, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    """Time reference (b), on at most :data:`B_MAX_DRAWS` draws per chain and generation (scaled linearly in
    ``n`` beyond): the timing row and the pooled collision probabilities (only when all ``n`` were drawn)."""
    draws = min(w.n, B_MAX_DRAWS)
    factor = w.n / draws

    def run(c, g, s):
        return reference.numpy_per_chain(w.truth(), draws, c, g, s, real=w.real)

    pg = min(gens, 3)
    pilot, _ = timed(run, 1, pg, seed)
    unit = pilot / pg
    tc, tg = plan_subset(unit, chains, gens, budget, prefer="chains")
    seconds, pooled = [], []
    for r in range(repeats):
        s, traces = timed(run, tc, tg, seed + 1 + r)
        seconds.append(s)
        if draws == w.n:
            pool(pooled, traces[:, :, 0], check_gen)
    extra = {"draws_per_chain_gen": draws}
    if draws < w.n:
        extra.update(draws_extrapolated=True, draw_factor=factor)
    row = timing_row("b", chains, gens, tc, tg, seconds, **extra)
    log(f"  (b) {row['ms_per_gen']:.1f} ms/gen (timed {tc} x {tg}, {draws} draws)", quiet)
    return row, pooled


def bench_ref_c(w: Workload, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    """Time reference (c) (compiled first, then timed with the transfer of its traces to the host) and check
    its counts at the workload's ``n``: the timing row and the pooled collision probabilities."""
    import jax

    def make(c, g):
        return reference.make_jax_multinomial(w.truth(), w.n, c, g, real=w.real)

    with jax.enable_x64(True):
        pilot_f = make(chains, 2)
        t_compile, _ = timed(lambda: jax.block_until_ready(pilot_f(jax.random.key(seed))))
        t_pilot, _ = timed(lambda: jax.block_until_ready(pilot_f(jax.random.key(seed + 1))))
        unit = t_pilot / (chains * 2)
        tc, tg = plan_subset(unit, chains, gens, budget, prefer="gens")
        if (tc, tg) == (chains, 2):
            f, t_first = pilot_f, t_compile
        else:
            f = make(tc, tg)
            t_first, _ = timed(lambda: jax.block_until_ready(f(jax.random.key(seed))))
        seconds, pooled = [], []
        for r in range(repeats):
            s, traces = timed(lambda: np.asarray(f(jax.random.key(seed + 1 + r))))
            seconds.append(s)
            pool(pooled, traces[:, :, 0], check_gen)
    check = reference.check_jax_multinomial(w.truth(), w.n, min(chains, 256), seed)
    row = timing_row("c", chains, gens, tc, tg, seconds, compile_s=t_first - median(seconds), exactness=check)
    log(f"  (c) {row['ms_per_gen']:.2f} ms/gen (timed {tc} x {tg}); exact: {check['exact']}", quiet)
    return row, pooled


REFERENCE_RUNNERS = {"a": bench_ref_a, "b": bench_ref_b, "c": bench_ref_c}


# ----------------------------------------------------------------------------------------------------------
# one workload, the whole run
# ----------------------------------------------------------------------------------------------------------

def _theory_collision(w: Workload, gens: int) -> np.ndarray | None:
    """Exact ``E sigma_m``, ``m = 0..gens`` (model.md section 4), or None if :mod:`jaxcollapse.stats.theory`
    fails."""
    try:
        from ..stats import theory
        p0 = w.truth()
        if w.partial:
            return np.asarray(theory.theorem2_collision(p0, w.real, w.n, gens), np.float64)
        return np.asarray(theory.fully_synthetic_collision(p0, w.n, gens), np.float64)
    except Exception:  # noqa: BLE001 - theory is only a cross-check
        return None


def _check_generation(theory: np.ndarray | None, gens: int) -> int:
    """The generation where the expected collision probability is halfway between generations 1 and G (a
    generation where the chains still differ; the last one when the theory is missing)."""
    if theory is None or len(theory) != gens + 1:
        return gens
    mid = 0.5 * (theory[1] + theory[gens])
    return int(1 + np.argmin(np.abs(theory[1:] - mid)))


def bench_workload(w: Workload, chains: int, gens: int, *, refs, repeats: int, sampler: str, seed: int,
                   budget: float, chunk_size: int | None, micro: bool, rng: dict | None, quiet: bool,
                   processes: int = 1) -> dict:
    """The engine, its micro timings and the references ``refs`` on ``w`` at ``chains x gens``: rows, speed-ups
    and targets, errors, the collision consistency check, the random-number share and the load average. With
    ``processes > 1`` the engine runs in that many pinned processes (:func:`bench_engine_processes`; no micro
    timings)."""
    log(f"{w.describe()}\n  running {chains} chains x {gens} generations", quiet)
    t_start = time.perf_counter()
    result = {"workload": dataclasses.asdict(w), "chains": chains, "generations": gens,
              "scaled": (chains, gens) != (w.chains, w.generations), "rows": {}, "errors": {},
              "load_average": {"start": loadavg()}}
    theory = _theory_collision(w, gens)
    g_check = _check_generation(theory, gens)
    checks = {"generation": g_check, "theory": None if theory is None else float(theory[g_check])}
    timer = bench_engine if processes == 1 else functools.partial(bench_engine_processes, processes=processes)
    engine, pooled = timer(w, chains, gens, repeats=repeats, sampler=sampler, seed=seed, chunk_size=chunk_size,
                           quiet=quiet, check_gen=g_check)
    result["rows"]["engine"] = engine
    checks["engine"] = collision_stats(pooled)
    if micro and processes == 1:
        try:
            result["micro"] = bench_engine_micro(w, engine["chunk_size"], chains, gens, sampler=sampler,
                                                 seed=seed, repeats=repeats)
        except Exception as e:  # noqa: BLE001 - the kernel API is being changed by others
            result["errors"]["micro"] = f"{type(e).__name__}: {e}"
    for ref in refs:
        try:
            row, pooled = REFERENCE_RUNNERS[ref](w, chains, gens, repeats=repeats,
                                                 seed=seed + 1000 * (ord(ref) - 96), budget=budget, quiet=quiet,
                                                 check_gen=g_check)
        except Exception as e:  # noqa: BLE001 - report and go on with the other references
            result["errors"][ref] = f"{type(e).__name__}: {e}"
            log(f"  ({ref}) failed: {result['errors'][ref]}", quiet)
            continue
        result["rows"][ref] = row
        checks[ref] = collision_stats(pooled)
        row["engine_speedup"] = row["ms_per_gen"] / engine["ms_per_gen"]
        target = w.target_a if ref == "a" else TARGET_B if ref == "b" else None
        row["target"] = target
        row["met"] = None if target is None else bool(row["engine_speedup"] >= target)
    engine["compile_target_s"] = TARGET_COMPILE_S
    engine["compile_met"] = bool(engine["compile_s"] <= TARGET_COMPILE_S)
    result["collision_check"] = checks
    result["random_numbers"] = rng_share(w, chains, engine, rng)
    result["metric_pass"] = metrics_share(w, chains, engine.get("sampler"), result.get("micro"),
                                          (rng or {}).get("copy"))
    result["seconds"] = time.perf_counter() - t_start
    result["load_average"]["end"] = loadavg()
    return result


def run(settings: dict, settings_text: str, *, micro: bool = True, quiet: bool = False) -> dict:
    """The whole benchmark for resolved ``settings`` (keys ``workloads``, ``refs``, ``repeats``, ``budget_s``,
    ``chain_scale``, ``gen_scale``, ``chains``, ``generations``, ``quick``, ``sampler``, ``chunk_size``,
    ``seed``, ``rng_size``; see :func:`jaxcollapse.bench.command.resolve`): the report with the machine, the
    settings, the random-number throughput and one result per workload."""
    report = {"machine": machine_info(), "settings": settings, "settings_text": settings_text, "workloads": []}
    t0 = time.perf_counter()
    if settings["rng_size"]:
        report["rng"] = rng_throughput(settings["rng_size"], settings["repeats"])
        report["rng"]["copy"] = copy_bandwidth(settings["rng_size"], settings["repeats"])
        log(f"RNG: engine float64 {report['rng']['engine_float64']['per_s']:.3g}/s, 32-bit "
            f"{report['rng']['engine_bits32']['per_s']:.3g}/s; jax float64 {report['rng']['jax_float64']['per_s']:.3g}/s, float32 "
            f"{report['rng']['jax_float32']['per_s']:.3g}/s, numpy "
            f"{report['rng']['numpy_pcg64_float64']['per_s']:.3g}/s", quiet)
    for name in settings["workloads"]:
        w = WORKLOADS[name]
        chains, gens = sizes_for(w, chain_scale=settings["chain_scale"], gen_scale=settings["gen_scale"],
                                 quick=settings["quick"], chains=settings["chains"],
                                 generations=settings["generations"])
        report["workloads"].append(bench_workload(
            w, chains, gens, refs=settings["refs"], repeats=settings["repeats"], sampler=settings["sampler"],
            seed=settings["seed"], budget=settings["budget_s"], chunk_size=settings["chunk_size"], micro=micro,
            rng=report.get("rng"), quiet=quiet, processes=settings.get("processes", 1)))
    report["total_seconds"] = time.perf_counter() - t0
    try:
        report["machine"]["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    return report
