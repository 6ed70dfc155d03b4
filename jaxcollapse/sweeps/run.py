"""Running a sweep's plan: simulate's own chunk functions, vmapped over the points of a call group.

Padding never changes a draw, so a point's models and collapse times equal those of a plain
:func:`~jaxcollapse.simulate` of that point with the key :func:`~jaxcollapse.sweeps.spec.point_key` (its metrics
agree to the last few bits: sums over padded arrays may round differently).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .plan import Plan
from .store import write_point

# ------------------------------------------------------------------------------------------------
# the compiled calls: simulate's own chunk functions, vmapped over points


def _pad_params(params, config):
    """``params`` with its vocabulary padded to ``config.vocab`` by zero-probability tokens."""
    v = params.initial.shape[1]
    if v == config.vocab:
        return params
    return params._replace(initial=np.pad(params.initial, ((0, 0), (0, config.vocab - v))))


@functools.lru_cache(maxsize=None)
def _functions():
    import jax

    from ..engine.simulate import _resample_models, _segment, _start

    @functools.partial(jax.jit, static_argnames=("config", "chunk"))
    def start(point_keys, start_index, params, *, config, chunk):
        def one(k, p):
            return _start(k, start_index, p, config=config, chunk=chunk, per_context=False)
        return jax.vmap(one)(point_keys, params)

    @functools.partial(jax.jit, static_argnames=("config", "length"), donate_argnames=("state",))
    def segment(keys, state, params, first, last, *, config, length):
        def one(k, s, p):
            return _segment(k, s, p, first, last, config=config, length=length, per_context=False)
        return jax.vmap(one)(keys, state, params)

    @functools.partial(jax.jit, static_argnames=("config",))
    def models(state, params, *, config):
        return jax.vmap(lambda s, p: _resample_models(s, p, config=config))(state, params)

    return start, segment, models


def compiled_count() -> int:
    """Compiled shapes so far of the sweep's chunk-start function (one per bucket run in this process)."""
    return _functions()[0]._cache_size()


class _Task:
    """One call group of points on one device, accumulating per-point statistics chunk by chunk."""

    def __init__(self, bucket, members, plan, device):
        import jax
        import jax.numpy as jnp

        from ..engine.result import METRIC_NAMES, Moments
        from ..engine.simulate import as_key

        spec = plan.spec
        self.members = members
        real = len(members)
        full = members + [members[-1]] * (bucket.group - real)
        self.real = real
        stacked = [_pad_params(plan.configs[i][1], bucket.config) for i in full]
        params = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *stacked)
        base = as_key(spec.seed)
        keys = jax.vmap(lambda f: jax.random.fold_in(base, f))(jnp.asarray([plan.points[i].fold for i in full],
                                                                             jnp.uint32))
        self.params = jax.device_put(params, device)
        self.keys = jax.device_put(keys, device)
        g1 = spec.generations + 1
        self.moments = [{m: Moments(g1) for m in METRIC_NAMES} for _ in range(real)]
        self.final_values = [{m: np.empty(spec.chains) for m in METRIC_NAMES} for _ in range(real)]
        c = bucket.config.contexts
        self.collapse = [np.empty(spec.chains, np.int64) for _ in range(real)]
        self.ctx_time = [np.empty((spec.chains, c), np.int64) for _ in range(real)]
        self.ctx_token = [np.empty((spec.chains, c), np.int64) for _ in range(real)]
        self.final = ([np.empty((spec.chains, c, plan.configs[i][0].vocab)) for i in members]
                      if spec.keep_final else None)
        self.blocks = None
        self.state = None
        self.chain_keys = None


def run_plan(plan: Plan, out: str | None = None, *, host: int = 0, hosts: int = 1, devices=None,
             done: set | None = None, progress: Callable | None = None) -> dict:
    """Run this host's share of the plan's call groups that are not already done.

    Returns ``{point index: record}`` (records as :func:`load_point` returns them) for the points run here;
    with ``out`` each is also written to ``out/points/<id>.npz`` as soon as its group finishes.
    """
    import jax
    import jax.numpy as jnp

    from ..engine.result import METRIC_NAMES
    from ..engine.simulate import segment_length

    spec = plan.spec
    start_fn, segment_fn, models_fn = _functions()
    devices = list(devices) if devices is not None else jax.local_devices()
    done = done or set()
    mine = [(b, t) for ti, b, t in plan.tasks() if ti % hosts == host and not all(i in done for i in t)]
    g = spec.generations
    seg = segment_length(g)
    records = {}
    total = sum(len(t) for _, t in mine) * spec.chains * g
    # ETA by padded work (a bucket of larger sizes costs more per chain-generation).
    work_total = sum(len(t) * b.work for b, t in mine) * spec.chains * g
    finished = work_done = 0
    with jax.enable_x64(True):
        # Consecutive groups of the same bucket run side by side, one per device.
        waves = []
        for b, t in mine:
            if waves and waves[-1][0] is b and len(waves[-1][1]) < len(devices):
                waves[-1][1].append(t)
            else:
                waves.append((b, [t]))
        for bucket, wave in waves:
            cfg = bucket.config
            tasks = [_Task(bucket, t, plan, d) for t, d in zip(wave, devices)]
            for start in range(0, spec.chains, bucket.chunk):
                n = min(bucket.chunk, spec.chains - start)
                for task in tasks:
                    task.chain_keys, task.state, info0, info1 = start_fn(
                        task.keys, jnp.uint32(start), task.params, config=cfg, chunk=bucket.chunk)
                    task.pending = [info0, info1]
                    task.blocks = {m: [] for m in METRIC_NAMES}
                for task in tasks:
                    _collect(task, 2, n)
                for first in range(2, g + 1, seg):
                    used = min(seg, g + 1 - first)
                    for task in tasks:
                        task.state, info = segment_fn(task.chain_keys, task.state, task.params, jnp.int32(first),
                                                      jnp.int32(g), config=cfg, length=seg)
                        task.pending = [info]
                    for task in tasks:
                        _collect(task, used, n)
                    finished += sum(t.real for t in tasks) * n * used
                    work_done += sum(t.real for t in tasks) * n * used * bucket.work
                    if progress:
                        progress(finished, total, len(records), work_done / max(work_total, 1))
                for task in tasks:
                    _finish_chunk(task, plan, bucket, start, n, models_fn)
            for task in tasks:
                for j, i in enumerate(task.members):
                    rec = _record(task, j, plan, i)
                    records[i] = rec
                    if out is not None:
                        write_point(out, plan.points[i], rec, spec)
            if progress:
                progress(finished, total, len(records), work_done / max(work_total, 1))
    return records


def _collect(task, used: int, n: int) -> None:
    from ..engine.result import METRIC_NAMES

    for info in task.pending:
        for m in METRIC_NAMES:
            a = np.asarray(info[m])           # (group, chunk) or (group, length, chunk)
            if a.ndim == 2:
                task.blocks[m].append(a[: task.real, :n, None])
            else:
                task.blocks[m].append(a[: task.real, :used, :n].transpose(0, 2, 1))
    task.pending = []


def _finish_chunk(task, plan, bucket, start, n, models_fn) -> None:
    from ..engine.result import METRIC_NAMES

    for m in METRIC_NAMES:
        arr = np.concatenate(task.blocks[m], axis=2)      # (real, n, G+1)
        for j in range(task.real):
            task.moments[j][m].update(arr[j])
            task.final_values[j][m][start:start + n] = arr[j, :, -1]
    st = task.state
    ct = np.asarray(st.chain_collapse)
    tt = np.asarray(st.collapse_time)
    tk = np.asarray(st.collapse_token)
    for j in range(task.real):
        task.collapse[j][start:start + n] = ct[j, :n]
        task.ctx_time[j][start:start + n] = tt[j, :n]
        task.ctx_token[j][start:start + n] = tk[j, :n]
    if task.final is not None:
        cfg = bucket.config
        models = np.asarray(models_fn(st, task.params, config=cfg) if cfg.sampler == "resample" else st.model)
        for j, i in enumerate(task.members):
            v = plan.configs[i][0].vocab
            task.final[j][start:start + n] = models[j, :n, :, :v]


def _record(task, j, plan, i) -> dict:
    from ..engine.result import METRIC_NAMES

    spec = plan.spec
    summ = [task.moments[j][m].summary() for m in METRIC_NAMES]
    t = task.collapse[j]
    counts = np.bincount(t[t >= 0], minlength=spec.generations + 1)[: spec.generations + 1]
    rec = {
        "settings": plan.points[i].settings, "id": plan.points[i].id, "metrics": list(METRIC_NAMES),
        "collapse_time": t, "collapse_token": task.ctx_token[j], "context_collapse_time": task.ctx_time[j],
        "collapsed": np.cumsum(counts) / spec.chains,
        "mean": np.stack([s.mean for s in summ]), "sd": np.stack([s.sd for s in summ]),
        "ci_low": np.stack([s.ci_low for s in summ]), "ci_high": np.stack([s.ci_high for s in summ]),
        "n": np.stack([s.n for s in summ]), "infinite": np.stack([s.infinite for s in summ]),
    }
    for m in METRIC_NAMES:
        rec[f"final_{m}"] = task.final_values[j][m]
    if task.final is not None:
        rec["final"] = task.final[j]
    return rec
