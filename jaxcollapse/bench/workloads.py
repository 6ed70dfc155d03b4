"""The six benchmark workloads and how each is run on the engine.

Each workload is fully synthetic unless said, started from ``zipf(vocab, 1.1)`` over the whole vocabulary,
recording the 8 metrics of :data:`jaxcollapse.METRICS` per chain and generation:

====  ======  ======  =======  ===========  ===================================================
name  vocab   n       chains   generations  notes
====  ======  ======  =======  ===========  ===================================================
W1    1000    100     1024     200
W2    100     1e6     16384    50
W3    10      1e6     16384    50
W4    50000   1e9     64       20           exact counts at a real-model token budget
W5    600     100     10000    2000         long runs through collapse
W6    600     100     10000    200          partially synthetic, N = 1000 real samples reused
====  ======  ======  =======  ===========  ===================================================

The engine row is :func:`jaxcollapse.simulate` (``keep_traces=True, keep_final=False``), timed by
:func:`bench_engine`: its first call includes compilation, ``compile ~ first call - median warm call``.
:func:`bench_engine_micro` times the kernel's pieces alone. The references it is compared with are in
:mod:`jaxcollapse.bench.reference`, timed by :mod:`jaxcollapse.bench.runner`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time

import numpy as np

from .reference import ZIPF_EXPONENT, zipf_probs
from .timing import log, median, pool, timed, timing_row

#: Engine speed-up targets: over reference (b) for every workload, and first-call compile time (seconds).
TARGET_B = 100.0
TARGET_COMPILE_S = 5.0


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload at its full size; ``real`` = N for the partially synthetic regime (else None).

    ``n`` is the number of synthetic samples per chain and generation, ``target_a`` the engine's speed-up
    target over reference (a)."""

    name: str
    vocab: int
    n: int
    chains: int
    generations: int
    real: int | None = None
    target_a: float = 1.0
    note: str = ""

    @property
    def partial(self) -> bool:
        return self.real is not None

    def truth(self) -> np.ndarray:
        """``p^(0)`` ``(vocab,)`` float64, as the references take it."""
        return zipf_probs(self.vocab)

    def engine_inputs(self):
        """``(initial, regime)`` of :func:`jaxcollapse.simulate` for this workload."""
        import jaxcollapse as jc
        initial = jc.zipf(self.vocab, ZIPF_EXPONENT)
        regime = jc.partially_synthetic(self.real, self.n) if self.partial else jc.fully_synthetic(self.n)
        return initial, regime

    def describe(self) -> str:
        regime = f"partially synthetic N={self.real}, n={self.n}" if self.partial else f"fully synthetic n={self.n}"
        return (f"{self.name}: vocab {self.vocab}, {regime}, {self.chains} chains x {self.generations} "
                f"generations; target >= {self.target_a:g}x (a), >= {TARGET_B:g}x (b)"
                + (f"; {self.note}" if self.note else ""))


WORKLOADS = {w.name: w for w in (
    Workload("W1", 1000, 100, 1024, 200, target_a=5.0),
    Workload("W2", 100, 10 ** 6, 16384, 50, target_a=1.5),
    Workload("W3", 10, 10 ** 6, 16384, 50, target_a=1.0),
    Workload("W4", 50000, 10 ** 9, 64, 20, target_a=1.0, note="exact counts at n = 1e9"),
    Workload("W5", 600, 100, 10000, 2000, target_a=3.0),
    Workload("W6", 600, 100, 10000, 200, real=1000, target_a=3.0),
)}
QUICK_WORKLOADS = ("W1", "W6")
QUICK_CHAINS = 32
QUICK_GENERATIONS = 6


def sizes_for(w: Workload, *, chain_scale: float = 1.0, gen_scale: float = 1.0, quick: bool = False,
              chains: int | None = None, generations: int | None = None) -> tuple[int, int]:
    """Chains and generations actually run for ``w``: divided by the scale factors (at least 1 chain and 2
    generations), capped in ``quick`` mode, or set outright by ``chains`` / ``generations``."""
    c = max(1, round(w.chains / chain_scale))
    g = max(2, round(w.generations / gen_scale))
    if quick:
        c, g = min(c, QUICK_CHAINS), min(g, QUICK_GENERATIONS)
    if chains is not None:
        c = chains
    if generations is not None:
        g = generations
    return int(c), int(g)


# ----------------------------------------------------------------------------------------------------------
# the engine on a workload
# ----------------------------------------------------------------------------------------------------------

def bench_engine(w: Workload, chains: int, gens: int, *, repeats: int, sampler: str, seed: int,
                 chunk_size: int | None, quiet: bool, check_gen: int | None = None) -> tuple[dict, list]:
    """Time ``jaxcollapse.simulate``: one cold call (compile + run), then ``repeats`` warm calls, each split into
    phases by its ``progress`` callback: the first compiled call per chunk (setup, generation 0, and generation
    1 where the kernel runs it apart), the scan segments (the generations after it) and the tail (host
    summary). Returns the timing row and the collision probabilities ``(chains,)`` at generation ``check_gen``
    of every warm call."""
    import jaxcollapse as jc
    initial, regime = w.engine_inputs()
    kwargs = dict(chains=chains, generations=gens, sampler=sampler, keep_traces=True, keep_final=False)
    if chunk_size:
        kwargs["chunk_size"] = chunk_size

    def call(s):
        marks = []
        kw = dict(kwargs, progress=lambda done, total: marks.append(time.perf_counter()))
        t0 = time.perf_counter()
        res = jc.simulate(s, initial, regime, **kw)
        t1 = time.perf_counter()
        return t1 - t0, res, _phases(t0, t1, marks, res, chains)

    first_s, res, _ = call(seed)
    settings = dict(res.settings)
    del res
    log(f"  engine first call {first_s:.2f} s (sampler {settings.get('sampler')}, "
        f"chunk {settings.get('chunk_size')})", quiet)
    seconds, phases, pooled = [], [], []
    for r in range(repeats):
        s, res, ph = call(seed + 1 + r)
        seconds.append(s)
        phases.append(ph)
        try:
            pool(pooled, res.traces["collision"], check_gen)
        except (AttributeError, KeyError, TypeError):
            pass
        del res
    row = timing_row("engine", chains, gens, chains, gens, seconds, first_call_s=first_s,
                     compile_s=first_s - median(seconds), sampler=settings.get("sampler"),
                     chunk_size=settings.get("chunk_size"))
    if phases and all(p is not None for p in phases):
        keys = phases[0].keys()
        row["phases_s"] = {k: median([p[k] for p in phases]) for k in keys}
        scan = row["phases_s"]["scan_segments"]
        scanned = gens - _first_scanned(w, gens, settings.get("sampler")) + 1
        row["scan_ms_per_gen"] = scan / scanned * 1e3 if scanned > 0 else None
    log(f"  engine warm median {row['median_s']:.3f} s = {row['ms_per_gen']:.2f} ms/gen; "
        f"compile ~ {row['compile_s']:.2f} s", quiet)
    return row, pooled


def bench_engine_processes(w: Workload, chains: int, gens: int, *, processes: int, repeats: int, sampler: str,
                           seed: int, chunk_size: int | None, quiet: bool,
                           check_gen: int | None = None) -> tuple[dict, list]:
    """:func:`bench_engine` run in ``processes`` pinned processes on this machine
    (:func:`jaxcollapse.engine.local.launch`): every process times the same calls, each of which runs its share
    of the chains and gathers the whole result; process 0's timing row (with ``"processes"``) and pooled
    collision probabilities are returned."""
    from ..engine import local

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "engine.json")
        job = json.dumps({"workload": dataclasses.asdict(w), "chains": chains, "gens": gens, "repeats": repeats,
                          "sampler": sampler, "seed": seed, "chunk_size": chunk_size, "quiet": quiet,
                          "check_gen": check_gen, "out": out})
        status = local.launch(f"{__name__}:engine_in_job", [job], processes)
        if status == 130:
            raise KeyboardInterrupt
        if status != 0:
            raise RuntimeError(f"the engine's {processes} processes failed (exit status {status})")
        with open(out) as f:
            done = json.load(f)
    row = dict(done["row"], processes=processes)
    return row, [np.asarray(x) for x in done["pooled"]]


def engine_in_job(argv: list[str]) -> int:
    """One process of :func:`bench_engine_processes`: ``argv`` is its JSON job; process 0 writes the result."""
    from ..engine import local

    job = json.loads(argv[0])
    first = local.job()[0] == 0
    row, pooled = bench_engine(Workload(**job["workload"]), job["chains"], job["gens"], repeats=job["repeats"],
                               sampler=job["sampler"], seed=job["seed"], chunk_size=job["chunk_size"],
                               quiet=job["quiet"] or not first, check_gen=job["check_gen"])
    if first:
        with open(job["out"], "w") as f:
            json.dump({"row": row, "pooled": [np.asarray(x).tolist() for x in pooled]}, f)
    return 0


def _first_scanned(w: Workload, gens: int, sampler: str | None) -> int:
    """The first generation the driver's segments run for ``w`` (1 where the kernel's step also serves
    generation 1, else 2): the scan phase covers it and the ones after."""
    from ..core import count
    from ..core.kernels import kernel_for
    from ..engine import driver

    initial, regime = w.engine_inputs()
    config, _ = count.build(initial, regime, generations=gens, sampler=sampler or "auto")
    return driver.segments(driver.Job(kernel_for(config), config), gens)[0]


def _phases(t0, t1, marks, res, chains):
    """Phase split (seconds) of one simulate call from its progress timestamps (None if they do not fit the
    layout of one mark per compiled call, chunk after chunk)."""
    chunk = res.settings.get("chunk_size") if hasattr(res, "settings") else None
    if not marks or not chunk:
        return None
    pieces = math.ceil(chains / chunk)
    if len(marks) % pieces:
        return None
    per = len(marks) // pieces
    start = scan = 0.0
    prev = t0
    for i, t in enumerate(marks):
        if i % per == 0:
            start += t - prev
        else:
            scan += t - prev
        prev = t
    return {"start_and_setup": start, "scan_segments": scan, "tail": t1 - marks[-1]}


def bench_engine_micro(w: Workload, chunk: int, chains: int, gens: int, *, sampler: str, seed: int,
                       repeats: int) -> dict:
    """Per-generation cost (ms) of the kernel's pieces on one chunk (jit + vmap, scaled to all chunks): the
    sampler alone (``samplers.multinomial``; count kernels only), a whole step (``next_step``: sampling, fit,
    collapse tracking) and the 8 metrics (``measure``), from the module that serves the resolved sampler
    (:mod:`jaxcollapse.core.count`, or :mod:`jaxcollapse.core.resample` for ``"resample"``). The rest of the
    engine's time is the scan, host transfer and summary."""
    import jax
    import jax.numpy as jnp

    from ..core import count, resample, samplers
    initial, regime = w.engine_inputs()
    pieces = math.ceil(chains / chunk)
    out = {"chunk": chunk, "chunks": pieces}
    with jax.enable_x64(True):
        config, params = count.build(initial, regime, generations=gens, sampler=sampler)
        method = getattr(config, "sampler", None)
        mod = resample if method == "resample" else count
        out["module"] = mod.__name__
        dp = jax.tree.map(jnp.asarray, params)
        keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed), jnp.arange(chunk, dtype=jnp.uint32))
        s1 = jax.jit(jax.vmap(lambda k: mod.first_step(jax.random.fold_in(k, 1), mod.init(k, dp, config),
                                                        dp, config)))(keys)

        def measure(s):
            return mod.measure(s, dp, config) if mod is resample else mod.measure(s, dp)

        fns = {
            "step": jax.jit(jax.vmap(lambda k, s: mod.next_step(k, s, dp, config))),
            "metrics": jax.jit(jax.vmap(lambda k, s: measure(s))),
        }
        if mod is count:
            fns["sampler"] = jax.jit(jax.vmap(lambda k, s: samplers.multinomial(
                k, s.model, dp.synthetic, method=config.sampler, capacity=config.capacity)))
        for name, f in fns.items():
            t, _ = timed(lambda: jax.block_until_ready(f(keys, s1)))
            times = []
            for r in range(repeats):
                k2 = jax.vmap(jax.random.fold_in, (0, None))(keys, r + 2)
                times.append(timed(lambda: jax.block_until_ready(f(k2, s1)))[0])
            out[f"{name}_ms_per_gen"] = median(times) * pieces * 1e3
            out[f"{name}_compile_s"] = t - median(times)
    return out
