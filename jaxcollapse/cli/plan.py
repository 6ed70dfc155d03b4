"""``jaxcollapse plan``: how many chains a requested precision needs, from a short pilot run.

The study is given with the flags (or TOML file) of ``jaxcollapse run``; a pilot of ``--pilot-chains`` chains
runs it, and for each requested target the pilot's standard deviation gives the chains needed for a 95%
interval of half-width ``--half-width`` (``analysis.chains_needed``; for proportions
``analysis.chains_needed_proportion``), and the pilot's measured speed the run time of such a study.

Targets: ``--metric NAME --generation M`` (the mean of a metric at generation ``M``), ``--collapse-time``
(the mean collapse time; only collapsed chains are seen, so a pilot with censored chains underestimates
it and says so), ``--collapsed-by M`` (the proportion of chains collapsed by generation ``M``).
"""

from __future__ import annotations

import json
import math
import sys
import time

from ..engine.host import plural
from ..errors import ConfigError, check_float, check_int
from .options import PROG, add_options, number
from .progress import add_progress_arguments, every_seconds, reporter

DESCRIPTION = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""

#: Settings of ``run`` that make no sense for a pilot.
_SKIP = {"chains", "out", "overwrite", "quiet", "plots", "pdf", "traces", "final", "per_context"}
PILOT_CHAINS = 200


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", default=None,
                        help="read the study's settings from a TOML file (keys of jaxcollapse run)")
    add_options(parser, skip=_SKIP)
    p = parser.add_argument_group("plan")
    p.add_argument("--metric", default=None, help="metric whose mean is wanted (collision, max_prob, l1_initial, "
                   "l1_first, entropy, support, missing_mass, kl)")
    p.add_argument("--generation", type=number("int"), default=None, metavar="M",
                   help="generation at which the metric's mean is wanted (default: the last)")
    p.add_argument("--collapse-time", action="store_true", help="plan for the mean collapse time")
    p.add_argument("--collapsed-by", type=number("int"), default=None, metavar="M",
                   help="plan for the proportion of chains collapsed by generation M")
    p.add_argument("--half-width", type=number("float"), required=True, metavar="H",
                   help="wanted half-width of the 95%% confidence interval, in the target's unit")
    p.add_argument("--pilot-chains", type=number("int"), default=PILOT_CHAINS,
                   help=f"chains of the pilot run (default: {PILOT_CHAINS})")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_progress_arguments(p, quiet=True)


def _targets(args, generations: int) -> list[tuple[str, object]]:
    from ..core.metrics import METRICS

    targets = []
    if args.metric is not None or args.generation is not None:
        metric = args.metric or "collision"
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        m = generations if args.generation is None else args.generation
        if not (0 <= m <= generations):
            raise ConfigError(f"generation must be in [0, {generations}] (the study's generations), got {m}")
        targets.append(("metric", (metric, m)))
    if args.collapse_time:
        targets.append(("collapse_time", None))
    if args.collapsed_by is not None:
        if not (0 <= args.collapsed_by <= generations):
            raise ConfigError(f"collapsed-by must be in [0, {generations}] (the study's generations), "
                              f"got {args.collapsed_by}")
        targets.append(("collapsed", args.collapsed_by))
    if not targets:
        targets.append(("metric", ("collision", generations)))
    return targets


def make_plan(args) -> dict:
    """Run the pilot and return the plan as a dict (what ``--json`` prints)."""
    import numpy as np

    from ..engine.simulate import simulate
    from ..stats import analysis
    from .options import OPTIONS
    from .settings import resolve

    every = every_seconds(getattr(args, "progress_every", None))
    half = check_float("half_width", args.half_width, low=0.0, low_open=True)
    pilot_chains = check_int("pilot_chains", args.pilot_chains, low=2, high=10**6)
    flags = {o.key: getattr(args, o.key, None) for o in OPTIONS if o.key not in _SKIP}
    study = resolve(flags, args.config)
    res = study.resolved
    generations = res["generations"]
    targets = _targets(args, generations)
    if any(kind == "collapsed" for kind, _ in targets) and half >= 1:
        raise ConfigError(f"half-width of a proportion must be in (0, 1), got {half:g}")
    marks = []
    shown = reporter(sys.stderr, f"{PROG} plan: pilot", every, quiet=bool(getattr(args, "quiet", False)))

    def progress(done, total):
        marks.append((time.perf_counter(), done))
        if shown is not None:
            shown(done, total)

    t0 = time.perf_counter()
    try:
        result = simulate(res["seed"], study.initial, study.regime, chains=pilot_chains, generations=generations,
                          decoding=study.decoding if study.decoding.active else None, smoothing=res["smoothing"],
                          sampler=res["sampler"], chunk_size=res["chunk_size"],
                          memory=int(res["memory"] * 2**20), keep_final=False, progress=progress)
    finally:
        if shown is not None:
            shown.close()
    wall = time.perf_counter() - t0
    # speed after compilation: from the first progress mark (first generations, compilation included) on
    if len(marks) >= 3 and marks[-1][0] > marks[1][0]:
        rate = (marks[-1][1] - marks[1][1]) / (marks[-1][0] - marks[1][0])
        overhead = max(0.0, wall - pilot_chains * generations / rate)
    else:
        rate = pilot_chains * generations / wall
        overhead = 0.0
    rows = []
    for kind, what in targets:
        row = {"target": None, "half_width": half}
        if kind == "metric":
            metric, m = what
            x = result.traces[metric][:, m]
            row["target"] = f"mean {metric} at generation {m}"
            if not np.all(np.isfinite(x)):
                row.update(estimate=float("inf"), sd=None, chains=None,
                           note="infinite in some pilot chains: the mean is infinite")
                rows.append(row)
                continue
            est = analysis.mean_ci(x)
            sd = float(est.sd)
            if sd == 0.0:
                need = 2
                note = "no spread in the pilot at this generation"
            else:
                need = analysis.chains_needed(x, half).chains
                note = ""
            row.update(estimate=float(est.mean), pilot_ci=[float(est.ci_low), float(est.ci_high)], sd=sd,
                       chains=int(need), note=note)
        elif kind == "collapse_time":
            t = result.collapse_time
            seen = t[t >= 0]
            row["target"] = "mean collapse time"
            if seen.size < 2:
                raise ConfigError(f"only {seen.size} of {plural(pilot_chains, 'pilot chain')} collapsed within "
                                  f"{plural(generations, 'generation')}: raise --generations to plan for the "
                                  "collapse time")
            censored = int((t < 0).sum())
            need = analysis.chains_needed(seen.astype(float), half).chains
            row.update(estimate=float(seen.mean()), sd=float(seen.std(ddof=1)), chains=int(need),
                       note="" if censored == 0 else f"{plural(censored, 'pilot chain')} did not collapse within "
                       f"{plural(generations, 'generation')}: estimate and sd are too low; raise --generations")
        else:
            m = what
            t = result.collapse_time
            p = float(((t >= 0) & (t <= m)).mean())
            ci = analysis.wilson_ci(int(((t >= 0) & (t <= m)).sum()), pilot_chains)
            need = analysis.chains_needed_proportion(p if 0 < p < 1 else None, half)
            row["target"] = f"P(collapsed by generation {m})"
            row.update(estimate=p, pilot_ci=[float(ci.low), float(ci.high)], sd=math.sqrt(p * (1 - p)),
                       chains=int(need), note="" if 0 < p < 1 else "pilot proportion is 0 or 1: worst case "
                       "p = 0.5 used")
        if row["chains"] is not None:
            row["run_time_s"] = overhead + row["chains"] * generations / rate
        rows.append(row)
    return {"study": f"{study.regime.describe()} · {study.describe_initial}", "generations": generations,
            "pilot_chains": pilot_chains, "pilot_wall_s": wall, "chain_generations_per_s": rate,
            "compile_s": overhead, "level": 0.95, "targets": rows, "warnings": list(study.warnings)}


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def format_plan(plan: dict) -> str:
    lines = [f"jaxcollapse plan: {plan['study']} · {plural(plan['generations'], 'generation')}",
             f"pilot: {plural(plan['pilot_chains'], 'chain')} in {plan['pilot_wall_s']:.1f} s "
             f"({plan['chain_generations_per_s'] / 1e3:.1f}k chain-generations/s after "
             f"{plan['compile_s']:.1f} s of compilation)",
             f"  {'target':<38} {'pilot estimate':>15} {'sd':>10} {'half-width':>11} {'chains':>10} {'run time':>9}"]
    for r in plan["targets"]:
        chains = "-" if r["chains"] is None else f"{r['chains']:,}"
        sd = "-" if r["sd"] is None else f"{r['sd']:.4g}"
        rt = "-" if "run_time_s" not in r else _duration(r["run_time_s"])
        lines.append(f"  {r['target']:<38} {r['estimate']:>15.6g} {sd:>10} {r['half_width']:>11.4g} "
                     f"{chains:>10} {rt:>9}")
        if r.get("note"):
            lines.append(f"    note: {r['note']}")
    lines.append("chains for a 95% interval of the given half-width (normal quantile, pilot sd; add a margin "
                 "for small pilots)")
    lines += [f"warning: {w}" for w in plan.get("warnings", [])]
    return "\n".join(lines)


def _finite(x):
    """``x`` with non-finite floats as the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def run_command(args) -> int:
    plan = make_plan(args)
    if args.json:
        print(json.dumps(_finite(plan), indent=2, allow_nan=False))
    else:
        print(format_plan({**plan, "warnings": []} if getattr(args, "quiet", False) else plan))
    sys.stdout.flush()
    return 0
