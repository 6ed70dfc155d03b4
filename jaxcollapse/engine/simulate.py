"""Run many independent chains of recursive training: ``vmap`` over chains, a ``lax.fori_loop`` over generations.

Chains are processed in chunks of a fixed size (one compilation per study shape); the chain with global
index ``i`` uses the key ``fold_in(key, i)`` and, in generation ``m``, ``fold_in(fold_in(key, i), m)``, so its
trajectory does not depend on the chunk size, on the device that runs it, or on the process that runs it (in a
``jax.distributed`` job, or in the processes of :func:`jaxcollapse.engine.local.launch`, each process takes
every ``P``-th chunk; the results are gathered).

Device memory grows with ``chunk x contexts x vocab`` (and the token buffer of the sampler), never with the
number of generations. Host memory holds the per-chain records, ``chains x contexts x 16`` bytes, the
per-chain traces, ``chains x (generations + 1) x 8`` metrics x 8 bytes (none with ``keep_traces=False``),
and the final models if kept; metric blocks are folded into the summary segment by segment.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..core import count as kernel
from ..core import trained
from ..core.initial import as_initial
from ..core.kernels import kernel_for
from ..core.regimes import Decoding, Regime
from ..errors import ConfigError, check_bool, check_callable, check_float, check_int
from . import driver, local
from .cache import configure as configure_cache
from .collect import Collector, Output, empty, gather
from .result import METRIC_NAMES, Moments, Result

#: Device-memory budget used to choose the chunk size when none is given (bytes).
DEFAULT_MEMORY = 1 << 30
#: Largest automatic chunk (chains per compiled call), by backend: on a CPU larger chunks fall out of cache
#: (10,000 chains at vocabulary 600, n = 100: 28 ms per generation in chunks of 1,024, 73 ms in chunks of 5,000).
MAX_CHUNK = {"cpu": 1024}
MAX_CHUNK_ACCELERATOR = 65536
#: Largest automatic chunk of the binomial sampler on a CPU: each step of its tree has a fixed cost that larger
#: chunks share (16,384 chains at vocabulary 10, n = 10^6: 44-55 ms per generation in chunks of 1,024, 21-24 in
#: one chunk; vocabulary 100: 265-269 against 232-235).
MAX_CHUNK_CPU_BINOMIAL = 16384
#: Host memory above which final distributions are not kept unless asked for (bytes).
KEEP_FINAL_LIMIT = 1 << 29


def bytes_per_chain(config: kernel.Config) -> int:
    """Estimated peak device bytes per chain of one chunk (state, sampler buffers, temporaries; for a trained
    estimator's configuration, the model, its gradient and the optimizer's two moments too)."""
    cv = config.contexts * config.vocab
    if isinstance(config, trained.Config):
        v, fan_in = config.vocab, config.dim * max(config.width, 1)
        weights = cv if config.estimator == "softmax" else (
            v * config.dim + fan_in * config.hidden + max(config.hidden, fan_in) * v if config.estimator == "embedding"
            else 0)
        return 8 * cv * 12 + 8 * 4 * weights + 64 * (config.capacity + config.sequences * config.length)
    if config.sampler == "resample":
        return 8 * cv * 4 + 96 * config.slots
    total = 8 * cv * (10 + (1 if config.pooled else 0) + 2 * config.window)
    if config.sampler == "tokens":
        total += 64 * config.capacity
    else:
        rows = max(kernel.sampler_rows(config.kind, config.contexts, config.window), 2 * config.contexts)
        width = 1 << max(1, math.ceil(math.log2(max(config.vocab, 2))))
        total += 8 * 24 * rows * width
    if config.subsample == "sort":
        total += 48 * config.contexts * config.pool_capacity
    return total


def chunk_for(config: kernel.Config, chains: int, memory: int = DEFAULT_MEMORY, platform: str = "cpu",
              processes: int = 1) -> int:
    """Chains per chunk: as many as fit in ``memory`` (up to the backend's ``MAX_CHUNK``, or
    ``MAX_CHUNK_CPU_BINOMIAL`` for the binomial sampler on a CPU) and at most a ``processes``-th of the chains
    (so that every process of a job gets a chunk), balanced over the chunks."""
    per = bytes_per_chain(config)
    if per > memory:
        raise ConfigError(f"one chain needs about {per / 2**20:.0f} MiB of device memory, more than the "
                          f"memory budget of {memory / 2**20:.0f} MiB; lower vocab, contexts or sizes")
    cap = MAX_CHUNK.get(platform, MAX_CHUNK_ACCELERATOR)
    if platform == "cpu" and getattr(config, "sampler", "") == "binomial":
        cap = MAX_CHUNK_CPU_BINOMIAL
    most = max(1, min(cap, memory // per, -(-chains // processes)))
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


def resolve_devices(devices=None) -> list:
    """The local JAX devices a run uses: ``None`` or ``"all"`` (every device of this process on the default
    backend), a count ``N`` (the first ``N`` of them), or a sequence of devices addressable by this process."""
    local = jax.local_devices()
    if devices is None or (isinstance(devices, str) and devices == "all"):
        return local
    if isinstance(devices, str):
        try:
            devices = int(devices)
        except ValueError:
            raise ConfigError(f"devices must be 'all', a number of devices or a list of JAX devices; "
                              f"got {devices!r}") from None
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        n = check_int("devices", devices, low=1, high=len(local))
        return local[:n]
    try:
        devices = list(devices)
    except TypeError:
        raise ConfigError(f"devices must be 'all', a number of devices or a list of JAX devices; "
                          f"got {devices!r}") from None
    if not devices:
        raise ConfigError("devices must name at least one JAX device")
    me = jax.process_index()
    for d in devices:
        if not isinstance(d, jax.Device):
            raise ConfigError(f"devices must be JAX devices (jax.local_devices()), got {d!r}")
        if d.process_index != me:
            raise ConfigError(f"device {d} belongs to process {d.process_index}, not to this process ({me}); "
                              "each process of a jax.distributed job runs on its own local devices")
    return devices


def _build(initial, regime, generations, decoding, smoothing, sampler, devices):
    """A count-kernel study's truth, ``(config, params)`` and devices, validated (inside ``enable_x64``)."""
    initial = as_initial(initial)
    config, params = kernel.build(initial, regime, generations=generations, decoding=decoding,
                                  smoothing=smoothing, sampler=sampler)
    return initial, config, params, resolve_devices(devices)


def simulate(key, initial, regime: Regime, *, chains: int, generations: int,
             decoding: Decoding | None = None, smoothing: float = 0.0, sampler: str = "auto",
             chunk_size: int | None = None, memory: int = DEFAULT_MEMORY, per_context: bool = False,
             keep_traces: bool = True, keep_final: bool | None = None,
             progress: Callable[[int, int], None] | None = None, devices=None, chain_ids=None) -> Result:
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
      devices: where the chunks run: ``None`` or ``"all"`` (every local device of the default backend), a
        number ``N`` (the first ``N`` local devices) or a list of local JAX devices. In a job of ``P``
        processes (``jax.distributed``, where ``P = jax.process_count()``, or those of
        :func:`jaxcollapse.engine.local.launch`; :func:`jaxcollapse.engine.local.job`) every process runs
        chunks ``k`` with ``k mod P`` equal to its index on its own devices, and every process returns the
        whole result, gathered (every process must call ``simulate`` with the same arguments). Results are
        bit-identical for any number of devices and processes.
      chain_ids: run only the chains of these global indices (``(chains,)`` distinct non-negative ints):
        row ``r`` of the result is chain ``chain_ids[r]``, the same trajectory as in a run of all chains.

    Compiled programs are kept in the persistent compilation cache of :mod:`jaxcollapse.engine.cache` (unless
    JAX already has one, or ``JAXCOLLAPSE_CACHE_DIR=off``).
    """
    t0 = time.perf_counter()
    configure_cache()
    chains = check_int("chains", chains, low=1, high=2**31 - 1)
    memory = int(check_float("memory (bytes)", memory, low=0.0, low_open=True))
    keep_traces = check_bool("keep_traces", keep_traces)
    per_context, keep_final = _check_options(per_context, keep_final, progress)
    with jax.enable_x64(True):
        initial, config, params, devices = _build(initial, regime, generations, decoding, smoothing, sampler,
                                                  devices)
        chunk = (check_int("chunk_size", chunk_size, low=1) if chunk_size is not None
                 else chunk_for(config, chains, memory, devices[0].platform, local.job()[1]))
        run = _run(key, config, params, chains=chains, generations=int(generations), chunk=chunk, devices=devices,
                   per_context=per_context, keep_traces=keep_traces, keep_final=keep_final, progress=progress,
                   ids=_chain_ids(chain_ids, chains))
    c, v = config.contexts, config.vocab
    settings = {
        "regime": regime.describe(), "kind": regime.kind, "contexts": c, "vocab": v,
        "chains": chains, "generations": generations, "smoothing": float(smoothing),
        "decoding": None if decoding is None else {"temperature": decoding.temperature, "top_k": decoding.top_k,
                                                    "top_p": decoding.top_p},
        "sampler": config.sampler, "chunk_size": run.chunk, "devices": [str(d) for d in devices],
        "processes": local.job()[1],
        "sizes": {"first": params.first.tolist(), "real": params.real.tolist(),
                  "synthetic": params.synthetic.tolist(), "train": params.train.tolist()}
        if c <= 64 else {"first_total": int(params.first.sum()), "real_total": int(params.real.sum()),
                         "synthetic_total": int(params.synthetic.sum())},
    }
    return run.result(settings, time.perf_counter() - t0, initial)


class _Finished:
    """The host arrays and summary of a run, before its settings are known."""

    def __init__(self, out, moments, chains, generations, chunk):
        self.out, self.moments, self.chains, self.generations, self.chunk = out, moments, chains, generations, chunk

    def result(self, settings: dict, wall_time: float, initial=None) -> Result:
        out = self.out
        return Result(traces=out.traces, context_traces=out.context,
                      summary={m: self.moments[m].summary() for m in METRIC_NAMES},
                      collapse_time=out.collapse_time, collapse_token=out.context_token,
                      context_collapse_time=out.context_time, final=out.final, settings=settings,
                      wall_time=wall_time, chains=self.chains, generations=self.generations, initial=initial)


def _chain_ids(chain_ids, chains: int) -> np.ndarray:
    if chain_ids is None:
        return np.arange(chains)
    ids = np.asarray(chain_ids)
    if (ids.shape != (chains,) or not np.issubdtype(ids.dtype, np.integer) or (ids.size and ids.min() < 0)
            or ids.max(initial=0) >= 2**32 or np.unique(ids).size != ids.size):
        raise ConfigError(f"chain_ids must be {chains} distinct integers in [0, 2^32), one per chain")
    return ids.astype(np.int64)


def _run(key, config, params, *, chains, generations, chunk, devices, per_context, keep_traces, keep_final,
         progress, ids=None) -> _Finished:
    """Run a built study on the driver, this process's share of the chunks, gathered over processes."""
    key = as_key(key)
    chunk = min(chunk, chains)
    c, v = config.contexts, config.vocab
    if keep_final is None:
        keep_final = chains * c * v * 8 <= KEEP_FINAL_LIMIT
    width = generations + 1
    process, processes = local.job()
    starts = list(range(0, chains, chunk))
    slots = math.ceil(len(starts) / processes) if processes > 1 else None
    out = Output(chains, chunk, width, c, v, keep_traces=keep_traces, per_context=per_context,
                 keep_final=keep_final, slots=slots)
    sink = Collector(out, chunk, processes, width, per_context)
    job = driver.Job(kernel_for(config), config, per_context=per_context)
    params = jax.device_put(jax.tree.map(jnp.asarray, params), jax.sharding.NamedSharding(
        driver.mesh_of(devices), jax.sharding.PartitionSpec()))
    driver.run(job, key, params, np.arange(chains) if ids is None else ids, chunk=chunk, generations=generations, devices=devices,
               sink=sink, keep_final=keep_final, share=(process, processes), progress=progress)
    if out.shared:
        moments = {m: Moments(width) for m in METRIC_NAMES}
        out = gather(out, starts, processes, chains, moments)
    else:
        moments = sink.summary_moments()
    return _Finished(out, moments, chains, generations, chunk)


def _check_options(per_context, keep_final, progress):
    """``per_context`` and ``keep_final`` (None or a boolean) as booleans; ``progress`` None or callable."""
    check_callable("progress", progress)
    return check_bool("per_context", per_context), None if keep_final is None else check_bool("keep_final", keep_final)


def simulate_trained(key, initial, regime, *, chains: int, generations: int, estimator: str = "softmax",
                     training=None, context_tokens=None, chunk_size: int | None = None,
                     per_context: bool = False, keep_final: bool | None = None,
                     progress: Callable[[int, int], None] | None = None, devices=None) -> Result:
    """Run ``chains`` chains of recursive training with a trained (or counting) estimator; returns a
    :class:`~jaxcollapse.Result` like :func:`simulate`.

    Args:
      key: int seed or PRNG key; chain ``i`` uses ``fold_in(key, i)``, generation ``m`` ``fold_in(., m)``.
      initial: the truth (an Initial, a table, or a Corpus).
      regime: fully_synthetic, partially_synthetic, fresh_real, accumulate, or
        :func:`jaxcollapse.autoregressive_regime`.
      estimator: ``"count"``, ``"softmax"`` or ``"embedding"``. training: a :class:`jaxcollapse.Training`.
      chunk_size: chains per compiled call and device (default: :func:`jaxcollapse.core.trained.default_chunk`,
        at most 256); results do not depend on it.
      per_context: keep per-context traces ``(chains, generations + 1, contexts)``.
      keep_final: keep the final ``(chains, C, V)`` models (default: if at most 512 MiB).
      progress: ``progress(chain_generations_done, total)`` between segments.
      devices: as for :func:`simulate`.

    ``settings["context_l1"]`` holds, per generation, the mean over chains of the L1 distance between the
    contexts' shares of the training data and the original context weights (drift of context frequencies;
    0 up to rounding for the fixed-size regimes).
    """
    t0 = time.perf_counter()
    configure_cache()
    chains = check_int("chains", chains, low=1, high=2**31 - 1)
    per_context, keep_final = _check_options(per_context, keep_final, progress)
    with jax.enable_x64(True):
        config, params = trained.build(initial, regime, generations=generations, estimator=estimator,
                                       training=training, context_tokens=context_tokens)
        training = trained.Training() if training is None else training
        chunk = (min(trained.default_chunk(config), -(-chains // local.job()[1])) if chunk_size is None
                 else check_int("chunk_size", chunk_size, low=1))
        devices = resolve_devices(devices)
        run = _run(key, config, params, chains=chains, generations=int(generations), chunk=chunk, devices=devices,
                   per_context=per_context, keep_traces=True, keep_final=keep_final, progress=progress)
    settings = {
        "regime": regime.describe(), "kind": config.kind, "contexts": config.contexts, "vocab": config.vocab,
        "chains": chains, "generations": generations, "smoothing": 0.0, "decoding": None, "sampler": config.sampler,
        "chunk_size": run.chunk, "estimator": estimator, "devices": [str(d) for d in devices],
        "training": None if estimator == "count" else training.describe(),
        "sizes": {"first_total": int(params.first.sum()), "real_total": int(params.real.sum()),
                  "synthetic_total": int(params.synthetic.sum())},
        "context_l1": run.out.extra["context_l1"].mean(axis=0).tolist(),
    }
    truth = initial.initial if hasattr(initial, "tokenizer") else as_initial(initial)   # a Corpus: its table
    return run.result(settings, time.perf_counter() - t0, truth)


class _Models:
    """Sink keeping every generation's model of each chain."""

    def __init__(self, chains: int, chunk: int, width: int, c: int, v: int):
        self.chunk = chunk
        self.models = empty((chains, width, c, v))

    def block(self, k: int, first_column: int, info: dict) -> None:
        a = info["model"]
        self.models[k * self.chunk:k * self.chunk + a.shape[0], first_column:first_column + a.shape[1]] = a

    def finish(self, k: int, records: dict) -> None:
        pass


def trajectories(key, initial, regime: Regime, *, chains: int, generations: int, decoding: Decoding | None = None,
                 smoothing: float = 0.0, sampler: str = "auto", devices=None) -> np.ndarray:
    """Every model ``(chains, generations + 1, contexts, vocab)`` float64 of the first ``chains`` chains of the
    study that :func:`simulate` runs with the same arguments (the same keys, so the same trajectories)."""
    chains = check_int("chains", chains, low=1, high=2**31 - 1)
    with jax.enable_x64(True):
        initial, config, params, devices = _build(initial, regime, generations, decoding, smoothing, sampler,
                                                  devices)
        sink = _Models(chains, chains, int(generations) + 1, config.contexts, config.vocab)
        job = driver.Job(kernel_for(config), config, models=True)
        driver.run(job, as_key(key), jax.tree.map(jnp.asarray, params), np.arange(chains), chunk=chains,
                   generations=int(generations), devices=devices[:1], sink=sink)
    return sink.models
