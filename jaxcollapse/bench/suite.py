"""Benchmark suite: the engine against the NumPy and JAX code a researcher would otherwise write.

Six workloads, each fully synthetic unless said, started from ``zipf(vocab, 1.1)`` over the
whole vocabulary, recording the 8 metrics of :data:`jaxcollapse.METRICS` per chain and generation:

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

Implementations timed on the same chains x generations:

* ``engine``: :func:`jaxcollapse.simulate` (``keep_traces=True, keep_final=False``). Its first call includes
  compilation; ``compile ~ first call - median warm call``.
* ``(a)``: ``numpy.random.default_rng(seed).multinomial(n, pvals_2d)`` for all chains at once, in a Python
  loop over generations, with the 8 metrics in vectorised NumPy.
* ``(b)``: the per-chain loop of public collapse studies: for each chain, for each generation,
  ``rng.choice(vocab, size=n, p=p)`` + ``np.bincount(minlength=vocab)``, metrics per chain.
* ``(c)``: ``jax.random.multinomial`` under ``jit`` + ``vmap`` over chains in a ``lax.scan`` over
  generations, float64 (``jax.enable_x64``), metrics in ``jax.numpy``; its counts are checked for exactness
  (integral, non-negative, rows summing exactly to ``n``) and calibration at the workload's ``n``.

A reference whose full run would take longer than ``--budget`` seconds is timed on a subset and extrapolated
linearly, and labelled so: (a) and (b) keep every generation and drop chains (their cost is linear in chains),
(c) keeps every chain and drops generations (its cost per generation is constant); (b) at ``n > 10^7`` draws
``10^7`` tokens per chain and generation and scales linearly in ``n``. Times per generation are always for the
chains of the row (``chains x gens timed`` shows what actually ran), so the engine speedup compares like with
like. Run ``python benchmarks/bench.py --help`` (or :func:`main`) for the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

from ..errors import ConfigError

#: The metrics every implementation records, in this order (as :data:`jaxcollapse.METRICS`).
METRIC_ORDER = ("collision", "max_prob", "l1_initial", "l1_first", "entropy", "support", "missing_mass", "kl")
ZIPF_EXPONENT = 1.1
#: Engine speed-up targets: over reference (b) for every workload, and first-call compile time.
TARGET_B = 100.0
TARGET_COMPILE_S = 5.0
#: Estimated uniforms consumed per binomial by the binomial-splitting sampler (BTRS draws 2 uniforms per
#: round, about 1.2 rounds with round 0 drawn twice where the squeeze does not decide it; inversion draws
#: one). An estimate, used only for the random-number share.
UNIFORMS_PER_BINOMIAL = 3
#: Reference (b) draws at most this many tokens per chain and generation; larger ``n`` is extrapolated.
B_MAX_DRAWS = 10 ** 7
#: In-cache batch of the second random-number throughput test (the engine's draws per chunk are of this order).
SMALL_RNG_BATCH = 1 << 17
#: Reference (a) keeps at least this many chains when it is timed on a subset (per-generation Python
#: overhead stays negligible).
A_MIN_CHAINS = 256
IMPLEMENTATIONS = ("engine", "a", "b", "c")
IMPL_LABELS = {
    "engine": "engine `jaxcollapse.simulate`",
    "a": "(a) NumPy 2-D `multinomial`, loop over gens",
    "b": "(b) per-chain `rng.choice` + `bincount`",
    "c": "(c) `jax.random.multinomial` jit+vmap+scan, f64",
}


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload at its full size; ``real`` = N for the partially synthetic regime (else None)."""

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


# ----------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------

def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _median(xs):
    return float(statistics.median(xs)) if xs else float("nan")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.3g}%"


def _fmt(x, digits: int = 3) -> str:
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


def _jsonable(obj):
    """Replace non-finite floats (and NumPy scalars) so the JSON is standard."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
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
        return _jsonable(obj.tolist())
    return obj


def zipf_probs(vocab: int) -> np.ndarray:
    """``p^(0)``: Zipf exponent 1.1 over the whole vocabulary, as ``jaxcollapse.zipf(vocab, 1.1)``."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    return p / p.sum()


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


def plan_subset(unit_s: float, chains: int, gens: int, budget_s: float, *, prefer: str,
                min_chains: int = 1) -> tuple[int, int]:
    """The chains x generations to time so that one run takes about ``budget_s`` seconds, given the cost of
    one chain-generation ``unit_s``. ``prefer="chains"`` keeps every generation and drops chains (down to
    ``min_chains``) first; ``prefer="gens"`` keeps every chain and drops generations (down to 2) first."""
    if unit_s * chains * gens <= budget_s:
        return chains, gens
    if prefer == "chains":
        c = min(chains, max(min_chains, int(budget_s // (unit_s * gens))))
        if unit_s * c * gens <= budget_s or c < min_chains:
            return max(1, c), gens
        g = max(2, min(gens, int(budget_s // (unit_s * c))))
        return c, g
    g = max(2, min(gens, int(budget_s // (unit_s * chains))))
    if unit_s * chains * g <= budget_s:
        return chains, g
    c = max(1, min(chains, int(budget_s // (unit_s * g))))
    return c, g


# ----------------------------------------------------------------------------------------------------------
# machine
# ----------------------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _source_hashes() -> dict:
    """sha256 (first 12 hex digits) of the package's modules, so a result names the code it measured."""
    import jaxcollapse
    root = os.path.dirname(jaxcollapse.__file__)
    out = {}
    for name in sorted(f for f in os.listdir(root) if f.endswith(".py")):
        try:
            with open(os.path.join(root, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()[:12]
        except OSError:
            out[name] = None
    return out


def machine_info() -> dict:
    import jax
    import jaxlib

    import jaxcollapse
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    dev = jax.devices()[0]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "load_average_at_start": load,
        "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), "jaxcollapse": getattr(jaxcollapse, "__version__", None)},
        "platform": platform.platform(),
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
        "env": {k: os.environ.get(k) for k in ("JAX_PLATFORMS", "XLA_FLAGS", "OMP_NUM_THREADS",
                                               "JAX_ENABLE_X64") if os.environ.get(k) is not None},
        "engine_source_sha256": _source_hashes(),
    }


def rng_throughput(size: int, repeats: int) -> dict:
    """Uniforms per second of ``jax.random.uniform`` (float64 under x64, and float32) for one batch of ``size``
    values under ``jit``, and of NumPy's ``default_rng().random`` (PCG64, float64) for comparison."""
    import jax
    import jax.numpy as jnp
    small = min(size, SMALL_RNG_BATCH)
    out = {"batch": int(size), "small_batch": int(small), "repeats": int(repeats)}
    with jax.enable_x64(True):
        key = jax.random.key(0)
        for name, dtype in (("jax_float64", jnp.float64), ("jax_float32", jnp.float32)):
            for suffix, batch, reps in (("", size, repeats), ("_small", small, max(repeats, 20))):
                f = jax.jit(lambda k, dtype=dtype, batch=batch: jax.random.uniform(k, (batch,), dtype))
                f(key).block_until_ready()
                times = []
                for r in range(reps):
                    k = jax.random.fold_in(key, r)
                    t = time.perf_counter()
                    f(k).block_until_ready()
                    times.append(time.perf_counter() - t)
                out[name + suffix] = {"per_s": batch / _median(times), "seconds": times}
    rng = np.random.default_rng(0)
    buf = np.empty(size)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        rng.random(out=buf)
        times.append(time.perf_counter() - t)
    out["numpy_pcg64_float64"] = {"per_s": size / _median(times), "seconds": times}
    return out


# ----------------------------------------------------------------------------------------------------------
# metrics in NumPy (references (a) and (b)) and jax.numpy (reference (c))
# ----------------------------------------------------------------------------------------------------------

def np_metrics(p: np.ndarray, p0: np.ndarray, p1: np.ndarray | None, out: np.ndarray, logp0: np.ndarray) -> None:
    """The 8 metrics of ``p`` (``(..., V)``) into ``out`` (``(..., 8)``), in :data:`METRIC_ORDER`."""
    alive = p > 0
    logp = np.log(p, where=alive, out=np.zeros(p.shape))
    out[..., 0] = (p * p).sum(-1)
    out[..., 1] = p.max(-1)
    out[..., 2] = np.abs(p - p0).sum(-1)
    out[..., 3] = np.nan if p1 is None else np.abs(p - p1).sum(-1)
    out[..., 4] = -(p * logp).sum(-1)
    out[..., 5] = alive.sum(-1)
    out[..., 6] = np.where(alive, 0.0, p0).sum(-1)
    pos = p0 > 0
    kl = np.where(pos, p0 * (logp0 - logp), 0.0).sum(-1)
    out[..., 7] = np.where((pos & ~alive).any(-1), np.inf, kl)


def _jnp_metrics(p, p0, p1, logp0):
    import jax.numpy as jnp
    alive = p > 0
    logp = jnp.log(jnp.where(alive, p, 1.0))
    pos = p0 > 0
    kl = jnp.sum(jnp.where(pos, p0 * (logp0 - logp), 0.0), -1)
    return jnp.stack([
        jnp.sum(p * p, -1), jnp.max(p, -1), jnp.sum(jnp.abs(p - p0), -1), jnp.sum(jnp.abs(p - p1), -1),
        -jnp.sum(jnp.where(alive, p * logp, 0.0), -1), jnp.sum(alive, -1).astype(p.dtype),
        jnp.sum(jnp.where(alive, 0.0, p0), -1), jnp.where(jnp.any(pos & ~alive, -1), jnp.inf, kl)], -1)


# ----------------------------------------------------------------------------------------------------------
# the references
# ----------------------------------------------------------------------------------------------------------

def ref_numpy_multinomial(w: Workload, chains: int, gens: int, seed: int) -> np.ndarray:
    """Reference (a): traces ``(chains, gens + 1, 8)``; one ``rng.multinomial(n, pvals_2d)`` per generation."""
    rng = np.random.default_rng(seed)
    p0 = zipf_probs(w.vocab)
    logp0 = np.log(np.where(p0 > 0, p0, 1.0))
    out = np.empty((chains, gens + 1, len(METRIC_ORDER)))
    start = np.broadcast_to(p0, (chains, w.vocab))
    np_metrics(start, p0, None, out[:, 0], logp0)
    if w.partial:
        real = rng.multinomial(w.real, start)
        p = real / w.real
        total = w.real + w.n
    else:
        p = rng.multinomial(w.n, start) / w.n
    p1 = p
    np_metrics(p, p0, p1, out[:, 1], logp0)
    for g in range(2, gens + 1):
        counts = rng.multinomial(w.n, p)
        p = (real + counts) / total if w.partial else counts / w.n
        np_metrics(p, p0, p1, out[:, g], logp0)
    return out


def ref_per_chain(w: Workload, chains: int, gens: int, seed: int, draws: int | None = None) -> np.ndarray:
    """Reference (b): traces ``(chains, gens + 1, 8)``; per chain and generation ``rng.choice`` + ``bincount``.

    ``draws`` replaces ``n`` (the synthetic sample size) when given, to time huge ``n`` on fewer tokens."""
    n = w.n if draws is None else draws
    rng = np.random.default_rng(seed)
    vocab = w.vocab
    p0 = zipf_probs(vocab)
    logp0 = np.log(np.where(p0 > 0, p0, 1.0))
    out = np.empty((chains, gens + 1, len(METRIC_ORDER)))
    for c in range(chains):
        row = out[c]
        np_metrics(p0, p0, None, row[0], logp0)
        if w.partial:
            real = np.bincount(rng.choice(vocab, size=w.real, p=p0), minlength=vocab)
            p = real / w.real
            total = w.real + n
        else:
            p = np.bincount(rng.choice(vocab, size=n, p=p0), minlength=vocab) / n
        p1 = p
        np_metrics(p, p0, p1, row[1], logp0)
        for g in range(2, gens + 1):
            counts = np.bincount(rng.choice(vocab, size=n, p=p), minlength=vocab)
            p = (real + counts) / total if w.partial else counts / n
            np_metrics(p, p0, p1, row[g], logp0)
    return out


def make_ref_jax(w: Workload, chains: int, gens: int) -> Callable:
    """Reference (c): a jitted ``run(key) -> traces (chains, gens + 1, 8)``; call it under ``jax.enable_x64``."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    vocab, n = w.vocab, float(w.n)
    p0_np = zipf_probs(vocab)

    def draw(keys, size, p):
        return jax.vmap(lambda k, q: jax.random.multinomial(k, size, q))(keys, p)

    @jax.jit
    def run(key):
        p0 = jnp.asarray(p0_np)
        logp0 = jnp.log(jnp.where(p0 > 0, p0, 1.0))
        start = jnp.broadcast_to(p0, (chains, vocab))
        k_first, k_rest = jax.random.split(key)
        first_keys = jax.random.split(k_first, chains)
        if w.partial:
            real = draw(first_keys, float(w.real), start)
            p1 = real / w.real
        else:
            p1 = draw(first_keys, n, start) / n
        m0 = _jnp_metrics(start, p0, jnp.full_like(start, jnp.nan), logp0)
        m1 = _jnp_metrics(p1, p0, p1, logp0)

        def body(p, k):
            counts = draw(jax.random.split(k, chains), n, p)
            p = (real + counts) / (w.real + n) if w.partial else counts / n
            return p, _jnp_metrics(p, p0, p1, logp0)

        _, rest = lax.scan(body, p1, jax.random.split(k_rest, gens - 1))
        return jnp.concatenate([m0[:, None], m1[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)

    return run


def check_jax_multinomial(w: Workload, chains: int, seed: int) -> dict:
    """Draw one generation from ``p^(0)`` with ``jax.random.multinomial`` (float64) at the workload's ``n`` and
    check the counts: integral, non-negative, every row summing exactly to ``n``; calibration: mean over
    tokens with ``n p_i >= 100`` of ``z_i^2``, ``z_i`` the standardised mean count over chains (about 1)."""
    import jax
    import jax.numpy as jnp
    p0 = zipf_probs(w.vocab)
    with jax.enable_x64(True):
        f = jax.jit(lambda k: jax.vmap(lambda kk: jax.random.multinomial(kk, float(w.n), jnp.asarray(p0)))(
            jax.random.split(k, chains)))
        counts = np.asarray(f(jax.random.key(seed)))
    integral = bool(np.all(counts == np.round(counts)))
    nonneg = bool(np.all(counts >= 0))
    sums = counts.sum(axis=1)
    exact_sum = bool(np.all(sums == w.n))
    mean_n = w.n * p0
    use = mean_n >= 100
    z = (counts[:, use].mean(0) - mean_n[use]) / np.sqrt(mean_n[use] * (1 - p0[use]) / chains)
    z2 = float(np.mean(z ** 2)) if use.any() else float("nan")
    ok = integral and nonneg and exact_sum and (not use.any() or z2 < 1 + 6 * math.sqrt(2 / use.sum()))
    return {"chains": chains, "n": w.n, "dtype": str(counts.dtype), "integral": integral, "non_negative": nonneg,
            "rows_sum_to_n": exact_sum, "max_abs_sum_error": float(np.max(np.abs(sums - w.n))),
            "z2_mean": z2, "z2_tokens": int(use.sum()), "exact": ok}


# ----------------------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------------------

def _timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t, out


def _row(impl: str, chains: int, gens: int, timed_chains: int, timed_gens: int, seconds: list[float],
         **extra) -> dict:
    """A timing row: seconds per timed run -> time per generation at ``chains`` (extrapolated if subset)."""
    med = _median(seconds)
    per_chain_gen = med / (timed_chains * timed_gens)
    row = {
        "implementation": impl, "chains": chains, "generations": gens,
        "timed_chains": timed_chains, "timed_generations": timed_gens,
        "extrapolated": (timed_chains, timed_gens) != (chains, gens) or bool(extra.get("draws_extrapolated")),
        "seconds": seconds, "median_s": med,
        "ms_per_gen": per_chain_gen * chains * 1e3 * extra.get("draw_factor", 1.0),
        "chain_gens_per_s": 1.0 / (per_chain_gen * extra.get("draw_factor", 1.0)),
    }
    row.update(extra)
    return row


def bench_engine(w: Workload, chains: int, gens: int, *, repeats: int, sampler: str, seed: int,
                 chunk_size: int | None, quiet: bool, check_gen: int | None = None) -> tuple[dict, list]:
    """Time ``jaxcollapse.simulate``: one cold call (compile + run), then ``repeats`` warm calls, each split into
    phases by its ``progress`` callback: the first compiled call per chunk (setup, generations 0-1), the scan
    segments (generations 2..G) and the tail (host summary). Returns the row and the collision probabilities
    at generation ``check_gen`` of every warm call."""
    import jaxcollapse as jc
    initial = jc.zipf(w.vocab, ZIPF_EXPONENT)
    regime = jc.partially_synthetic(w.real, w.n) if w.partial else jc.fully_synthetic(w.n)
    kwargs = dict(chains=chains, generations=gens, sampler=sampler, keep_traces=True, keep_final=False)
    if chunk_size:
        kwargs["chunk_size"] = chunk_size

    def call(s):
        marks = []
        kw = dict(kwargs, progress=lambda done, total: marks.append(time.perf_counter()))
        t0 = time.perf_counter()
        res = jc.simulate(s, initial, regime, **kw)
        t1 = time.perf_counter()
        return t1 - t0, res, _phases(t0, t1, marks, res, chains, gens)

    first_s, res, _ = call(seed)
    settings = dict(res.settings)
    del res
    _log(f"  engine first call {first_s:.2f} s (sampler {settings.get('sampler')}, "
         f"chunk {settings.get('chunk_size')})", quiet)
    seconds, phases, pooled = [], [], []
    for r in range(repeats):
        s, res, ph = call(seed + 1 + r)
        seconds.append(s)
        phases.append(ph)
        try:
            _pool(pooled, res.traces["collision"], check_gen)
        except (AttributeError, KeyError, TypeError):
            pass
        del res
    row = _row("engine", chains, gens, chains, gens, seconds, first_call_s=first_s,
               compile_s=first_s - _median(seconds), sampler=settings.get("sampler"),
               chunk_size=settings.get("chunk_size"))
    if phases and all(p is not None for p in phases):
        keys = phases[0].keys()
        row["phases_s"] = {k: _median([p[k] for p in phases]) for k in keys}
        scan = row["phases_s"]["scan_segments"]
        row["scan_ms_per_gen"] = scan / max(gens - 1, 1) * 1e3 if gens > 1 else None
    _log(f"  engine warm median {row['median_s']:.3f} s = {row['ms_per_gen']:.2f} ms/gen; "
         f"compile ~ {row['compile_s']:.2f} s", quiet)
    return row, pooled


def _phases(t0, t1, marks, res, chains, gens):
    """Phase split of one simulate call from its progress timestamps (None if they do not fit the layout)."""
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


def _call_measure(mod, state, params, config):
    from jaxcollapse import resample
    return mod.measure(state, params, config) if mod is resample else mod.measure(state, params)


def bench_engine_micro(w: Workload, chunk: int, chains: int, gens: int, *, sampler: str, seed: int,
                       repeats: int) -> dict:
    """Per-generation cost of the kernel's pieces on one chunk (jit + vmap, scaled to all chunks): the sampler
    alone (``samplers.multinomial``; count kernels only), a whole step (``next_step``: sampling, fit, collapse
    tracking) and the 8 metrics (``measure``), from the module that serves the resolved sampler
    (:mod:`jaxcollapse.kernel`, or :mod:`jaxcollapse.resample` for ``"resample"``). The rest of the engine's
    time is the scan, host transfer and summary."""
    import jax
    import jax.numpy as jnp

    import jaxcollapse as jc
    from jaxcollapse import kernel, resample, samplers
    initial = jc.zipf(w.vocab, ZIPF_EXPONENT)
    regime = jc.partially_synthetic(w.real, w.n) if w.partial else jc.fully_synthetic(w.n)
    pieces = math.ceil(chains / chunk)
    out = {"chunk": chunk, "chunks": pieces}
    with jax.enable_x64(True):
        config, params = kernel.build(initial, regime, generations=gens, sampler=sampler)
        method = getattr(config, "sampler", None)
        mod = resample if method == "resample" else kernel
        out["module"] = mod.__name__
        dp = jax.tree.map(jnp.asarray, params)
        keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed), jnp.arange(chunk, dtype=jnp.uint32))
        s1 = jax.jit(jax.vmap(lambda k: mod.first_step(jax.random.fold_in(k, 1), mod.init(k, dp, config),
                                                        dp, config)))(keys)
        fns = {
            "step": jax.jit(jax.vmap(lambda k, s: mod.next_step(k, s, dp, config))),
            "metrics": jax.jit(jax.vmap(lambda k, s: _call_measure(mod, s, dp, config))),
        }
        if mod is kernel:
            fns["sampler"] = jax.jit(jax.vmap(lambda k, s: samplers.multinomial(
                k, s.model, dp.synthetic, method=config.sampler, capacity=config.capacity)))
        for name, f in fns.items():
            t, _ = _timed(lambda: jax.block_until_ready(f(keys, s1)))
            times = []
            for r in range(repeats):
                k2 = jax.vmap(jax.random.fold_in, (0, None))(keys, r + 2)
                times.append(_timed(lambda: jax.block_until_ready(f(k2, s1)))[0])
            out[f"{name}_ms_per_gen"] = _median(times) * pieces * 1e3
            out[f"{name}_compile_s"] = t - _median(times)
    return out


def bench_ref_a(w, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    pc, pg = min(chains, A_MIN_CHAINS), min(gens, 5)
    pilot, _ = _timed(ref_numpy_multinomial, w, pc, pg, seed)
    unit = pilot / (pc * pg)
    tc, tg = plan_subset(unit, chains, gens, budget, prefer="chains", min_chains=min(chains, A_MIN_CHAINS))
    seconds, pooled = [], []
    for r in range(repeats):
        s, traces = _timed(ref_numpy_multinomial, w, tc, tg, seed + 1 + r)
        seconds.append(s)
        _pool(pooled, traces[:, :, 0], check_gen)
    row = _row("a", chains, gens, tc, tg, seconds)
    _log(f"  (a) {row['ms_per_gen']:.2f} ms/gen (timed {tc} x {tg})", quiet)
    return row, pooled


def bench_ref_b(w, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    draws = min(w.n, B_MAX_DRAWS)
    factor = w.n / draws
    pg = min(gens, 3)
    pilot, _ = _timed(ref_per_chain, w, 1, pg, seed, draws)
    unit = pilot / pg
    tc, tg = plan_subset(unit, chains, gens, budget, prefer="chains")
    seconds, pooled = [], []
    for r in range(repeats):
        s, traces = _timed(ref_per_chain, w, tc, tg, seed + 1 + r, draws)
        seconds.append(s)
        if draws == w.n:
            _pool(pooled, traces[:, :, 0], check_gen)
    extra = {"draws_per_chain_gen": draws}
    if draws < w.n:
        extra.update(draws_extrapolated=True, draw_factor=factor)
    row = _row("b", chains, gens, tc, tg, seconds, **extra)
    _log(f"  (b) {row['ms_per_gen']:.1f} ms/gen (timed {tc} x {tg}, {draws} draws)", quiet)
    return row, pooled


def bench_ref_c(w, chains, gens, *, repeats, seed, budget, quiet, check_gen=None):
    import jax
    with jax.enable_x64(True):
        pilot_f = make_ref_jax(w, chains, 2)
        t_compile, _ = _timed(lambda: jax.block_until_ready(pilot_f(jax.random.key(seed))))
        t_pilot, _ = _timed(lambda: jax.block_until_ready(pilot_f(jax.random.key(seed + 1))))
        unit = t_pilot / (chains * 2)
        tc, tg = plan_subset(unit, chains, gens, budget, prefer="gens")
        if (tc, tg) == (chains, 2):
            f, t_first = pilot_f, t_compile
        else:
            f = make_ref_jax(w, tc, tg)
            t_first, _ = _timed(lambda: jax.block_until_ready(f(jax.random.key(seed))))
        seconds, pooled = [], []
        for r in range(repeats):
            s, traces = _timed(lambda: np.asarray(f(jax.random.key(seed + 1 + r))))
            seconds.append(s)
            _pool(pooled, traces[:, :, 0], check_gen)
    check = check_jax_multinomial(w, min(chains, 256), seed)
    row = _row("c", chains, gens, tc, tg, seconds, compile_s=t_first - _median(seconds), exactness=check)
    _log(f"  (c) {row['ms_per_gen']:.2f} ms/gen (timed {tc} x {tg}); exact: {check['exact']}", quiet)
    return row, pooled


# ----------------------------------------------------------------------------------------------------------
# one workload, the whole run
# ----------------------------------------------------------------------------------------------------------

def _pool(pooled: list, traces, g: int | None) -> None:
    """Append the collision probabilities at generation ``g`` of a ``(chains, generations + 1)`` trace."""
    if traces is not None and g is not None and np.shape(traces)[1] > g:
        pooled.append(np.asarray(traces)[:, g])


def _collision_stats(pooled: list | None) -> dict | None:
    """Mean and standard error of the pooled collision probabilities (all timed runs), or None."""
    if not pooled:
        return None
    x = np.concatenate(pooled)
    return {"mean": float(x.mean()), "se": float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None,
            "chains": int(len(x))}


def _theory_collision(w: Workload, gens: int) -> np.ndarray | None:
    """Exact ``E sigma_m``, ``m = 0..gens`` (model.md section 4), or None if :mod:`jaxcollapse.theory` fails."""
    try:
        from jaxcollapse import theory
        p0 = zipf_probs(w.vocab)
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
                   budget: float, chunk_size: int | None, micro: bool, rng: dict | None, quiet: bool) -> dict:
    _log(f"{w.describe()}\n  running {chains} chains x {gens} generations", quiet)
    t_start = time.perf_counter()
    result = {"workload": dataclasses.asdict(w), "chains": chains, "generations": gens,
              "scaled": (chains, gens) != (w.chains, w.generations), "rows": {}, "errors": {},
              "load_average": {"start": _loadavg()}}
    theory = _theory_collision(w, gens)
    g_check = _check_generation(theory, gens)
    checks = {"generation": g_check, "theory": None if theory is None else float(theory[g_check])}
    engine, pooled = bench_engine(w, chains, gens, repeats=repeats, sampler=sampler, seed=seed,
                                  chunk_size=chunk_size, quiet=quiet, check_gen=g_check)
    result["rows"]["engine"] = engine
    checks["engine"] = _collision_stats(pooled)
    if micro:
        try:
            result["micro"] = bench_engine_micro(w, engine["chunk_size"], chains, gens, sampler=sampler,
                                                 seed=seed, repeats=repeats)
        except Exception as e:  # noqa: BLE001 - the kernel API is being changed by others
            result["errors"]["micro"] = f"{type(e).__name__}: {e}"
    runners = {"a": bench_ref_a, "b": bench_ref_b, "c": bench_ref_c}
    for ref in refs:
        try:
            row, pooled = runners[ref](w, chains, gens, repeats=repeats, seed=seed + 1000 * (ord(ref) - 96),
                                       budget=budget, quiet=quiet, check_gen=g_check)
        except Exception as e:  # noqa: BLE001 - report and go on with the other references
            result["errors"][ref] = f"{type(e).__name__}: {e}"
            _log(f"  ({ref}) failed: {result['errors'][ref]}", quiet)
            continue
        result["rows"][ref] = row
        checks[ref] = _collision_stats(pooled)
        row["engine_speedup"] = row["ms_per_gen"] / engine["ms_per_gen"]
        target = w.target_a if ref == "a" else TARGET_B if ref == "b" else None
        row["target"] = target
        row["met"] = None if target is None else bool(row["engine_speedup"] >= target)
    engine["compile_target_s"] = TARGET_COMPILE_S
    engine["compile_met"] = bool(engine["compile_s"] <= TARGET_COMPILE_S)
    result["collision_check"] = checks
    result["random_numbers"] = _rng_share(w, chains, engine, rng)
    result["seconds"] = time.perf_counter() - t_start
    result["load_average"]["end"] = _loadavg()
    return result


def _rng_share(w: Workload, chains: int, engine: dict, rng: dict | None) -> dict:
    """Estimated uniforms the engine consumes per generation, and their share of the measured time at the
    machine's float64 ``jax.random.uniform`` throughput."""
    sampler = engine.get("sampler")
    if sampler == "tokens":
        per_gen = chains * w.n
        how = f"tokens sampler: one float64 uniform per synthetic token, n = {w.n} per chain"
    elif sampler == "binomial":
        nodes = max(w.vocab - 1, 1)
        per_gen = chains * nodes * UNIFORMS_PER_BINOMIAL
        how = (f"binomial sampler: {nodes} binomials per chain (tree of vocab - 1 splits) x ~{UNIFORMS_PER_BINOMIAL} "
               f"uniforms each (estimate)")
    elif sampler == "resample":
        per_gen = chains * w.n
        how = (f"resample kernel: one random number per new sample ({w.n} per chain: a parent pick among the "
               f"{w.n + (w.real or 0)} training samples; 32-bit bits while they are <= 65536, else a float64 uniform)")
    else:
        return {"estimate": None, "how": f"unknown sampler {sampler!r}"}
    # 32-bit draws (resample's parent picks on small lists) are compared with the float32 rate.
    bits32 = sampler == "resample" and w.n + (w.real or 0) <= 1 << 16
    kind = "jax_float32" if bits32 else "jax_float64"
    out = {"estimate_per_gen": per_gen, "how": how, "compared_with": kind}
    ms = engine.get("scan_ms_per_gen") or engine["ms_per_gen"]
    out["ms_per_gen_used"] = ms
    out["consumed_per_s"] = per_gen / (ms / 1e3)
    if rng:
        thr = rng[kind]["per_s"]
        out["throughput_per_s"] = thr
        out["share_of_time"] = per_gen / thr / (ms / 1e3)
        if kind + "_small" in rng:
            thr_small = rng[kind + "_small"]["per_s"]
            out["throughput_small_per_s"] = thr_small
            out["share_of_time_small"] = per_gen / thr_small / (ms / 1e3)
    return out


# ----------------------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------------------

def _timed_label(row: dict) -> str:
    s = f"{row['timed_chains']} x {row['timed_generations']}"
    if row.get("extrapolated"):
        parts = []
        if (row["timed_chains"], row["timed_generations"]) != (row["chains"], row["generations"]):
            parts.append(f"extrapolated to {row['chains']} x {row['generations']}")
        if row.get("draws_extrapolated"):
            parts.append(f"{_fmt(row['draws_per_chain_gen'])} draws/chain-gen timed, x{_fmt(row['draw_factor'])} "
                         f"linear in n")
        s += " (" + "; ".join(parts) + ")"
    return s


def markdown(report: dict) -> str:
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
                label += f" ({row.get('sampler')})"
            if impl == "c":
                ex = row.get("exactness", {})
                label += (f"; exact at n={_fmt(w['n'])}: " + ("yes" if ex.get("exact") else
                          f"**no** (rows sum to n: {ex.get('rows_sum_to_n')}, integral: {ex.get('integral')}, "
                          f"z2 {_fmt(ex.get('z2_mean'))})"))
            full = row["ms_per_gen"] * w["chains"] / res["chains"]
            speed = "-" if impl == "engine" else _fmt(row.get("engine_speedup")) + "x"
            target = "-" if row.get("target") is None else f">= {_fmt(row['target'])}x"
            met = "-" if row.get("met") is None else ("met" if row["met"] else "**missed**")
            lines.append(f"| {w['name']} | {label} | {_timed_label(row)} | {_fmt(row['ms_per_gen'])} | "
                         f"{_fmt(full)} | {_fmt(row['chain_gens_per_s'])} | {speed} | {target} | {met} |")
    lines += [
        "",
        "### Engine detail",
        "",
        "compile = first call - median warm call (target <= 5 s). Phases of a warm call (median, from the "
        "progress callback): start = setup + generations 0-1 per chunk (and the previous chunk's host "
        "summary), scan = generations 2..G, tail = host summary. Micro = the kernel's pieces jitted alone per "
        "generation (sampler only, count kernels / whole step / the 8 metrics), for all chunks. RNG share = estimated "
        "uniforms per generation / scan time per generation / `jax.random.uniform` throughput, float64 "
        "(float32 for 32-bit draws), of the large batch / of the in-cache batch.",
        "",
        "| workload | V | n | N | full chains x gens | run chains x gens | sampler, chunk | first call s | "
        "compile s | compile <= 5 s | ms/gen (all) | ms/gen (scan) | phases s: start / scan / tail | "
        "micro ms/gen: sampler / step / metrics | uniforms/gen (est.) | RNG share: large / in-cache rate |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---|---:|---:|---|---|---:|---:|",
    ]
    for res in report["workloads"]:
        w = res["workload"]
        e = res["rows"]["engine"]
        ph = e.get("phases_s")
        phs = "-" if not ph else " / ".join(_fmt(ph[k]) for k in ("start_and_setup", "scan_segments", "tail"))
        mi = res.get("micro")
        mis = ("-" if not mi else " / ".join(_fmt(mi.get(f"{k}_ms_per_gen")) for k in ("sampler", "step", "metrics")))
        if "micro" in res["errors"]:
            mis = "failed"
        rn = res.get("random_numbers", {})
        lines.append(
            f"| {w['name']} | {w['vocab']} | {_fmt(w['n'])} | {w['real'] or '-'} | {w['chains']} x {w['generations']} "
            f"| {res['chains']} x {res['generations']} | {e.get('sampler')}, {e.get('chunk_size')} | "
            f"{_fmt(e['first_call_s'])} | {_fmt(e['compile_s'])} | {'met' if e['compile_met'] else '**missed**'} | "
            f"{_fmt(e['ms_per_gen'])} | {_fmt(e.get('scan_ms_per_gen'))} | {phs} | {mis} | "
            f"{_fmt(rn.get('estimate_per_gen'))} | {_pct(rn.get('share_of_time'))} / {_pct(rn.get('share_of_time_small'))} |")
    loads = [f"{r['workload']['name']} {r['load_average'].get('start')} -> {r['load_average'].get('end')}"
             for r in report["workloads"] if r.get("load_average")]
    if loads:
        lines += ["", f"Load average (1, 5, 15 min) at the start and end of each workload, on "
                  f"{m['cpu_count']} cores: " + "; ".join(loads) + "."]
    rng = report.get("rng")
    if rng:
        lines += [
            "",
            f"### Random-number throughput (one jitted batch of {_fmt(rng['batch'])}, median of {rng['repeats']})",
            "",
            "| generator | uniforms/s |",
            "|---|---:|",
            f"| `jax.random.uniform` float64 ({m.get('prng_impl')}) | {_fmt(rng['jax_float64']['per_s'])} |",
            f"| `jax.random.uniform` float32 ({m.get('prng_impl')}) | {_fmt(rng['jax_float32']['per_s'])} |",
        ]
        if "jax_float64_small" in rng:
            lines += [
                f"| `jax.random.uniform` float64, in-cache batch of {_fmt(rng['small_batch'])} | "
                f"{_fmt(rng['jax_float64_small']['per_s'])} |",
                f"| `jax.random.uniform` float32, in-cache batch of {_fmt(rng['small_batch'])} | "
                f"{_fmt(rng['jax_float32_small']['per_s'])} |",
            ]
        lines += [
            f"| NumPy `default_rng().random` float64 (PCG64, 1 thread) | {_fmt(rng['numpy_pcg64_float64']['per_s'])} |",
        ]
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
            return "-" if not x else f"{x['mean']:.5f} +- {_fmt(x['se'], 2)} ({x['chains']})"
        theory = "-" if c.get("theory") is None else f"{c['theory']:.5f}"
        lines.append(f"| {res['workload']['name']} | {c['generation']} | {theory} | {cell(c.get('engine'))} | "
                     f"{cell(c.get('a'))} | {cell(c.get('b'))} | {cell(c.get('c'))} |")
    errs = [(r["workload"]["name"], k, v) for r in report["workloads"] for k, v in r["errors"].items()]
    if errs:
        lines += ["", "### Errors", ""] + [f"- {n} {k}: {v}" for n, k, v in errs]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog, description="Benchmark jaxcollapse.simulate against NumPy and jax.random references "
        "on six standard workloads.", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads:\n" + "\n".join("  " + w.describe() for w in WORKLOADS.values()))
    ap.add_argument("--workloads", default=None,
                    help="comma-separated workload names (default: all; with --quick: " + ",".join(QUICK_WORKLOADS) + ")")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="divide chains and generations by this factor (default 1 = full size)")
    ap.add_argument("--chain-scale", type=float, default=None, help="divide chains by this (default: --scale)")
    ap.add_argument("--gen-scale", type=float, default=None, help="divide generations by this (default: --scale)")
    ap.add_argument("--chains", type=int, default=None, help="run exactly this many chains (every workload)")
    ap.add_argument("--generations", type=int, default=None, help="run exactly this many generations")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per implementation (default 5; quick 3)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds one timed reference run may take before it is timed on a subset and "
                         "extrapolated (default 30; quick 0.5)")
    ap.add_argument("--refs", default="a,b,c", help="references to run: any of a,b,c (default a,b,c)")
    ap.add_argument("--sampler", default="auto", help="engine sampler passed to simulate: auto (default) or one of "
                         "jaxcollapse.samplers.SAMPLERS (e.g. resample, tokens, binomial)")
    ap.add_argument("--chunk-size", type=int, default=None, help="engine chains per compiled call (default: auto)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-micro", action="store_true", help="skip the engine's per-piece (sampler/step/metrics) timing")
    ap.add_argument("--rng-size", type=int, default=None,
                    help="batch size of the random-number throughput test (default 2^24; quick 2^20; 0 = skip)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: <= {QUICK_CHAINS} chains x {QUICK_GENERATIONS} generations, "
                         f"workloads {','.join(QUICK_WORKLOADS)} unless given (under a minute)")
    ap.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    ap.add_argument("--markdown", metavar="FILE", help="write the Markdown tables")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return ap


def run(args: argparse.Namespace) -> dict:
    names = (args.workloads.split(",") if args.workloads else list(QUICK_WORKLOADS if args.quick else WORKLOADS))
    names = [n.strip().upper() for n in names if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    refs = [r.strip().lower() for r in args.refs.split(",") if r.strip()]
    bad = [r for r in refs if r not in ("a", "b", "c")]
    if bad:
        raise SystemExit(f"unknown reference(s) {', '.join(bad)}; choose from a, b, c")
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 30.0)
    rng_size = args.rng_size if args.rng_size is not None else (1 << 20 if args.quick else 1 << 24)
    chain_scale = args.chain_scale if args.chain_scale is not None else args.scale
    gen_scale = args.gen_scale if args.gen_scale is not None else args.scale
    if repeats < 1 or budget <= 0 or chain_scale <= 0 or gen_scale <= 0:
        raise SystemExit("--repeats, --budget and the scales must be positive")
    settings = {"workloads": names, "refs": refs, "repeats": repeats, "budget_s": budget,
                "chain_scale": chain_scale, "gen_scale": gen_scale, "chains": args.chains,
                "generations": args.generations, "quick": args.quick, "sampler": args.sampler,
                "chunk_size": args.chunk_size, "seed": args.seed, "rng_size": rng_size,
                "uniforms_per_binomial_estimate": UNIFORMS_PER_BINOMIAL, "b_max_draws": B_MAX_DRAWS,
                "argv": sys.argv[1:]}
    text = (f"repeats {repeats}, reference budget {_fmt(budget)} s/run, chain scale {_fmt(chain_scale)}, "
            f"generation scale {_fmt(gen_scale)}, sampler {args.sampler}" + (", QUICK" if args.quick else ""))
    report = {"machine": machine_info(), "settings": settings, "settings_text": text, "workloads": []}
    t0 = time.perf_counter()
    if rng_size:
        report["rng"] = rng_throughput(rng_size, repeats)
        _log(f"RNG: jax float64 {report['rng']['jax_float64']['per_s']:.3g}/s, float32 "
             f"{report['rng']['jax_float32']['per_s']:.3g}/s, numpy {report['rng']['numpy_pcg64_float64']['per_s']:.3g}/s",
             args.quiet)
    for name in names:
        w = WORKLOADS[name]
        chains, gens = sizes_for(w, chain_scale=chain_scale, gen_scale=gen_scale, quick=args.quick,
                                 chains=args.chains, generations=args.generations)
        report["workloads"].append(bench_workload(
            w, chains, gens, refs=refs, repeats=repeats, sampler=args.sampler, seed=args.seed, budget=budget,
            chunk_size=args.chunk_size, micro=not args.no_micro, rng=report.get("rng"), quiet=args.quiet))
    report["total_seconds"] = time.perf_counter() - t0
    try:
        report["machine"]["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    return report


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``jaxcollapse bench`` / ``python benchmarks/bench.py``: run, print the Markdown, write JSON/Markdown.
    A bad flag prints one line and returns 2."""
    parser = build_parser(prog)

    def one_line_error(message):
        raise ConfigError(message)

    parser.error = one_line_error
    try:
        args = parser.parse_args(argv)
    except ConfigError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for w in WORKLOADS.values():
            print(w.describe())
        return 0
    report = run(args)
    text = markdown(report)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_jsonable(report), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
