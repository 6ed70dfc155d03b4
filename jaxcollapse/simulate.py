"""Run many independent chains of recursive training: ``vmap`` over chains, ``lax.scan`` over generations.

Chains are processed in chunks of a fixed size (one compilation per study shape); the chain with global
index ``i`` uses the key ``fold_in(key, i)`` and, in generation ``m``, ``fold_in(fold_in(key, i), m)``, so its
trajectory does not depend on the chunk size. Device memory grows with ``chunk x contexts x vocab`` (and the
token buffer of the sampler), never with the number of generations; host memory holds the per-chain traces,
``chains x (generations + 1) x 8`` metrics x 8 bytes (``keep_traces=False`` keeps only the summary).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import kernel, resample
from .errors import ConfigError, check_int
from .initial import as_initial
from .regimes import Decoding, Regime
from .result import METRIC_NAMES, Moments, Result

#: Device-memory budget used to choose the chunk size when none is given (bytes).
DEFAULT_MEMORY = 1 << 30
#: Largest automatic chunk (chains per compiled call), by backend: on a CPU larger chunks fall out of cache
#: (10,000 chains at vocabulary 600, n = 100: 28 ms per generation in chunks of 1,024, 73 ms in chunks of 5,000).
MAX_CHUNK = {"cpu": 1024}
MAX_CHUNK_ACCELERATOR = 65536
#: Host memory above which final distributions are not kept unless asked for (bytes).
KEEP_FINAL_LIMIT = 1 << 29


def bytes_per_chain(config: kernel.Config) -> int:
    """Estimated peak device bytes per chain of one chunk (state, sampler buffers, temporaries)."""
    cv = config.contexts * config.vocab
    if config.sampler == "resample":
        return 8 * cv * 4 + 96 * config.slots
    total = 8 * cv * (10 + (1 if config.pooled else 0) + 2 * config.window)
    if config.sampler == "tokens":
        total += 64 * config.capacity
    else:
        rows = config.contexts * (max(config.window, 1) if config.kind == "most_recent" else 2)
        width = 1 << max(1, math.ceil(math.log2(max(config.vocab, 2))))
        total += 8 * 24 * rows * width
    total += 48 * config.contexts * config.pool_capacity
    return total


def chunk_for(config: kernel.Config, chains: int, memory: int = DEFAULT_MEMORY, platform: str = "cpu") -> int:
    """Chains per chunk: as many as fit in ``memory`` (up to the backend's ``MAX_CHUNK``), balanced over the chunks."""
    per = bytes_per_chain(config)
    if per > memory:
        raise ConfigError(f"one chain needs about {per / 2**20:.0f} MiB of device memory, more than the "
                          f"memory budget of {memory / 2**20:.0f} MiB; lower vocab, contexts or sizes")
    most = max(1, min(MAX_CHUNK.get(platform, MAX_CHUNK_ACCELERATOR), memory // per, chains))
    pieces = math.ceil(chains / most)
    return math.ceil(chains / pieces)


def as_key(key) -> jax.Array:
    """A typed PRNG key from an int seed, a typed key, or a raw ``uint32[2]`` key."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(check_int("seed", key, low=0, high=2**63 - 1))
    try:
        key = jnp.asarray(key)
    except TypeError:
        raise ConfigError("key must be an int seed or a JAX PRNG key (jax.random.key(seed))") from None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ConfigError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise ConfigError("key must be an int seed or a JAX PRNG key (jax.random.key(seed))")


@functools.partial(jax.jit, static_argnames=("config", "chunk", "per_context"))
def _start(key, start, params, *, config, chunk, per_context):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, start + jnp.arange(chunk, dtype=jnp.uint32))

    def one(k):
        s0 = kernel.init(k, params, config)
        info0 = kernel.measure(s0, params, per_context)
        if config.sampler == "resample":
            s1 = resample.first_step(jax.random.fold_in(k, 1), resample.init(k, params, config), params, config)
            return s1, info0, resample.measure(s1, params, config, per_context)
        s1 = kernel.first_step(jax.random.fold_in(k, 1), s0, params, config)
        return s1, info0, kernel.measure(s1, params, per_context)

    state, info0, info1 = jax.vmap(one)(keys)
    return keys, state, info0, info1


@functools.partial(jax.jit, static_argnames=("config", "length", "per_context"), donate_argnames=("state",))
def _segment(keys, state, params, first_generation, last_generation, *, config, length, per_context):
    engine = resample if config.sampler == "resample" else kernel

    def advance(s, m):
        return jax.vmap(lambda k, c: engine.next_step(jax.random.fold_in(k, m), c, params, config))(keys, s)

    def measure(c):
        if config.sampler == "resample":
            return resample.measure(c, params, config, per_context)
        return kernel.measure(c, params, per_context)

    def compute(s, m):
        s = lax.cond(m <= last_generation, advance, lambda s, m: s, s, m)
        return s, jax.vmap(measure)(s)

    if not frozen_when_collapsed(config):
        return lax.scan(lambda s, i: compute(s, first_generation + i), state, jnp.arange(length))

    def body(carry, i):
        s, previous = carry
        m = first_generation + i

        def skip(s, m):
            return s._replace(generation=jnp.where(m <= last_generation, s.generation + 1, s.generation)), previous

        # Once every chain of the chunk is a Dirac mass in every context, each generation returns the same model
        # and metrics: only the generation counter moves.
        frozen = (i > 0) & jnp.all(s.collapse_time >= 0)
        s, info = lax.cond(frozen, skip, compute, s, m)
        return (s, info), info

    blank = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(lambda s: jax.vmap(measure)(s), state))
    (state, _), infos = lax.scan(body, (state, blank), jnp.arange(length))
    return state, infos


def frozen_when_collapsed(config: kernel.Config) -> bool:
    """Whether a chain whose every context is a Dirac mass keeps its model unchanged (and its metrics) in
    every later generation: fully synthetic data from a point mass is that point mass, whatever the sampler,
    decoding or smoothing (smoothing never leaves a point mass, unless the vocabulary has one token, which
    is then fixed too). Other regimes mix in other models (the real data, the history) and are not skipped."""
    return config.kind == "fully_synthetic"


@functools.partial(jax.jit, static_argnames=("config",))
def _resample_models(state, params, *, config):
    return jax.vmap(lambda s: resample.model(s, params, config))(state)


class _Run:
    """One chunk in flight on one device: its state and the metric blocks fetched so far."""

    def __init__(self, start, n, keys, state, params, pending):
        self.start, self.n, self.keys, self.state, self.params = start, n, keys, state, params
        self.pending = pending
        self.block = {m: [] for m in METRIC_NAMES}
        self.cblock = {m: [] for m in METRIC_NAMES}

    def collect(self, used: int, per_context: bool) -> None:
        """Fetch the pending infos (``(generations, chunk)`` each, or ``(chunk,)`` for single generations)."""
        for info in self.pending:
            for m in METRIC_NAMES:
                a = np.asarray(info[m])
                self.block[m].append(a[:, None][: self.n] if a.ndim == 1 else a[:used, : self.n].T)
                if per_context:
                    b = np.asarray(info[m + "/context"])
                    self.cblock[m].append(b[: self.n, None] if b.ndim == 2 else b[:used, : self.n].transpose(1, 0, 2))
        self.pending = []


def _devices(devices):
    if devices is None:
        return jax.local_devices()
    devices = list(devices)
    if not devices:
        raise ConfigError("devices must name at least one JAX device")
    return devices


def segment_length(generations: int, segments: int = 20) -> int:
    """Generations per compiled segment (progress is reported between segments)."""
    rest = generations - 1
    return max(1, math.ceil(rest / max(1, min(rest, segments))))


def simulate(key, initial, regime: Regime, *, chains: int, generations: int,
             decoding: Decoding | None = None, smoothing: float = 0.0, sampler: str = "auto",
             chunk_size: int | None = None, memory: int = DEFAULT_MEMORY, per_context: bool = False,
             keep_traces: bool = True, keep_final: bool | None = None,
             progress: Callable[[int, int], None] | None = None, devices=None) -> Result:
    """Simulate ``chains`` independent chains of recursive training for ``generations`` generations.

    Args:
      key: int seed or JAX PRNG key; chain ``i`` uses ``fold_in(key, i)``.
      initial: the truth ``p^(0)``: an :class:`~jaxcollapse.Initial`, a ``(vocab,)`` probability vector or a
        ``(contexts, vocab)`` table.
      regime: a :class:`~jaxcollapse.Regime` (e.g. ``jaxcollapse.fully_synthetic(100)``).
      chains: number of independent chains (>= 1).
      generations: number of generations after the truth (>= 1); traces have ``generations + 1`` columns.
      decoding: temperature / top-k / top-p applied before a model generates (default: none).
      smoothing: add-alpha pseudo-count per token in every fit (0 = maximum likelihood).
      sampler: ``"auto"``, ``"resample"``, ``"tokens"`` or ``"binomial"`` (see the README and
        :mod:`jaxcollapse.samplers`, :mod:`jaxcollapse.resample`).
      chunk_size: chains per compiled call (default: chosen from ``memory``); results do not depend on it.
      memory: device-memory budget in bytes for choosing the chunk size.
      per_context: also keep per-context traces ``(chains, generations + 1, contexts)``.
      keep_traces: keep per-chain traces (else only the summary and collapse times).
      keep_final: keep the final ``(chains, contexts, vocab)`` models (default: if under 512 MiB).
      progress: called as ``progress(chain_generations_done, chain_generations_total)`` between segments.
      devices: JAX devices to spread the chunks over (default: all local devices of the default backend);
        results are bit-identical for any number of devices.
    """
    t0 = time.perf_counter()
    chains = check_int("chains", chains, low=1, high=2**31 - 1)
    initial = as_initial(initial)
    with jax.enable_x64(True):
        config, params = kernel.build(initial, regime, generations=generations, decoding=decoding,
                                      smoothing=smoothing, sampler=sampler)
        generations = int(generations)
        key = as_key(key)
        devices = _devices(devices)
        chunk = (check_int("chunk_size", chunk_size, low=1) if chunk_size is not None
                 else chunk_for(config, chains, memory, devices[0].platform))
        chunk = min(chunk, chains)
        c, v = config.contexts, config.vocab
        if keep_final is None:
            keep_final = chains * c * v * 8 <= KEEP_FINAL_LIMIT
        width = generations + 1
        traces = {m: np.empty((chains, width)) for m in METRIC_NAMES} if keep_traces else None
        ctx = {m: np.empty((chains, width, c)) for m in METRIC_NAMES} if per_context else None
        moments = {m: Moments(width) for m in METRIC_NAMES}
        collapse_time = np.empty(chains, np.int64)
        ctx_time = np.empty((chains, c), np.int64)
        ctx_token = np.empty((chains, c), np.int64)
        final = np.empty((chains, c, v)) if keep_final else None
        seg = segment_length(generations)
        placed = [(jax.device_put(params, d), jax.device_put(key, d)) for d in devices]
        starts = list(range(0, chains, chunk))
        total_work, done = chains * generations, 0
        # Chunks run in waves, one per device; every device gets the same chunk shape, so a chain's
        # trajectory is the same whichever device (or how many) computed it.
        for wave in range(0, len(starts), len(devices)):
            runs = []
            for start, (dparams, dkey) in zip(starts[wave:wave + len(devices)], placed):
                keys, state, info0, info1 = _start(dkey, jnp.uint32(start), dparams, config=config, chunk=chunk,
                                                   per_context=per_context)
                runs.append(_Run(start, min(chunk, chains - start), keys, state, dparams, [info0, info1]))
            for run in runs:
                run.collect(2, per_context)
            done += sum(r.n for r in runs)
            if progress:
                progress(done, total_work)
            for first_gen in range(2, generations + 1, seg):
                used = min(seg, generations + 1 - first_gen)
                for run in runs:
                    run.state, info = _segment(run.keys, run.state, run.params, jnp.int32(first_gen),
                                               jnp.int32(generations), config=config, length=seg,
                                               per_context=per_context)
                    run.pending.append(info)
                for run in runs:
                    run.collect(used, per_context)
                done += sum(r.n * used for r in runs)
                if progress:
                    progress(done, total_work)
            for run in runs:
                start, n, state = run.start, run.n, run.state
                for m in METRIC_NAMES:
                    arr = np.concatenate(run.block[m], axis=1)
                    moments[m].update(arr)
                    if keep_traces:
                        traces[m][start:start + n] = arr
                    if per_context:
                        ctx[m][start:start + n] = np.concatenate(run.cblock[m], axis=1)
                collapse_time[start:start + n] = np.asarray(state.chain_collapse)[:n]
                ctx_time[start:start + n] = np.asarray(state.collapse_time)[:n]
                ctx_token[start:start + n] = np.asarray(state.collapse_token)[:n]
                if keep_final:
                    models = (_resample_models(state, run.params, config=config) if config.sampler == "resample"
                              else state.model)
                    final[start:start + n] = np.asarray(models)[:n]
    settings = {
        "regime": regime.describe(), "kind": regime.kind, "contexts": c, "vocab": v,
        "chains": chains, "generations": generations, "smoothing": float(smoothing),
        "decoding": None if decoding is None else {"temperature": decoding.temperature, "top_k": decoding.top_k,
                                                    "top_p": decoding.top_p},
        "sampler": config.sampler, "chunk_size": chunk, "devices": [str(d) for d in devices],
        "sizes": {"first": params.first.tolist(), "real": params.real.tolist(),
                  "synthetic": params.synthetic.tolist(), "train": params.train.tolist()}
        if c <= 64 else {"first_total": int(params.first.sum()), "real_total": int(params.real.sum()),
                         "synthetic_total": int(params.synthetic.sum())},
    }
    return Result(traces=traces, context_traces=ctx, summary={m: moments[m].summary() for m in METRIC_NAMES},
                  collapse_time=collapse_time, collapse_token=ctx_token, context_collapse_time=ctx_time,
                  final=final, settings=settings, wall_time=time.perf_counter() - t0, chains=chains,
                  generations=generations)
