"""The one driver: chains in chunks under ``vmap``, a loop over generations, sharded over devices.

Every path that runs chains over generations runs here: :func:`jaxcollapse.simulate`,
:func:`jaxcollapse.simulate_trained`, the sweep (points x chains), the trajectory recorder and the studies.
A :class:`Job` names the kernel (:class:`jaxcollapse.core.interface.Kernel`), its static config and what to
record; :func:`run` takes the job over the chains with global indices ``ids``:

- chain ``i`` uses the key ``fold_in(key, i)`` and, in generation ``m``, ``fold_in(fold_in(key, i), m)``, so a
  chain's trajectory does not depend on the chunk size, the devices, the processes or which chains run beside
  it (with ``points``, ``key`` holds one key per point);
- chains run in chunks of a fixed size (one compilation per study shape); the chunks of one call are laid
  along a chain axis sharded over the local devices (``shard_map`` over a one-axis ``Mesh``), one chunk per
  device, so each device runs the one-device program on its chunk;
- generations run in segments of one compiled loop (a ``lax.fori_loop`` whose trip count stops at the run's
  last generation, so no generation is guarded by a ``lax.cond``); the next segment is dispatched before the
  previous one's metrics are fetched (one transfer of the whole info tree) and handed to the caller's sink;
  generation 1 runs in the first program, or in the first segment where the kernel's step also serves it
  (``Kernel.first_in_step``: then the sampler is compiled once, not twice);
- a kernel whose collapsed chains stay fixed (``Kernel.freezes``) skips a chunk's generations once every chain
  of it has collapsed: a ``lax.cond`` on one predicate per device and block of :data:`FREEZE_BLOCK` generations,
  also under the points ``vmap`` of a sweep.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from ..core import rng
from ..core.interface import Kernel
from ..core.kernels import BUILT_IN
from . import programs

AXIS = "chains"


class Job(NamedTuple):
    """What one compiled program runs (hashable: a ``jit`` static argument).

    Attributes:
      kernel: the :class:`Kernel`.  config: its static configuration.
      per_context: also record the ``"<metric>/context"`` ``(C,)`` values.
      points: ``params`` and the key carry a leading axis of points (a sweep): points x chains.
      models: also record each generation's model ``(C, V)`` under ``"model"`` (trajectories).
    """

    kernel: Kernel
    config: Any
    per_context: bool = False
    points: bool = False
    models: bool = False


#: Generations between two checks whether every chain of a chunk is frozen (:func:`segment`): a ``lax.cond``
#: per generation cost about 0.3 ms on a 2-core CPU whatever the chunk (W1: 1.3 ms per generation against 1.0).
FREEZE_BLOCK = 8


def segments(job: "Job", generations: int, count: int = 20) -> tuple[int, int]:
    """The first generation the compiled segments run (1 where the kernel's step also serves generation 1, else
    2) and the generations per segment (the caller hears of progress between segments): about a ``count``-th
    of the generations they run, rounded up to a multiple of :data:`FREEZE_BLOCK` when larger."""
    first = 1 if job.kernel.first_in_step(job.config) else 2
    span = max(1, generations - first + 1)
    length = max(1, math.ceil(span / min(span, count)))
    return first, (length if length <= FREEZE_BLOCK else -(-length // FREEZE_BLOCK) * FREEZE_BLOCK)


def _block(length: int) -> int:
    """The largest divisor of ``length`` up to :data:`FREEZE_BLOCK`."""
    return max(d for d in range(1, min(length, FREEZE_BLOCK) + 1) if length % d == 0)


# ------------------------------------------------------------------------------------------------
# the compiled programs: one chain, vmapped over chains (and points), sharded over devices


def _vmapped(job: Job, fn, chain_args: int):
    """``fn(*chain_args, params)`` vmapped over chains (leading axis of the first ``chain_args`` arguments) and,
    for a sweep, over points (leading axis of every argument)."""
    over_chains = jax.vmap(fn, in_axes=(0,) * chain_args + (None,))
    return jax.vmap(over_chains) if job.points else over_chains


def _spec(job: Job, lead: int = 0) -> PartitionSpec:
    """Partition of an array whose chain axis follows ``lead`` leading axes (and the points axis)."""
    return PartitionSpec(*([None] * (lead + job.points)), AXIS)


def _traced_once(fn, *args):
    """``fn`` traced once at the shapes of ``args``, as a function that binds the traced program again (without
    running ``fn``'s Python), and the shapes of its output (``jax.ShapeDtypeStruct`` leaves). A shape query and
    a loop body each trace their function anew: the sampler's Python would otherwise run twice per segment."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    flat = jax.extend.core.jaxpr_as_fun(closed)
    tree = jax.tree.structure(shapes)
    return (lambda *a: jax.tree.unflatten(tree, flat(*jax.tree.leaves(a)))), shapes


def _record(job: Job, state, params) -> dict:
    info = job.kernel.measure(state, params, job.config, job.per_context)
    if job.models:
        info["model"] = job.kernel.model(state, params, job.config)
    return info


def _start_chain(job: Job, key, params):
    k, cfg = job.kernel, job.config
    s0 = k.init(key, params, cfg)
    info0 = k.truth(params, cfg, job.per_context)
    if job.models:
        info0["model"] = jnp.asarray(params.initial, jnp.float64)
    if k.first_in_step(cfg):
        return s0, info0, None
    s1, extra = k.first(rng.fold_in(key, 1), s0, params, cfg)
    info0.update({name: jnp.zeros_like(v) for name, v in extra.items()})
    return s1, info0, {**_record(job, s1, params), **extra}


@functools.partial(jax.jit, static_argnames=("job", "mesh"))
def start(key, ids, params, *, job: Job, mesh: Mesh):
    """Generations 0 and 1 of the chains ``ids`` ``(n,)`` uint32 (n a multiple of the mesh size); generation 0
    only where the kernel's step serves generation 1 (:func:`segments`).

    Returns ``(keys, state, info0, info1)``: the chain keys' data (``jax.random.key_data``, uint32), the state
    after the last generation run, and the records of generations 0 and 1 (``info1`` None when generation 1 was
    not run), each with the chain axis first (after the points axis)."""

    def local(key, ids, params):
        def one(key, params):
            keys = jax.vmap(rng.fold_in, (None, 0))(key, ids)
            state, info0, info1 = jax.vmap(functools.partial(_start_chain, job), in_axes=(0, None))(keys, params)
            # strongly typed, as segment returns it: its next call then finds the types of its first call
            state = jax.tree.map(lambda x: lax.convert_element_type(x, x.dtype), state)
            return jax.random.key_data(keys), state, info0, info1
        return jax.vmap(one)(key, params) if job.points else one(key, params)

    return jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(AXIS), PartitionSpec()),
                         out_specs=_spec(job), check_vma=False)(key, ids, params)


@functools.partial(jax.jit, static_argnames=("job", "mesh", "length", "impl"), donate_argnames=("state",))
def segment(keys, state, params, first_generation, last_generation, *, job: Job, mesh: Mesh, length: int, impl):
    """Generations ``first_generation .. first_generation + length - 1``, those up to ``last_generation`` (the
    later ones are not run, and their rows of the records are not generations of the run), of the chains whose
    keys' data :func:`start` returned, keys of the PRNG implementation ``impl`` (``jax.random.key_impl``).
    Returns the state and the records, each ``(length, [points,] chains, ...)``.
    Keys cross the program's boundary as data: JAX 0.8 cannot lower an exported program whose arguments are
    sharded key arrays (:mod:`jaxcollapse.engine.programs`)."""
    k, cfg = job.kernel, job.config

    def local(keys, state, params, first_generation, last_generation):
        keys = jax.random.wrap_key_data(keys, impl=impl)

        def advance(s, m):
            return _vmapped(job, lambda key, c, p: k.step(rng.fold_in(key, m), c, p, cfg), 2)(keys, s, params)

        def measure(s):
            return _vmapped(job, lambda c, p: _record(job, c, p), 1)(s, params)

        def compute(s, m):
            s, extra = advance(s, m)
            return s, {**measure(s), **extra}

        compute, (_, info_shape) = _traced_once(compute, state, first_generation)
        # The loops stop at the run's last generation (their trip counts are traced): a guard per generation
        # (a lax.cond) would cost its copies of the state (W1: 1.13 against 1.01 ms per generation).
        count = jnp.clip(last_generation - first_generation + 1, 0, length)

        def zeros(n):
            return jax.tree.map(lambda x: jnp.zeros((n,) + x.shape, x.dtype), info_shape)

        def put(records, i, info):
            return jax.tree.map(lambda a, x: lax.dynamic_update_index_in_dim(a, x, i, 0), records, info)

        def generations(first, n, s, records):
            """The state and ``records`` after the ``n`` generations from ``first`` (written from row 0)."""
            def one(i, carry):
                s, info = compute(carry[0], first + i)
                return s, put(carry[1], i, info)
            return lax.fori_loop(0, n, one, (s, records))

        if not k.freezes(cfg):
            return generations(first_generation, count, state, zeros(length))

        block = _block(length)

        def body(b, carry):
            # Once every chain here is a Dirac mass in every context, each generation returns the same model and
            # metrics: only the generation counter moves. Checked once per block of generations; the segment's
            # first block always runs (a skipped block repeats the last record before it).
            s, records = carry
            first = first_generation + b * block
            n = jnp.minimum(block, count - b * block)

            def skip(s, records):
                last = jax.tree.map(lambda a: lax.dynamic_index_in_dim(a, b * block - 1, keepdims=False), records)
                return s._replace(generation=s.generation + n), jax.tree.map(
                    lambda x: jnp.broadcast_to(x, (block,) + x.shape), last)

            def run(s, records):
                if block == 1:      # a loop of one step still costs its copies (W2: 25 ms per generation against 20)
                    s, info = compute(s, first)
                    return s, jax.tree.map(lambda x: x[None], info)
                return generations(first, n, s, zeros(block))

            frozen = (b > 0) & jnp.all(s.collapse_time >= 0)
            s, rows = lax.cond(frozen, skip, run, s, records)
            return s, jax.tree.map(lambda a, r: lax.dynamic_update_slice_in_dim(a, r, b * block, 0), records, rows)

        return lax.fori_loop(0, -(-count // block), body, (state, zeros(length)))

    chains = _spec(job)
    return jax.shard_map(local, mesh=mesh, in_specs=(chains, chains, PartitionSpec(), PartitionSpec(), PartitionSpec()),
                         out_specs=(chains, _spec(job, 1)), check_vma=False)(
        keys, state, params, first_generation, last_generation)


@functools.partial(jax.jit, static_argnames=("job",))
def models(state, params, *, job: Job):
    """The chains' models ``([points,] chains, C, V)`` float64."""
    return _vmapped(job, lambda s, p: job.kernel.model(s, p, job.config), 1)(state, params)


# ------------------------------------------------------------------------------------------------
# the host loop


class Sink(Protocol):
    """Receives a run's records chunk by chunk (arrays with the chain axis first, after the points axis)."""

    def block(self, chunk: int, first_column: int, info: dict) -> None:
        """Records of generations ``first_column ..``: each ``([points,] n, columns[, C])``."""

    def finish(self, chunk: int, records: dict) -> None:
        """The chunk's final ``chain_collapse`` ``([points,] n)``, ``collapse_time`` and ``collapse_token``
        ``([points,] n, C)``, and ``final`` models ``([points,] n, C, V)`` when asked for."""


def mesh_of(devices) -> Mesh:
    """A one-axis mesh (``"chains"``) over ``devices``."""
    return Mesh(np.asarray(list(devices)), (AXIS,))


def _to_chain_major(a: np.ndarray, job: Job, lead: int) -> np.ndarray:
    """Move the ``lead`` generation axes after the chain axis: ``(G, [P,] N, ...) -> ([P,] N, G, ...)``."""
    chain = lead + job.points
    return np.moveaxis(a, list(range(lead)), list(range(chain, chain + lead))) if lead else a[(slice(None),) * (chain + 1) + (None,)]


def run(job: Job, key, params, ids: np.ndarray, *, chunk: int, generations: int, devices, sink: Sink,
        keep_final: bool = False, share: tuple[int, int] = (0, 1),
        progress: Callable[[int, int], None] | None = None) -> list[int]:
    """Run ``generations`` generations of the chains ``ids`` (global indices, ``(N,)``) in chunks of ``chunk``.

    Chunk ``k`` holds ``ids[k * chunk:(k + 1) * chunk]``; this process runs the chunks ``k`` with
    ``k % share[1] == share[0]``, ``len(devices)`` at a time (one per device). Records go to ``sink`` as they
    arrive; ``progress(done, total)`` counts chain-generations (times points). Call it inside
    ``jax.enable_x64(True)``. Returns the indices of the chunks run here."""
    ids = np.asarray(ids, np.int64)
    starts = list(range(0, len(ids), chunk))
    mine = list(range(len(starts)))[share[0]::share[1]]
    d = len(devices)
    mesh = mesh_of(devices)
    # the program store keeps the package's own kernels only: its keys hold the package's source
    common = dict(platform=devices[0].platform, store=job.kernel in BUILT_IN)
    impl = jax.random.key_impl(key)
    g1, seg = segments(job, generations)
    width = 1 if not job.points else int(np.shape(jax.tree.leaves(params)[0])[0])
    total, done = sum(min(chunk, len(ids) - starts[k]) for k in mine) * generations * width, 0
    for g0 in range(0, len(mine), d):
        group = mine[g0:g0 + d]
        rows = []
        for k in group + [group[-1]] * (d - len(group)):
            part = ids[starts[k]:starts[k] + chunk]
            rows.append(np.concatenate([part, np.full(chunk - len(part), part[-1])]))
        sizes = [min(chunk, len(ids) - starts[k]) for k in group]
        keys, state, info0, info1 = programs.call(start, (key, jnp.asarray(np.concatenate(rows), jnp.uint32), params),
                                                  dict(job=job, mesh=mesh), **common)

        def hand(info, first_column, used):
            info = jax.device_get(info)
            for j, (k, n) in enumerate(zip(group, sizes)):
                piece = {name: _take(_to_chain_major(a if used is None else a[:used], job, used is not None), job,
                                     j * chunk, n) for name, a in info.items()}
                sink.block(k, first_column, piece)

        pending = [(info0, 0, None)] + ([(info1, 1, None)] if info1 is not None else [])
        used = g1 - 1                # generation 1 already ran in the first program when g1 == 2
        for first in range(g1, generations + 1, seg):
            state, info = programs.call(segment, (keys, state, params, jnp.int32(first), jnp.int32(generations)),
                                        dict(job=job, mesh=mesh, length=seg, impl=impl), donate=(1,), **common)
            for p in pending:
                hand(*p)
            done += sum(sizes) * width * used
            if progress:
                progress(done, total)
            used = min(seg, generations + 1 - first)
            pending = [(info, first, used)]
        for p in pending:
            hand(*p)
        done += sum(sizes) * width * used
        if progress:
            progress(done, total)
        records = {"chain_collapse": state.chain_collapse, "collapse_time": state.collapse_time,
                   "collapse_token": state.collapse_token}
        if keep_final:
            records["final"] = models(state, params, job=job)
        records = jax.device_get(records)
        for j, (k, n) in enumerate(zip(group, sizes)):
            sink.finish(k, {name: _take(a, job, j * chunk, n) for name, a in records.items()})
    return mine


def _take(a: np.ndarray, job: Job, start: int, n: int) -> np.ndarray:
    return a[:, start:start + n] if job.points else a[start:start + n]
