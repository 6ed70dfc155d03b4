"""The machine a benchmark ran on, its random-number throughput, and the engine's random-number share.

:func:`machine_info` records the backend, device, CPU, versions and the sha256 of the package's source files;
:func:`rng_throughput` measures uniforms per second of the engine's generator, ``jax.random.uniform`` and NumPy's PCG64;
:func:`rng_share` estimates the uniforms the engine draws per generation and their share of its time;
:func:`copy_bandwidth` measures a memcpy-like bandwidth and :func:`metrics_share` the share of it the engine's
metric pass uses.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import time

import numpy as np

from .timing import median

#: Estimated uniforms consumed per binomial by the binomial-splitting sampler (BTRS draws 2 uniforms per
#: round, about 1.2 rounds with round 0 drawn twice where the squeeze does not decide it; inversion draws
#: one). An estimate, used only for the random-number share.
UNIFORMS_PER_BINOMIAL = 3
#: In-cache batch of the second random-number throughput test (the engine's draws per chunk are of this order).
SMALL_RNG_BATCH = 1 << 17


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_hashes() -> dict:
    """sha256 (first 12 hex digits) of every module of the package, keyed by its path relative to the package
    (``core/samplers.py``), so a result names the code it measured."""
    import jaxcollapse
    root = os.path.dirname(jaxcollapse.__file__)
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root).replace(os.sep, "/")] = hashlib.sha256(f.read()).hexdigest()[:12]
            except OSError:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = None
    return out


def machine_info() -> dict:
    """Date (UTC), backend, device, CPU model and counts, load average, versions, PRNG, environment flags and
    source hashes, as one JSON-able dict."""
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
        "engine_source_sha256": source_hashes(),
    }


def rng_throughput(size: int, repeats: int) -> dict:
    """Random numbers per second, for one batch of ``size`` values under ``jit`` (and an in-cache batch of at most
    :data:`SMALL_RNG_BATCH`): the engine's generator (:mod:`jaxcollapse.core.rng`: float64 uniforms and 32-bit
    words (SplitMix64, the resampling kernel's parent picks), ``engine_float64`` / ``engine_bits32``), ``jax.random.uniform`` (float64 under x64, and float32), and
    NumPy's ``default_rng().random`` (PCG64, float64) for comparison; each with the seconds of every timed batch."""
    import jax
    import jax.numpy as jnp

    from ..core import rng as engine_rng
    small = min(size, SMALL_RNG_BATCH)
    out = {"batch": int(size), "small_batch": int(small), "repeats": int(repeats)}
    draws = {"engine_float64": lambda k, shape: engine_rng.uniform(k, shape),
             "engine_bits32": lambda k, shape: engine_rng.words(k, shape),
             "jax_float64": lambda k, shape: jax.random.uniform(k, shape, jnp.float64),
             "jax_float32": lambda k, shape: jax.random.uniform(k, shape, jnp.float32)}
    with jax.enable_x64(True):
        key = jax.random.key(0)
        for name, draw in draws.items():
            for suffix, batch, reps in (("", size, repeats), ("_small", small, max(repeats, 20))):
                f = jax.jit(lambda k, draw=draw, batch=batch: draw(k, (batch,)))
                f(key).block_until_ready()
                times = []
                for r in range(reps):
                    k = jax.random.fold_in(key, r)
                    t = time.perf_counter()
                    f(k).block_until_ready()
                    times.append(time.perf_counter() - t)
                out[name + suffix] = {"per_s": batch / median(times), "seconds": times}
    rng = np.random.default_rng(0)
    buf = np.empty(size)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        rng.random(out=buf)
        times.append(time.perf_counter() - t)
    out["numpy_pcg64_float64"] = {"per_s": size / median(times), "seconds": times}
    return out


def copy_bandwidth(size: int, repeats: int) -> dict:
    """Bytes per second of a jitted ``x + 1.0`` over ``size`` float64 values (a memcpy-like pass: every byte
    read once and written once, counted twice), median of ``repeats`` calls, with the seconds of each."""
    import jax
    import jax.numpy as jnp
    with jax.enable_x64(True):
        x = jnp.zeros(size, jnp.float64)
        f = jax.jit(lambda x: x + 1.0)
        f(x).block_until_ready()
        times = []
        for _ in range(max(repeats, 5)):
            t = time.perf_counter()
            f(x).block_until_ready()
            times.append(time.perf_counter() - t)
    return {"bytes": 16 * size, "per_s": 16 * size / median(times), "seconds": times}


def metric_bytes_per_chain(w, sampler: str) -> int:
    """Bytes of one chain's state that the metric pass reads at least once per generation: the resample kernel's
    training list (int32 token per sample; of a partially synthetic study only the ``n`` synthetic samples,
    with the 11 float64 sums of ``p^(1)`` taken at generation 1, while ``n <= vocab``) and first-model counts
    (int32 per token), or the count kernel's model and first model (float64 per token each)."""
    if sampler == "resample":
        if w.partial and w.n <= w.vocab:
            return 4 * w.n + 4 * w.vocab + 8 * 11
        return 4 * (w.n + (w.real or 0)) + 4 * w.vocab
    return 16 * w.vocab


def metrics_share(w, chains: int, sampler: str, micro: dict | None, bandwidth: dict | None) -> dict:
    """The metric pass's bytes per generation (:func:`metric_bytes_per_chain` x ``chains``), its time alone
    (``micro["metrics_ms_per_gen"]``) and the share of the measured copy bandwidth that rate is."""
    out = {"bytes_per_gen": metric_bytes_per_chain(w, sampler) * chains}
    ms = (micro or {}).get("metrics_ms_per_gen")
    if ms:
        out["bytes_per_s"] = out["bytes_per_gen"] / (ms / 1e3)
        if bandwidth:
            out["share_of_bandwidth"] = out["bytes_per_s"] / bandwidth["per_s"]
    return out


def rng_share(w, chains: int, engine: dict, rng: dict | None) -> dict:
    """Estimated uniforms the engine consumes per generation on workload ``w`` with ``chains`` chains, and their
    share of the measured time (``engine``'s row) at the throughput of the engine's own generator (``rng`` from
    :func:`rng_throughput`, or None; reports written before it was measured fall back to ``jax.random.uniform``)."""
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
               f"{w.n + (w.real or 0)} training samples; a 32-bit SplitMix64 word while they are <= 65536, else a "
               f"float64 uniform)")
    else:
        return {"estimate": None, "how": f"unknown sampler {sampler!r}"}
    # 32-bit draws (resample's parent picks on small lists) are compared with the 32-bit rate.
    bits32 = sampler == "resample" and w.n + (w.real or 0) <= 1 << 16
    kind = "engine_bits32" if bits32 else "engine_float64"
    if rng and kind not in rng:
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
