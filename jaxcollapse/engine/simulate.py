"""Run many independent chains of recursive training: ``vmap`` over chains, ``lax.scan`` over generations.

Chains are processed in chunks of a fixed size (one compilation per study shape); the chain with global
index ``i`` uses the key ``fold_in(key, i)`` and, in generation ``m``, ``fold_in(fold_in(key, i), m)``, so its
trajectory does not depend on the chunk size, on the device that runs it, or on the process of a
``jax.distributed`` job that runs it (each process takes every ``P``-th chunk; the results are gathered).

Device memory grows with ``chunk x contexts x vocab`` (and the token buffer of the sampler), never with the
number of generations. Host memory holds the per-chain records, ``chains x contexts x 16`` bytes, the
per-chain traces, ``chains x (generations + 1) x 8`` metrics x 8 bytes (none with ``keep_traces=False``),
and the final models if kept; metric blocks are folded into the summary segment by segment.
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

from ..core import count as kernel

from ..core import resample
from ..errors import ConfigError, check_int
from ..core.initial import as_initial
from ..core.regimes import Decoding, Regime
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
    if config.subsample == "sort":
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
    """One chunk in flight on one device: its state, and its per-generation moments (and rows) so far."""

    def __init__(self, index, start, n, keys, state, params, pending, width):
        self.index, self.start, self.n, self.keys, self.state, self.params = index, start, n, keys, state, params
        self.pending = pending
        self.moments = {m: Moments(width) for m in METRIC_NAMES}
        self.column = 0                                      # next generation column to fetch

    def collect(self, used: int, per_context: bool, out: "_Output") -> None:
        """Fetch the pending infos (``(generations, chunk)`` each, or ``(chunk,)`` for single generations) and
        hand each block of generation columns to ``out``; only this chunk's moments stay on the host."""
        for info in self.pending:
            for m in METRIC_NAMES:
                a = np.asarray(info[m])
                block = a[:, None][: self.n] if a.ndim == 1 else a[:used, : self.n].T
                cols = slice(self.column, self.column + block.shape[1])
                part = Moments(block.shape[1])
                part.update(block)
                mo = self.moments[m]
                mo.n[cols], mo.mean[cols], mo.m2[cols], mo.inf[cols], mo.nan[cols] = (
                    part.n, part.mean, part.m2, part.inf, part.nan)
                if out.traces is not None:
                    out.rows(out.traces[m], self)[:, cols] = block
                if per_context:
                    b = np.asarray(info[m + "/context"])
                    out.rows(out.context[m], self)[:, cols] = (b[: self.n, None] if b.ndim == 2
                                                              else b[:used, : self.n].transpose(1, 0, 2))
            self.column = cols.stop
        self.pending = []


class _Output:
    """Host arrays of a run. With one process, chunk ``k``'s chains are rows ``start .. start + n`` of the
    final arrays; with several, this process's ``j``-th chunk fills slot ``j`` of ``(slots, chunk, ...)``
    buffers that are gathered from every process and put in chain order afterwards."""

    def __init__(self, chains, chunk, width, c, v, *, keep_traces, per_context, keep_final, slots):
        self.shared = slots is not None
        lead = (slots, chunk) if self.shared else (chains,)
        self.traces = {m: np.empty(lead + (width,)) for m in METRIC_NAMES} if keep_traces else None
        self.context = {m: np.empty(lead + (width, c)) for m in METRIC_NAMES} if per_context else None
        self.collapse_time = np.empty(lead, np.int64)
        self.context_time = np.empty(lead + (c,), np.int64)
        self.context_token = np.empty(lead + (c,), np.int64)
        self.final = np.empty(lead + (c, v)) if keep_final else None
        self.moments = ({m: np.zeros((slots, 5, width)) for m in METRIC_NAMES} if self.shared else None)

    def rows(self, array, run):
        return array[run.index][: run.n] if self.shared else array[run.start:run.start + run.n]

    def arrays(self) -> dict:
        names = ("traces", "context", "collapse_time", "context_time", "context_token", "final", "moments")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


def _merge(total: Moments, part: Moments) -> None:
    """Add one chunk's per-generation moments to ``total`` (Chan et al.), exactly as ``Moments.update`` adds a
    block with that count, mean and sum of squared deviations; chunks are merged in chain order, so the
    summary does not depend on which device or process measured which chunk."""
    total.inf = total.inf + part.inf
    total.nan = total.nan | part.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        n = total.n + part.n
        delta = part.mean - total.mean
        frac = np.where(n > 0, part.n / np.maximum(n, 1), 0.0)
        total.mean = total.mean + delta * frac
        total.m2 = total.m2 + part.m2 + delta ** 2 * total.n * frac
    total.n = n


def _pack(mo: Moments) -> np.ndarray:
    return np.stack([mo.n, mo.mean, mo.m2, mo.inf.astype(np.float64), mo.nan.astype(np.float64)])


def _unpack(a: np.ndarray) -> Moments:
    mo = Moments(a.shape[1])
    mo.n, mo.mean, mo.m2 = a[0].copy(), a[1].copy(), a[2].copy()
    mo.inf, mo.nan = a[3].astype(np.int64), a[4] > 0
    return mo


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
      devices: where the chunks run: ``None`` or ``"all"`` (every local device of the default backend), a
        number ``N`` (the first ``N`` local devices) or a list of local JAX devices. In a ``jax.distributed``
        job (``jax.process_count() > 1``) every process runs chunks ``k`` with ``k mod P`` equal to its
        ``jax.process_index()`` on its own devices, and every process returns the whole result, gathered
        with ``process_allgather`` (every process must call ``simulate`` with the same arguments). Results
        are bit-identical for any number of devices and processes.
    """
    t0 = time.perf_counter()
    chains = check_int("chains", chains, low=1, high=2**31 - 1)
    initial = as_initial(initial)
    with jax.enable_x64(True):
        config, params = kernel.build(initial, regime, generations=generations, decoding=decoding,
                                      smoothing=smoothing, sampler=sampler)
        generations = int(generations)
        key = as_key(key)
        devices = resolve_devices(devices)
        chunk = (check_int("chunk_size", chunk_size, low=1) if chunk_size is not None
                 else chunk_for(config, chains, memory, devices[0].platform))
        chunk = min(chunk, chains)
        c, v = config.contexts, config.vocab
        if keep_final is None:
            keep_final = chains * c * v * 8 <= KEEP_FINAL_LIMIT
        width = generations + 1
        processes, process = jax.process_count(), jax.process_index()
        starts = list(range(0, chains, chunk))
        # Chunk k runs on process k mod P, whichever process that is: the keys follow the chain index.
        mine = list(enumerate(starts))[process::processes]
        slots = math.ceil(len(starts) / processes) if processes > 1 else None
        out = _Output(chains, chunk, width, c, v, keep_traces=keep_traces, per_context=per_context,
                      keep_final=keep_final, slots=slots)
        moments = {m: Moments(width) for m in METRIC_NAMES}
        seg = segment_length(generations)
        placed = [(jax.device_put(params, d), jax.device_put(key, d)) for d in devices]
        total_work, done = sum(min(chunk, chains - s) for _, s in mine) * generations, 0
        # Chunks run in waves, one per device; every device gets the same chunk shape, so a chain's
        # trajectory is the same whichever device (or how many, in however many processes) computed it.
        for wave in range(0, len(mine), len(devices)):
            runs = []
            for (index, start), (dparams, dkey) in zip(mine[wave:wave + len(devices)], placed):
                keys, state, info0, info1 = _start(dkey, jnp.uint32(start), dparams, config=config, chunk=chunk,
                                                   per_context=per_context)
                slot = index // processes if slots else index
                runs.append(_Run(slot, start, min(chunk, chains - start), keys, state, dparams, [info0, info1],
                                 width))
            for run in runs:
                run.collect(2, per_context, out)
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
                    run.collect(used, per_context, out)
                done += sum(r.n * used for r in runs)
                if progress:
                    progress(done, total_work)
            for run in runs:
                state = run.state
                out.rows(out.collapse_time, run)[:] = np.asarray(state.chain_collapse)[:run.n]
                out.rows(out.context_time, run)[:] = np.asarray(state.collapse_time)[:run.n]
                out.rows(out.context_token, run)[:] = np.asarray(state.collapse_token)[:run.n]
                if keep_final:
                    models = (_resample_models(state, run.params, config=config) if config.sampler == "resample"
                              else state.model)
                    out.rows(out.final, run)[:] = np.asarray(models)[:run.n]
                if out.shared:
                    for m in METRIC_NAMES:
                        out.moments[m][run.index] = _pack(run.moments[m])
                else:
                    for m in METRIC_NAMES:
                        _merge(moments[m], run.moments[m])
        if out.shared:
            out = _gather(out, starts, processes, chains, moments)
        traces, ctx, final = out.traces, out.context, out.final
        collapse_time, ctx_time, ctx_token = out.collapse_time, out.context_time, out.context_token
    settings = {
        "regime": regime.describe(), "kind": regime.kind, "contexts": c, "vocab": v,
        "chains": chains, "generations": generations, "smoothing": float(smoothing),
        "decoding": None if decoding is None else {"temperature": decoding.temperature, "top_k": decoding.top_k,
                                                    "top_p": decoding.top_p},
        "sampler": config.sampler, "chunk_size": chunk, "devices": [str(d) for d in devices],
        "processes": jax.process_count(),
        "sizes": {"first": params.first.tolist(), "real": params.real.tolist(),
                  "synthetic": params.synthetic.tolist(), "train": params.train.tolist()}
        if c <= 64 else {"first_total": int(params.first.sum()), "real_total": int(params.real.sum()),
                         "synthetic_total": int(params.synthetic.sum())},
    }
    return Result(traces=traces, context_traces=ctx, summary={m: moments[m].summary() for m in METRIC_NAMES},
                  collapse_time=collapse_time, collapse_token=ctx_token, context_collapse_time=ctx_time,
                  final=final, settings=settings, wall_time=time.perf_counter() - t0, chains=chains,
                  generations=generations)


def _gather(out: _Output, starts: list, processes: int, chains: int, moments: dict) -> _Output:
    """Collect every process's chunks (``process_allgather``) into chain-ordered arrays on every process, and
    merge the chunks' moments in chain order."""
    from jax.experimental import multihost_utils

    everything = multihost_utils.process_allgather(out.arrays())
    full = _Output(chains, 1, 1, 1, 1, keep_traces=False, per_context=False, keep_final=False, slots=None)
    for k in range(len(starts)):
        for m in METRIC_NAMES:
            _merge(moments[m], _unpack(everything["moments"][m][k % processes, k // processes]))

    def order(a):
        # (P, slots, chunk, ...) -> chunk k = a[k % P, k // P] -> (chains, ...)
        chunk = a.shape[2]
        k = np.arange(len(starts))
        rows = a[k % processes, k // processes]
        return rows.reshape((len(starts) * chunk,) + a.shape[3:])[:chains]
    full.traces = ({m: order(v) for m, v in everything["traces"].items()} if "traces" in everything else None)
    full.context = ({m: order(v) for m, v in everything["context"].items()} if "context" in everything else None)
    full.final = order(everything["final"]) if "final" in everything else None
    full.collapse_time = order(everything["collapse_time"])
    full.context_time = order(everything["context_time"])
    full.context_token = order(everything["context_token"])
    return full
