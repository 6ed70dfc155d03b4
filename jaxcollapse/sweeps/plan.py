"""The plan of a sweep: its points put in buckets of one static configuration each, every bucket split into call
groups of points vmapped together (no JAX computation).

Points whose static :class:`~jaxcollapse.Config` agree up to sizes are put in one *bucket*: their
:class:`~jaxcollapse.Params` are stacked and the engine is ``vmap``-ed over them (chains inside), so a sweep over
sample sizes compiles once per bucket, not once per value. Sizes that fix shapes (token buffers, slot lists,
pools, the vocabulary) are padded up to the bucket's capacity while the true sizes stay traced.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConfigError
from .spec import Spec, _brief, resolve

#: Largest number of chains (points x chains per point) in one compiled call, by platform (on a CPU, as
#: simulate.MAX_CHUNK: larger batches fall out of cache).
MAX_BATCH = {"cpu": 1024}
MAX_BATCH_ACCELERATOR = 1 << 17
#: Cost of one more compilation, in work units (``SIZE_WEIGHT x size + contexts x vocab`` per chain-generation):
#: on a 2-core CPU a compilation took about as long as 2e9 such units of simulation.
COMPILE_UNITS = 2e9
#: Weight of a padded sample size against a table cell in the work of one chain-generation (the resample
#: kernel's metrics take about a dozen passes over the samples, one over the table).
SIZE_WEIGHT = 12
#: Slot lists up to this size use the 32-bit parent picker of the resample kernel: never pad across it.
PICK_BITS_LIMIT = 1 << 16

# ------------------------------------------------------------------------------------------------
# the plan: buckets of points with one static configuration each


@dataclasses.dataclass
class Bucket:
    """Points run by one compiled function.

    Attributes:
      config: the padded static configuration.  points: indices into the sweep's points.
      chunk: chains per call and point.  group: points per call.  tasks: lists of point indices, one per call
        group (the last padded by repeating its last point).  bytes_per_call: estimated device bytes of one call.
      work: padded size units per chain-generation (for the time estimate).
    """

    config: object
    points: list
    chunk: int
    group: int
    tasks: list
    bytes_per_call: int
    work: float


@dataclasses.dataclass
class Plan:
    spec: Spec
    points: list
    configs: list          # the unpadded (config, params) of each point
    buckets: list
    platform: str

    @property
    def compilations(self) -> int:
        return len(self.buckets)

    def tasks(self):
        """Every call group in plan order: ``(task index, bucket, point indices)``."""
        t = 0
        for b in self.buckets:
            for task in b.tasks:
                yield t, b, task
                t += 1

    def share(self, shard: int, shards: int) -> Plan:
        """The plan of shard ``shard`` of ``shards``: a contiguous run of the call groups in plan order, cut where
        the padded work (points x the bucket's work per chain-generation) crosses ``shard / shards`` of the total,
        so a shard compiles few buckets and the shards take about equal times. The points and their
        configurations stay those of the whole sweep (indices are global); only the buckets' groups are cut."""
        if shards == 1:
            return self
        total = sum(len(t) * b.work for b in self.buckets for t in b.tasks)
        buckets, done = [], 0.0
        for b in self.buckets:
            mine = []
            for t in b.tasks:
                w = len(t) * b.work
                if min(int(shards * (done + w / 2) / total), shards - 1) == shard:
                    mine.append(t)
                done += w
            if mine:
                buckets.append(dataclasses.replace(b, points=sorted(i for t in mine for i in t), tasks=mine))
        return dataclasses.replace(self, buckets=buckets)

    @property
    def share_points(self) -> list:
        """Indices of the points this plan's call groups run, in run order."""
        return [i for b in self.buckets for t in b.tasks for i in t]


def _size_of(config) -> int:
    if _trained(config):
        return max(config.capacity, 1)
    return max(config.slots, config.draws, config.capacity, config.pool_capacity, 1)


def _static_key(config):
    """What must agree for two points to share a compilation (sizes padded, vocab within a power of two; a
    trained estimator's configuration whole, nothing padded)."""
    if _trained(config):
        return (config, "trained")
    vclass = config.vocab if config.smoothing else 1 << max(0, math.ceil(math.log2(max(config.vocab, 1))))
    pool = config.pool_capacity if config.contexts > 1 else 0
    side = config.slots <= PICK_BITS_LIMIT if config.sampler == "resample" else None
    return (config._replace(capacity=0, slots=0, draws=0, vocab=vclass, pool_capacity=pool), side)


def _trained(config) -> bool:
    from ..core import trained

    return isinstance(config, trained.Config)


def _split(sizes: list, most: int, per_point: float = 1.0, compile_units: float = 0.0) -> list:
    """Split sorted ``sizes`` into at most ``most`` contiguous groups minimising the padded work
    ``per_point * sum(len(group) * max(group)) + compile_units * groups``; returns ``[(lo, hi)]`` bounds.

    Linear in ``len(sizes)`` (times the groups tried): equal sizes are never split, so the dynamic programme
    runs over the distinct sizes, each layer by a monotone convex-hull trick (the cost of group ``(i, j]`` is
    ``per_point * (W_j - W_i) * s_j``, lines in ``s_j`` of slope ``-W_i``), and the optimum over the number of
    groups is convex (the cost is Monge), so layers stop once one more group no longer helps."""
    k = len(sizes)
    if k == 0:
        return []
    vals, ends = [], []                                     # distinct sizes and where each run ends
    for n, s in enumerate(sizes):
        if vals and s == vals[-1]:
            ends[-1] = n + 1
        else:
            vals.append(s)
            ends.append(n + 1)
    d = len(vals)
    w = [0, *ends]                                          # prefix counts W_0..W_d
    inf = float("inf")
    prev = [0.0] + [inf] * d
    cuts, best = [], []
    for b in range(1, most + 1):
        cur = [inf] * (d + 1)
        cut = [0] * (d + 1)
        hull = []                                           # lines (slope, intercept, i), slopes decreasing
        head = 0
        for j in range(1, d + 1):
            i = j - 1
            if prev[i] < inf:                               # add line i: y = -W_i x + prev[i]
                m, c = -per_point * w[i], prev[i]
                while len(hull) - head >= 2:
                    m1, c1, _ = hull[-2]
                    m2, c2, _ = hull[-1]
                    # line 2 is useless when line 3 overtakes line 1 no later than line 2 does
                    if (c - c1) * (m1 - m2) <= (c2 - c1) * (m1 - m):
                        hull.pop()
                    else:
                        break
                hull.append((m, c, i))
                head = min(head, len(hull) - 1)
            if head >= len(hull):
                continue
            x = vals[j - 1]
            while head + 1 < len(hull) and hull[head + 1][0] * x + hull[head + 1][1] < hull[head][0] * x + hull[head][1]:
                head += 1
            m, c, i = hull[head]
            cur[j] = m * x + c + per_point * w[j] * x + compile_units
            cut[j] = i
        cuts.append(cut)
        best.append(cur[d])
        prev = cur
        if b >= 2 and best[-1] >= best[-2]:
            break
    top = min(best)
    b = min(n for n, c in enumerate(best, 1) if c <= top)
    bounds, j = [], d
    while b > 0:
        i = cuts[b - 1][j]
        bounds.append((w[i], w[j]))
        j, b = i, b - 1
    return sorted(bounds)


def _share(p, params, shared: dict):
    """``params`` with its initial table, and point ``p`` with its initial distribution, replaced by the copy in
    ``shared`` of the same bytes (a grid's points mostly share one: memory per point stays small). Objects seen
    before are looked up by identity, so each distinct one is hashed once."""
    init = getattr(p, "initial", None)
    if init is not None and hasattr(init, "probs"):
        p.initial = _once(shared, init, lambda: shared.setdefault(
            ("point", np.shape(init.probs), np.asarray(init.probs).tobytes(), np.asarray(init.weights).tobytes()),
            init))
    table = getattr(params, "initial", None)
    if isinstance(table, np.ndarray):
        params = _once(shared, params, lambda: params._replace(
            initial=shared.setdefault(("params", table.shape, table.tobytes()), table)))
    return params


def _once(cache: dict, x, f):
    """``f()``, computed once per object ``x`` (by identity) and kept in ``cache``."""
    seen = cache.get(id(x))
    if seen is None or seen[0] is not x:
        seen = cache[id(x)] = (x, f())
    return seen[1]


def make_plan(spec: Spec, points: list | None = None, platform: str | None = None) -> Plan:
    """Resolve the points, build their configurations and bucket them (no JAX computation)."""
    import warnings

    import jax

    from ..engine.simulate import bytes_per_chain, chunk_for

    points = resolve(spec) if points is None else points
    platform = platform or jax.local_devices()[0].platform
    configs = []
    shared = {}                 # one copy of each distinct initial table (points of a size grid share theirs)
    memo = {}                   # points of equal sizes share their configuration
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in points:
            try:
                config, params = p.build(spec.generations, memo)
            except ConfigError as e:
                raise ConfigError(f"point {p.index} ({_brief(p.settings)}): {e}") from None
            configs.append((config, _share(p, params, shared)))
    groups, seen, size = {}, {}, []
    for p, (config, _) in zip(points, configs):
        key, s = _once(seen, config, lambda: (_static_key(config), _size_of(config)))
        groups.setdefault(key, []).append(p.index)
        size.append(s)
    buckets = []
    cap_batch = MAX_BATCH.get(platform, MAX_BATCH_ACCELERATOR)
    for key, members in groups.items():
        members = sorted(members, key=lambda i: (size[i], i))
        sizes = [size[i] for i in members]
        cells = key[0].contexts * key[0].vocab
        for lo, hi in _split([SIZE_WEIGHT * s + cells for s in sizes], spec.buckets, spec.chains * spec.generations,
                             COMPILE_UNITS):
            idx = sorted(members[lo:hi])
            cfgs = [configs[i][0] for i in idx]
            padded = key[0] if key[1] == "trained" else key[0]._replace(
                vocab=max(c.vocab for c in cfgs), capacity=max(c.capacity for c in cfgs),
                slots=max(c.slots for c in cfgs), draws=max(c.draws for c in cfgs),
                pool_capacity=max(c.pool_capacity for c in cfgs))
            chunk = chunk_for(padded, spec.chains, spec.memory, platform)
            per = bytes_per_chain(padded)
            group = spec.points_per_call or max(1, min(cap_batch // chunk, spec.memory // (per * chunk)))
            group = min(group, len(idx))
            tasks = [idx[i:i + group] for i in range(0, len(idx), group)]
            work = float(SIZE_WEIGHT * _size_of(padded) + padded.contexts * padded.vocab)
            buckets.append(Bucket(padded, idx, chunk, group, tasks, per * chunk * group, work))
    return Plan(spec, points, configs, buckets, platform)


def describe_plan(plan: Plan) -> str:
    """A few lines: points, buckets with their padded sizes, calls and memory."""
    from ..io.report import plural

    spec = plan.spec
    lines = [f"sweep: {plural(len(plan.points), 'point')} x {plural(spec.chains, 'chain')} x "
             f"{plural(spec.generations, 'generation')}, seed {spec.seed}; {plural(len(plan.buckets), 'bucket')} = "
             f"{plural(plan.compilations, 'compilation')}"]
    for i, b in enumerate(plan.buckets):
        c = b.config
        size = (f"slots {c.slots}, draws {c.draws}" if c.sampler == "resample" else
                f"token buffer {c.capacity}" if c.sampler == "tokens" else "binomial tree")
        kind = f"{c.kind}, {c.estimator} estimator" if _trained(c) else c.kind
        lines.append(f"  bucket {i}: {kind}, {c.sampler} sampler, {c.contexts}x{c.vocab} table, {size}: "
                     f"{plural(len(b.points), 'point')} in {plural(len(b.tasks), 'call group')} of "
                     f"{plural(b.group, 'point')} x {plural(b.chunk, 'chain')} "
                     f"({b.bytes_per_call / 2**20:.0f} MiB per call)")
    return "\n".join(lines)
