"""The benchmark's report as Markdown tables and as standard JSON.

:func:`markdown` renders a report of :func:`jaxcollapse.bench.runner.run` (times in ms per generation,
seconds for compile and phases, speed-ups as ratios); :func:`write_json` writes it with non-finite floats
replaced (NaN -> null, inf -> "inf").
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..io.files import write_text

#: The rows of a workload, in table order, and their labels.
IMPLEMENTATIONS = ("engine", "a", "b", "c")
IMPL_LABELS = {
    "engine": "engine `jaxcollapse.simulate`",
    "a": "(a) NumPy 2-D `multinomial`, loop over gens",
    "b": "(b) per-chain `rng.choice` + `bincount`",
    "c": "(c) `jax.random.multinomial` jit+vmap+scan, f64",
}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.3g}%"


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` significant figures for the tables (``-`` for None/NaN)."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 6 or mag <= -4:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - mag)
    return f"{x:,.{decimals}f}"


def jsonable(obj):
    """Replace non-finite floats (and NumPy scalars) so the JSON is standard."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def write_json(report: dict, path: str) -> None:
    """Write ``report`` as standard JSON (see :func:`jsonable`) to ``path``."""
    write_text(path, json.dumps(jsonable(report), indent=1))


def emit(text: str, markdown_path: str | None = None) -> int:
    """Print a benchmark's Markdown ``text`` and, with a path, write it there too; returns 0 (an exit status)."""
    print(text)
    if markdown_path:
        write_text(markdown_path, text + "\n")
    return 0


def _timed_label(row: dict) -> str:
    """``C x G`` actually timed, and what it was extrapolated to."""
    s = f"{row['timed_chains']} x {row['timed_generations']}"
    if row.get("extrapolated"):
        parts = []
        if (row["timed_chains"], row["timed_generations"]) != (row["chains"], row["generations"]):
            parts.append(f"extrapolated to {row['chains']} x {row['generations']}")
        if row.get("draws_extrapolated"):
            parts.append(f"{fmt(row['draws_per_chain_gen'])} draws/chain-gen timed, x{fmt(row['draw_factor'])} "
                         f"linear in n")
        s += " (" + "; ".join(parts) + ")"
    return s


def markdown(report: dict) -> str:
    """The report as Markdown: the timing table of every workload and implementation, the engine's detail
    (compile, phases, micro timings, random-number share), the random-number throughput, the collision
    consistency check against theory, and the errors."""
    m = report["machine"]
    lines = [
        f"## jaxcollapse benchmark, {m['date']}",
        "",
        f"Backend `{m['backend']}` ({m['device']}), CPU {m['cpu_model']}, {m['cpu_count']} cores "
        f"(affinity {m['cpu_affinity']}), load average at start {m.get('load_average_at_start')}; "
        f"jax {m['versions']['jax']}, jaxlib {m['versions']['jaxlib']}, numpy {m['versions']['numpy']}, "
        f"python {m['versions']['python']}. Settings: {report['settings_text']}.",
        "",
        "ms/gen: median over the timed runs of one run's wall time / generations, for the row's chains "
        "(extrapolated linearly where labelled). `full-size ms/gen` rescales linearly to the workload's full "
        "chain count. Speedup = reference ms/gen / engine ms/gen on the same chains x generations.",
        "",
        "| workload | implementation | chains x gens timed | ms/gen | full-size ms/gen | chain-gens/s | "
        "engine speedup | target | met |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for res in report["workloads"]:
        w = res["workload"]
        for impl in IMPLEMENTATIONS:
            row = res["rows"].get(impl)
            if row is None:
                if impl in res["errors"]:
                    lines.append(f"| {w['name']} | {IMPL_LABELS[impl]} | failed: {res['errors'][impl][:80]} "
                                 f"| | | | | | |")
                continue
            label = IMPL_LABELS[impl]
            if impl == "engine":
                procs = f", {row['processes']} processes" if row.get("processes") else ""
                label += f" ({row.get('sampler')}{procs})"
            if impl == "c":
                ex = row.get("exactness", {})
                label += (f"; exact at n={fmt(w['n'])}: " + ("yes" if ex.get("exact") else
                          f"**no** (rows sum to n: {ex.get('rows_sum_to_n')}, integral: {ex.get('integral')}, "
                          f"z2 {fmt(ex.get('z2_mean'))})"))
            full = row["ms_per_gen"] * w["chains"] / res["chains"]
            speed = "-" if impl == "engine" else fmt(row.get("engine_speedup")) + "x"
            target = "-" if row.get("target") is None else f">= {fmt(row['target'])}x"
            met = "-" if row.get("met") is None else ("met" if row["met"] else "**missed**")
            lines.append(f"| {w['name']} | {label} | {_timed_label(row)} | {fmt(row['ms_per_gen'])} | "
                         f"{fmt(full)} | {fmt(row['chain_gens_per_s'])} | {speed} | {target} | {met} |")
    lines += [
        "",
        "### Engine detail",
        "",
        "compile = first call - median warm call (target <= 5 s). Phases of a warm call (median, from the "
        "progress callback): start = setup + generation 0 per chunk, with generation 1 where the kernel runs it "
        "in a program of its own (and the previous chunk's host summary), scan = the generations after it (1..G "
        "or 2..G), tail = host summary. Micro = the kernel's pieces jitted alone per "
        "generation (sampler only, count kernels / whole step / the 8 metrics), for all chunks. RNG share = estimated "
        "uniforms per generation / scan time per generation / throughput of the engine's generator "
        "(`jaxcollapse.core.rng`: float64 uniforms, or 32-bit words for the resample kernel's parent picks), of "
        "the large batch / of the in-cache batch. Metric pass = bytes of the "
        "chains' state the 8 metrics read per generation (resample: int32 training list + first counts; count: "
        "float64 model + first model) / micro metrics time, and its share of the copy bandwidth below.",
        "",
        "| workload | V | n | N | full chains x gens | run chains x gens | sampler, chunk | first call s | "
        "compile s | compile <= 5 s | ms/gen (all) | ms/gen (scan) | phases s: start / scan / tail | "
        "micro ms/gen: sampler / step / metrics | uniforms/gen (est.) | RNG share: large / in-cache rate | "
        "metric pass GB/s (share of copy bandwidth) |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for res in report["workloads"]:
        w = res["workload"]
        e = res["rows"]["engine"]
        ph = e.get("phases_s")
        phs = "-" if not ph else " / ".join(fmt(ph[k]) for k in ("start_and_setup", "scan_segments", "tail"))
        mi = res.get("micro")
        mis = ("-" if not mi else " / ".join(fmt(mi.get(f"{k}_ms_per_gen")) for k in ("sampler", "step", "metrics")))
        if "micro" in res["errors"]:
            mis = "failed"
        rn = res.get("random_numbers", {})
        mp = res.get("metric_pass", {})
        mps = "-" if not mp.get("bytes_per_s") else (f"{fmt(mp['bytes_per_s'] / 1e9)} "
                                                     f"({_pct(mp.get('share_of_bandwidth'))})")
        lines.append(
            f"| {w['name']} | {w['vocab']} | {fmt(w['n'])} | {w['real'] or '-'} | {w['chains']} x {w['generations']} "
            f"| {res['chains']} x {res['generations']} | {e.get('sampler')}, {e.get('chunk_size')} | "
            f"{fmt(e['first_call_s'])} | {fmt(e['compile_s'])} | {'met' if e['compile_met'] else '**missed**'} | "
            f"{fmt(e['ms_per_gen'])} | {fmt(e.get('scan_ms_per_gen'))} | {phs} | {mis} | "
            f"{fmt(rn.get('estimate_per_gen'))} | {_pct(rn.get('share_of_time'))} / "
            f"{_pct(rn.get('share_of_time_small'))} | {mps} |")
    loads = [f"{r['workload']['name']} {r['load_average'].get('start')} -> {r['load_average'].get('end')}"
             for r in report["workloads"] if r.get("load_average")]
    if loads:
        lines += ["", f"Load average (1, 5, 15 min) at the start and end of each workload, on "
                  f"{m['cpu_count']} cores: " + "; ".join(loads) + "."]
    rng = report.get("rng")
    if rng:
        lines += [
            "",
            f"### Random-number throughput (one jitted batch of {fmt(rng['batch'])}, median of {rng['repeats']})",
            "",
            "| generator | uniforms/s |",
            "|---|---:|",
            *([f"| engine's generator (`jaxcollapse.core.rng`, {m.get('prng_impl')}) float64 | "
               f"{fmt(rng['engine_float64']['per_s'])} |",
               f"| engine's generator 32-bit words (SplitMix64) | {fmt(rng['engine_bits32']['per_s'])} |"]
              if "engine_float64" in rng else []),
            f"| `jax.random.uniform` float64 ({m.get('prng_impl')}) | {fmt(rng['jax_float64']['per_s'])} |",
            f"| `jax.random.uniform` float32 ({m.get('prng_impl')}) | {fmt(rng['jax_float32']['per_s'])} |",
        ]
        if "engine_float64_small" in rng:
            lines += [
                f"| engine's generator float64, in-cache batch of {fmt(rng['small_batch'])} | "
                f"{fmt(rng['engine_float64_small']['per_s'])} |",
                f"| engine's generator 32-bit words, in-cache batch of {fmt(rng['small_batch'])} | "
                f"{fmt(rng['engine_bits32_small']['per_s'])} |",
            ]
        if "jax_float64_small" in rng:
            lines += [
                f"| `jax.random.uniform` float64, in-cache batch of {fmt(rng['small_batch'])} | "
                f"{fmt(rng['jax_float64_small']['per_s'])} |",
                f"| `jax.random.uniform` float32, in-cache batch of {fmt(rng['small_batch'])} | "
                f"{fmt(rng['jax_float32_small']['per_s'])} |",
            ]
        lines += [
            f"| NumPy `default_rng().random` float64 (PCG64, 1 thread) | {fmt(rng['numpy_pcg64_float64']['per_s'])} |",
        ]
        if "copy" in rng:
            lines += ["", f"Copy bandwidth (jitted `x + 1.0` over {fmt(rng['batch'])} float64, read + write): "
                      f"{fmt(rng['copy']['per_s'] / 1e9)} GB/s."]
        hows = sorted({r["random_numbers"].get("how") for r in report["workloads"] if r.get("random_numbers")} - {None})
        if hows:
            lines += ["", "Uniforms per generation estimated as: " + "; ".join(hows) + "."]
    lines += [
        "",
        "### Consistency: mean collision probability (+- s.e.; pooled over the timed runs, count in brackets) at the "
        "generation where theory is halfway between generations 1 and G",
        "",
        "| workload | gen | theory (E) | engine | (a) | (b) | (c) |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for res in report["workloads"]:
        c = res["collision_check"]

        def cell(x):
            return "-" if not x else f"{x['mean']:.5f} +- {fmt(x['se'], 2)} ({x['chains']})"
        theory = "-" if c.get("theory") is None else f"{c['theory']:.5f}"
        lines.append(f"| {res['workload']['name']} | {c['generation']} | {theory} | {cell(c.get('engine'))} | "
                     f"{cell(c.get('a'))} | {cell(c.get('b'))} | {cell(c.get('c'))} |")
    errs = [(r["workload"]["name"], k, v) for r in report["workloads"] for k, v in r["errors"].items()]
    if errs:
        lines += ["", "### Errors", ""] + [f"- {n} {k}: {v}" for n, k, v in errs]
    return "\n".join(lines) + "\n"
