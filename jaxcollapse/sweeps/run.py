"""Running a sweep's plan on the driver: each call group is one compiled, points x chains program.

The points of a call group are stacked (their ``Params`` padded to the bucket's shapes, the group padded to
its size by repeating its last point) and run by :func:`jaxcollapse.engine.driver.run` with a points axis:
``vmap`` over points around ``vmap`` over chains, the chain axis sharded over the local devices. Point
``p``'s chain ``i`` uses ``fold_in(point_key(seed, p), i)``, as ``simulate(point_key(seed, p), ...)`` does
(``simulate_trained`` for a point of a trained estimator), so its models and collapse times equal that call's
whatever the bucket, the group or the devices. A bucket of trained points is one configuration, not padded.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def _pad_params(params, config):
    """``params`` with its vocabulary padded to ``config.vocab`` by zero-probability tokens."""
    v = params.initial.shape[1]
    if v == config.vocab:
        return params
    return params._replace(initial=np.pad(params.initial, ((0, 0), (0, config.vocab - v))))


def compiled_count() -> int:
    """Compiled shapes so far of the driver's chunk-start program (one per study or bucket shape run here)."""
    from ..engine import driver, programs

    return driver.start._cache_size() + programs.count(driver.start)


class _Task:
    """One call group of points: the stacked inputs, and the driver's sink accumulating per-point records."""

    def __init__(self, bucket, members, plan):
        import jax
        import jax.numpy as jnp

        from ..engine.result import METRIC_NAMES, Moments
        from ..engine.simulate import as_key

        spec = plan.spec
        self.spec, self.bucket = spec, bucket
        self.members = members
        real = len(members)
        full = members + [members[-1]] * (bucket.group - real)
        self.real = real
        stacked = [_pad_params(plan.configs[i][1], bucket.config) for i in full]
        self.params = jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *stacked)
        base = as_key(spec.seed)
        self.keys = jax.vmap(lambda f: jax.random.fold_in(base, f))(
            jnp.asarray([plan.points[i].fold for i in full], jnp.uint32))
        g1 = spec.generations + 1
        self.metrics = METRIC_NAMES
        self.moments = [{m: Moments(g1) for m in METRIC_NAMES} for _ in range(real)]
        self.final_values = [{m: np.empty(spec.chains) for m in METRIC_NAMES} for _ in range(real)]
        c = bucket.config.contexts
        self.collapse = [np.empty(spec.chains, np.int64) for _ in range(real)]
        self.ctx_time = [np.empty((spec.chains, c), np.int64) for _ in range(real)]
        self.ctx_token = [np.empty((spec.chains, c), np.int64) for _ in range(real)]
        self.vocab = [plan.configs[i][0].vocab for i in members]
        self.final = ([np.empty((spec.chains, c, v)) for v in self.vocab] if spec.keep_final else None)
        self.traces = ([np.empty((len(METRIC_NAMES), spec.chains, g1)) for _ in range(real)]
                       if spec.keep_traces else None)
        self.blocks = {}

    def block(self, k: int, first_column: int, info: dict) -> None:
        blocks = self.blocks.setdefault(k, {m: [] for m in self.metrics})
        for m in self.metrics:
            blocks[m].append(info[m][: self.real])            # (real, n, columns)

    def finish(self, k: int, records: dict) -> None:
        start = k * self.bucket.chunk
        blocks = self.blocks.pop(k)
        for m in self.metrics:
            arr = np.concatenate(blocks[m], axis=2)           # (real, n, G+1)
            n = arr.shape[1]
            for j in range(self.real):
                self.moments[j][m].update(arr[j])
                self.final_values[j][m][start:start + n] = arr[j, :, -1]
                if self.traces is not None:
                    self.traces[j][self.metrics.index(m), start:start + n] = arr[j]
        for j in range(self.real):
            n = records["chain_collapse"].shape[1]
            self.collapse[j][start:start + n] = records["chain_collapse"][j]
            self.ctx_time[j][start:start + n] = records["collapse_time"][j]
            self.ctx_token[j][start:start + n] = records["collapse_token"][j]
            if self.final is not None:
                self.final[j][start:start + n] = records["final"][j, :, :, : self.vocab[j]]

    def record(self, j: int, point) -> dict:
        """Point ``j`` of the group as :func:`jaxcollapse.sweeps.sweep.load_point` returns it."""
        spec = self.spec
        summ = [self.moments[j][m].summary() for m in self.metrics]
        t = self.collapse[j]
        counts = np.bincount(t[t >= 0], minlength=spec.generations + 1)[: spec.generations + 1]
        rec = {
            "settings": point.settings, "id": point.id, "metrics": list(self.metrics),
            "collapse_time": t, "collapse_token": self.ctx_token[j], "context_collapse_time": self.ctx_time[j],
            "collapsed": np.cumsum(counts) / spec.chains,
            "mean": np.stack([s.mean for s in summ]), "sd": np.stack([s.sd for s in summ]),
            "ci_low": np.stack([s.ci_low for s in summ]), "ci_high": np.stack([s.ci_high for s in summ]),
            "n": np.stack([s.n for s in summ]), "infinite": np.stack([s.infinite for s in summ]),
        }
        for m in self.metrics:
            rec[f"final_{m}"] = self.final_values[j][m]
        if self.final is not None:
            rec["final"] = self.final[j]
        if self.traces is not None:
            rec["traces"] = self.traces[j]
        return rec


def _job(config):
    from ..core.kernels import kernel_for
    from ..engine.driver import Job

    return Job(kernel_for(config), config, points=True)


def run_group(plan, bucket, members, *, devices=None, tick: Callable | None = None) -> dict:
    """Run one call group (``members``: point indices of ``bucket``) and return ``{point index: record}``.

    Pure: writes nothing, so any process holding the plan (a Ray worker, an array task) can run any group and
    hand its records to whoever writes them. ``tick(chain_generations_done)`` is called between segments,
    counting the group's real points only.
    """
    import jax

    from ..engine import driver

    spec = plan.spec
    devices = list(devices) if devices is not None else jax.local_devices()
    real, group = len(members), bucket.group

    def progress(d, _total):
        if tick:
            tick(d // group * real)

    with jax.enable_x64(True):
        task = _Task(bucket, members, plan)
        driver.run(_job(bucket.config), task.keys, task.params, np.arange(spec.chains), chunk=bucket.chunk,
                   generations=spec.generations, devices=devices, sink=task, keep_final=bool(spec.keep_final),
                   progress=progress)
    return {i: task.record(j, plan.points[i]) for j, i in enumerate(task.members)}


def pending_groups(plan, *, host: int = 0, hosts: int = 1, done: set | None = None) -> list:
    """``[(bucket, members)]``: this share's call groups with a point not in ``done``."""
    done = done or set()
    return [(b, t) for ti, b, t in plan.tasks() if ti % hosts == host and not all(i in done for i in t)]


def run_plan(plan, out: str | None = None, *, host: int = 0, hosts: int = 1, devices=None,
             done: set | None = None, progress: Callable | None = None) -> dict:
    """Run this host's share of the plan's call groups that are not already done.

    Returns ``{point index: record}`` (records as :func:`load_point` returns them) for the points run here;
    with ``out`` each is also handed to :func:`jaxcollapse.sweeps.store.write_point` as its group finishes.
    ``progress(chain_generations_done, total, points_done, work_fraction)`` is called between segments.
    """
    from .store import flush, write_point

    spec = plan.spec
    mine = pending_groups(plan, host=host, hosts=hosts, done=done)
    g = spec.generations
    records = {}
    total = sum(len(t) for _, t in mine) * spec.chains * g
    # ETA by padded work (a bucket of larger sizes costs more per chain-generation).
    work_total = sum(len(t) * b.work for b, t in mine) * spec.chains * g
    finished = work_done = 0
    for bucket, members in mine:
        def tick(chain_gens, work=bucket.work):
            if progress:
                progress(finished + chain_gens, total, len(records),
                         (work_done + chain_gens * work) / max(work_total, 1))

        ran = run_group(plan, bucket, members, devices=devices, tick=tick)
        finished += len(members) * spec.chains * g
        work_done += len(members) * spec.chains * g * bucket.work
        for i, rec in ran.items():
            records[i] = rec
            if out is not None:
                write_point(out, plan.points[i], rec, spec)
        if out is not None:
            flush(out)
        if progress:
            progress(finished, total, len(records), work_done / max(work_total, 1))
    return records


def time_call(plan, bucket, devices=None) -> tuple[float, float, int]:
    """Seconds of a bucket's first call group's start plus one segment (compilation included), then of one
    more segment, and the segment length: the calibration behind a sweep's estimate."""
    import jax
    import jax.numpy as jnp

    from ..engine import driver

    spec = plan.spec
    devices = (list(devices) if devices is not None else jax.local_devices())[:1]
    mesh = driver.mesh_of(devices)
    job = _job(bucket.config)
    g_first, seg = driver.segments(job, spec.generations)
    with jax.enable_x64(True):
        task = _Task(bucket, bucket.tasks[0], plan)
        t0 = time.perf_counter()
        ids = jnp.arange(bucket.chunk, dtype=jnp.uint32)
        impl = jax.random.key_impl(task.keys)
        keys, state, *_ = driver.start(task.keys, ids, task.params, job=job, mesh=mesh)
        state, info = driver.segment(keys, state, task.params, jnp.int32(g_first), jnp.int32(spec.generations), job=job,
                                     mesh=mesh, length=seg, impl=impl)
        jax.block_until_ready(info)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        state, info = driver.segment(keys, state, task.params, jnp.int32(g_first), jnp.int32(spec.generations), job=job,
                                     mesh=mesh, length=seg, impl=impl)
        jax.block_until_ready(info)
        run = max(time.perf_counter() - t0, 1e-6)
    return first, run, seg
