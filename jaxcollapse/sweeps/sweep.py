"""Parameter sweeps: many studies (grid points) run as a few compiled, vmapped calls.

A sweep is a list of *points*, each a full study setting (regime, sizes, initial distribution, decoding,
smoothing), all with the same ``chains``, ``generations`` and ``seed``. Points whose static
:class:`~jaxcollapse.Config` agree up to sizes are put in one *bucket*: their :class:`~jaxcollapse.Params` are
stacked and the engine is ``vmap``-ed over them (chains inside), so a sweep over sample sizes compiles once per
bucket, not once per value. Sizes that fix shapes (token buffers, slot lists, pools, the vocabulary) are padded
up to the bucket's capacity while the true sizes stay traced; the padding never changes a draw, so a point's
models and collapse times equal those of a plain :func:`~jaxcollapse.simulate` of that point with the key
:func:`point_key` (its metrics agree to the last few bits: sums over padded arrays may round differently).

Point ``p`` uses the key ``fold_in(key(seed), h_p)`` with ``h_p`` a 31-bit hash of its resolved settings, and
chain ``i`` of it ``fold_in(point_key, i)`` as in ``simulate``: results do not depend on the order of points, on
which bucket or call ran them, on the number of devices or hosts, or on interruptions.

Results directory (``OUT``):

``sweep.json``        the sweep's fingerprint (chains, generations, seed), written before any point.
``points/<id>.npz``   one file per finished point, written atomically: ``settings`` (JSON), ``collapse_time``
                      ``(chains,)`` (-1 = censored), ``collapse_token`` and ``context_collapse_time``
                      ``(chains, contexts)``, ``final_<metric>`` ``(chains,)`` (each metric at the last
                      generation), per-generation statistics ``mean``, ``sd``, ``ci_low``, ``ci_high``, ``n``,
                      ``infinite`` ``(metrics, G+1)`` (metric order in ``metrics``), ``collapsed`` ``(G+1,)``
                      fraction of chains collapsed by each generation, and ``final`` ``(chains, C, V)`` models
                      when ``keep_final``.
``table.csv``         tidy, rebuilt from the point files: one row per (point, generation, metric) with the
                      point's settings as columns and ``mean,sd,ci_low,ci_high,n``; metric ``collapsed`` is the
                      fraction of chains collapsed by that generation (Wilson 95% interval).
``points.csv``        one row per point: settings, final collapsed fraction (Wilson CI), median collapse time
                      (NaN when fewer than half of the chains collapsed) and the final mean of every metric.
``manifest.json``     settings, plan (buckets, compilations), versions, command, files; written last.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import functools
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
from typing import Callable

import numpy as np

from ..errors import ConfigError, check_float, check_int
from .run import compiled_count, run_plan

FORMAT_VERSION = 1
MARKER = "jaxcollapse_sweep"
SPEC_FILE = "sweep.json"
POINTS_DIR = "points"
TABLE = "table.csv"
POINTS_CSV = "points.csv"
MANIFEST = "manifest.json"

#: Settings a point may set (each a scalar; lists in a grid).
SETTINGS = ("regime", "initial", "vocab", "support", "exponent", "ratio", "concentration", "contexts",
            "initial_seed", "synthetic", "real", "size", "fraction", "window", "train", "temperature", "top_k",
            "top_p", "smoothing", "sampler")
#: Settings of the whole sweep.
SWEEP_KEYS = ("chains", "generations", "seed", "memory", "buckets", "points_per_call", "keep_final", "plot")
DEFAULTS = {"regime": "fully_synthetic", "initial": "zipf", "vocab": 600, "exponent": 1.1, "ratio": 0.5,
            "concentration": 1.0, "contexts": 1, "temperature": 1.0, "smoothing": 0.0, "sampler": "auto"}
DEFAULT_CHAINS = 1000
DEFAULT_GENERATIONS = 100
#: Largest number of chains (points x chains per point) in one compiled call, by platform (on a CPU, as
#: simulate.MAX_CHUNK: larger batches fall out of cache).
MAX_BATCH = {"cpu": 1024}
MAX_BATCH_ACCELERATOR = 1 << 17
#: Default largest number of size buckets per static configuration.
DEFAULT_BUCKETS = 3
#: Cost of one more compilation, in work units (``SIZE_WEIGHT x size + contexts x vocab`` per chain-generation):
#: on a 2-core CPU a compilation took about as long as 2e9 such units of simulation.
COMPILE_UNITS = 2e9
#: Weight of a padded sample size against a table cell in the work of one chain-generation (the resample
#: kernel's metrics take about a dozen passes over the samples, one over the table).
SIZE_WEIGHT = 12
#: Slot lists up to this size use the 32-bit parent picker of the resample kernel: never pad across it.
PICK_BITS_LIMIT = 1 << 16


# ------------------------------------------------------------------------------------------------
# the sweep's specification


@dataclasses.dataclass
class Spec:
    """A sweep: its points' settings and the settings shared by all points.

    Attributes:
      points: one settings dict per point (keys of :data:`SETTINGS`), in order.
      chains, generations, seed: as in :func:`jaxcollapse.simulate`, the same for every point.
      memory: device-memory budget per compiled call, bytes.
      buckets: largest number of size buckets per static configuration (more: less padding, more compilations).
      points_per_call: points vmapped in one call (default: as many as fit ``MAX_BATCH`` chains and ``memory``).
      keep_final: also keep every chain's final model ``(chains, C, V)`` per point.
      plot: ``{"x": setting, "y": setting}`` axes of the phase diagram (default: chosen from the grid).
    """

    points: list
    chains: int = DEFAULT_CHAINS
    generations: int = DEFAULT_GENERATIONS
    seed: int = 0
    memory: int = 1 << 30
    buckets: int = DEFAULT_BUCKETS
    points_per_call: int | None = None
    keep_final: bool = False
    plot: dict = dataclasses.field(default_factory=dict)

    def fingerprint(self) -> dict:
        return {"format_version": FORMAT_VERSION, "chains": self.chains, "generations": self.generations,
                "seed": self.seed, "keep_final": bool(self.keep_final)}


def _check_setting(name: str, value, where: str):
    if name not in SETTINGS:
        raise ConfigError(f"{where}: unknown setting {name!r}; allowed: {', '.join(SETTINGS)}")
    if isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"{where}: setting {name} must be a single value here, got {value!r}")
    return value


def spec_from_dict(data: dict, *, where: str = "sweep") -> Spec:
    """A :class:`Spec` from a TOML-like dict (see the README's "Sweeps" section).

    Top-level keys: sweep settings (:data:`SWEEP_KEYS`; ``memory`` in MiB) and base point settings
    (:data:`SETTINGS`). ``grid``: a table (or array of tables) of lists whose product gives points; ``points``:
    an array of tables, each one more point. Every point is the base settings updated by its own values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a sweep must be a table of settings")
    base, grids, extra = {}, [], []
    top = {}
    for k, v in data.items():
        key = k.replace("-", "_")
        if key == "grid":
            grids = [v] if isinstance(v, dict) else list(v) if isinstance(v, list) else None
            if grids is None or not all(isinstance(g, dict) for g in grids):
                raise ConfigError(f"{where}: grid must be a table or an array of tables of lists")
        elif key == "points":
            if not isinstance(v, list) or not all(isinstance(p, dict) for p in v):
                raise ConfigError(f"{where}: points must be an array of tables ([[points]])")
            extra = v
        elif key in SWEEP_KEYS:
            top[key] = v
        else:
            base[key] = _check_setting(key, v, where)
    points = []
    for gi, grid in enumerate(grids):
        names, values = [], []
        for k, v in grid.items():
            key = k.replace("-", "_")
            _check_setting(key, 0, f"{where}: grid")
            vals = v if isinstance(v, list) else [v]
            if not vals:
                raise ConfigError(f"{where}: grid {key} is an empty list")
            names.append(key)
            values.append(vals)
        for combo in itertools.product(*values):
            points.append({**base, **dict(zip(names, combo))})
    for p in extra:
        point = dict(base)
        for k, v in p.items():
            point[k.replace("-", "_")] = _check_setting(k.replace("-", "_"), v, f"{where}: points")
        points.append(point)
    if not grids and not extra:
        points.append(dict(base))
    plot = top.get("plot", {})
    if not isinstance(plot, dict):
        raise ConfigError(f"{where}: plot must be a table with x and y")
    memory = check_float("memory", top.get("memory", 1024.0), low=0.0, low_open=True)
    ppc = top.get("points_per_call")
    return Spec(points=points, chains=check_int("chains", top.get("chains", DEFAULT_CHAINS), low=1, high=2**31 - 1),
                generations=check_int("generations", top.get("generations", DEFAULT_GENERATIONS), low=1,
                                      high=1 << 24),
                seed=check_int("seed", top.get("seed", 0), low=0, high=2**63 - 1), memory=int(memory * 2**20),
                buckets=check_int("buckets", top.get("buckets", DEFAULT_BUCKETS), low=1, high=64),
                points_per_call=None if ppc is None else check_int("points_per_call", ppc, low=1),
                keep_final=bool(top.get("keep_final", False)), plot=dict(plot))


def load_spec(path) -> Spec:
    """Read a sweep TOML file (ConfigError with the file's name for a missing file or bad TOML)."""
    try:
        import tomllib as toml
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as toml
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = toml.load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} not found") from None
    except toml.TOMLDecodeError as e:
        raise ConfigError(f"sweep file {path} is not valid TOML: {e}") from None
    return spec_from_dict(data, where=os.path.basename(path))


# ------------------------------------------------------------------------------------------------
# one point: resolved settings, key, (config, params)


@dataclasses.dataclass
class Point:
    """One resolved grid point.

    Attributes:
      index: position in the sweep.  id: 12 hex digits of the hash of ``settings`` (file name).
      settings: resolved settings (JSON-friendly; ``size`` and ``fraction`` always filled in: the training-set
        size of generations ``m >= 2`` and its synthetic share, as requested when both were given).
      fold: the 31-bit number folded into the sweep key to give the point's key.
      initial, regime, decoding, smoothing, sampler: what :func:`jaxcollapse.simulate` takes.
    """

    index: int
    id: str
    settings: dict
    fold: int
    initial: object
    regime: object
    decoding: object
    smoothing: float
    sampler: str


def _sizes(kind: str, s: dict) -> dict:
    from ..core.regimes import resolve_sizes

    return resolve_sizes(kind, s)


def resolve_point(settings: dict, index: int = 0) -> Point:
    """Validate one point's settings and build what ``simulate`` takes; ConfigError naming the bad setting."""
    from ..core import initial as init_mod
    from ..core.regimes import REGIMES, Decoding, Regime

    s = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    for k in s:
        _check_setting(k, s[k], f"point {index}")
    kind = s["regime"]
    if kind not in REGIMES:
        raise ConfigError(f"point {index}: regime must be one of {', '.join(REGIMES)}; got {kind!r}")
    source = s["initial"]
    vocab = check_int("vocab", s["vocab"], low=1)
    res = {"regime": kind, "initial": source, "vocab": vocab}
    if source in ("zipf", "uniform", "geometric"):
        support = check_int("support", s.get("support", min(52, vocab)), low=1, high=vocab)
        res["support"] = support
        if source == "zipf":
            res["exponent"] = float(s["exponent"])
            initial = init_mod.zipf(vocab, res["exponent"], support)
        elif source == "uniform":
            initial = init_mod.uniform(vocab, support)
        else:
            res["ratio"] = float(s["ratio"])
            initial = init_mod.geometric(vocab, res["ratio"], support)
    elif source == "dirichlet":
        res.update(concentration=float(s["concentration"]), contexts=int(s["contexts"]),
                   initial_seed=int(s.get("initial_seed", 0)))
        initial = init_mod.dirichlet(res["initial_seed"], vocab, res["concentration"], res["contexts"])
    else:
        raise ConfigError(f"point {index}: initial must be zipf, uniform, geometric or dirichlet; got {source!r}")
    sizes = _sizes(kind, s)
    regime = Regime(kind, **sizes)
    res.update(sizes)
    decoding = Decoding(float(s["temperature"]), s.get("top_k"), s.get("top_p"))
    smoothing = check_float("smoothing", s["smoothing"], low=0.0)
    res.update(temperature=decoding.temperature, top_k=decoding.top_k, top_p=decoding.top_p, smoothing=smoothing,
               sampler=str(s["sampler"]))
    blob = json.dumps(res, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).hexdigest()
    # Derived columns for tables and phase diagrams (not part of the hash).
    shorthand = regime.spec.shorthand
    if shorthand == "mixed":
        size, frac = res["real"], res["fraction"]
    elif shorthand == "split":
        size = res["real"] + res["synthetic"]
        frac = res["synthetic"] / size
    else:
        size, frac = res["synthetic"], 1.0
    if settings.get("size") is not None and settings.get("fraction") is not None:
        frac = float(settings["fraction"])          # as requested (n / (N + n) is rounded to whole samples)
    res["size"], res["fraction"] = size, float(frac)
    return Point(index, digest[:12], res, int(digest[:8], 16) & 0x7FFFFFFF, initial, regime, decoding, smoothing,
                 res["sampler"])


def resolve(spec: Spec) -> list:
    """Resolve every point of ``spec``; ConfigError on a bad or duplicated point."""
    points, seen = [], {}
    for i, s in enumerate(spec.points):
        try:
            p = resolve_point(s, i)
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("point ") else f"point {i} ({_brief(s)}): {msg}") from None
        if p.id in seen:
            raise ConfigError(f"points {seen[p.id]} and {i} have the same settings ({_brief(s)})")
        seen[p.id] = i
        points.append(p)
    if not points:
        raise ConfigError("the sweep has no points")
    return points


def _brief(s: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items())


def point_key(seed, point: Point):
    """The point's PRNG key ``fold_in(key(seed), point.fold)``: ``simulate(point_key(...), ...)`` reproduces it."""
    import jax

    from ..engine.simulate import as_key

    return jax.random.fold_in(as_key(seed), point.fold)


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


def _size_of(config) -> int:
    return max(config.slots, config.draws, config.capacity, config.pool_capacity, 1)


def _static_key(config):
    """What must agree for two points to share a compilation (sizes padded, vocab within a power of two)."""
    vclass = config.vocab if config.smoothing else 1 << max(0, math.ceil(math.log2(max(config.vocab, 1))))
    pool = config.pool_capacity if config.contexts > 1 else 0
    side = config.slots <= PICK_BITS_LIMIT if config.sampler == "resample" else None
    return (config._replace(capacity=0, slots=0, draws=0, vocab=vclass, pool_capacity=pool), side)


def _split(sizes: list, most: int, per_point: float = 1.0, compile_units: float = 0.0) -> list:
    """Split sorted ``sizes`` into at most ``most`` contiguous groups minimising the padded work
    ``per_point * sum(len(group) * max(group)) + compile_units * groups``."""
    k = len(sizes)
    best = {}
    inf = float("inf")
    cost = [[0.0] * (k + 1) for _ in range(most + 1)]
    cut = [[0] * (k + 1) for _ in range(most + 1)]
    for j in range(1, k + 1):
        cost[0][j] = inf
    for b in range(1, most + 1):
        for j in range(1, k + 1):
            cost[b][j], cut[b][j] = inf, 0
            for i in range(b - 1, j):
                c = cost[b - 1][i] + (j - i) * sizes[j - 1] * per_point + compile_units
                if c < cost[b][j]:
                    cost[b][j], cut[b][j] = c, i
        best[b] = cost[b][k]
    top = min(best.values())
    b = min(n for n, c in best.items() if c <= top)
    bounds, j = [], k
    while b > 0:
        i = cut[b][j]
        bounds.append((i, j))
        j, b = i, b - 1
    return sorted(bounds)


def make_plan(spec: Spec, points: list | None = None, platform: str | None = None) -> Plan:
    """Resolve the points, build their configurations and bucket them (no JAX computation)."""
    import warnings

    import jax

    from ..core import count as kernel
    from ..engine.simulate import bytes_per_chain, chunk_for

    points = resolve(spec) if points is None else points
    platform = platform or jax.local_devices()[0].platform
    configs = []
    with jax.enable_x64(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in points:
            try:
                configs.append(kernel.build(p.initial, p.regime, generations=spec.generations, decoding=p.decoding,
                                            smoothing=p.smoothing, sampler=p.sampler))
            except ConfigError as e:
                raise ConfigError(f"point {p.index} ({_brief(p.settings)}): {e}") from None
    groups = {}
    for p, (config, _) in zip(points, configs):
        groups.setdefault(_static_key(config), []).append(p.index)
    buckets = []
    cap_batch = MAX_BATCH.get(platform, MAX_BATCH_ACCELERATOR)
    for key, members in groups.items():
        members = sorted(members, key=lambda i: (_size_of(configs[i][0]), i))
        sizes = [_size_of(configs[i][0]) for i in members]
        cells = key[0].contexts * key[0].vocab
        for lo, hi in _split([SIZE_WEIGHT * s + cells for s in sizes], spec.buckets, spec.chains * spec.generations,
                             COMPILE_UNITS):
            idx = sorted(members[lo:hi])
            cfgs = [configs[i][0] for i in idx]
            padded = key[0]._replace(
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
    spec = plan.spec
    lines = [f"sweep: {len(plan.points)} points x {spec.chains} chains x {spec.generations} generations, seed "
             f"{spec.seed}; {len(plan.buckets)} bucket{'s' if len(plan.buckets) != 1 else ''} = "
             f"{plan.compilations} compilation{'s' if plan.compilations != 1 else ''}"]
    for i, b in enumerate(plan.buckets):
        c = b.config
        size = {"resample": f"slots {c.slots}, draws {c.draws}", "tokens": f"token buffer {c.capacity}",
                "binomial": "binomial tree"}[c.sampler]
        lines.append(f"  bucket {i}: {c.kind}, {c.sampler} sampler, {c.contexts}x{c.vocab} table, {size}: "
                     f"{len(b.points)} points in {len(b.tasks)} call group{'s' if len(b.tasks) != 1 else ''} of "
                     f"{b.group} points x {b.chunk} chains ({b.bytes_per_call / 2**20:.0f} MiB per call)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# the compiled calls: simulate's own chunk functions, vmapped over points


# ------------------------------------------------------------------------------------------------
# files


def point_path(out, point: Point) -> str:
    return os.path.join(os.fspath(out), POINTS_DIR, f"{point.id}.npz")


def write_point(out, point: Point, rec: dict, spec: Spec) -> None:
    """Write one point's record atomically to ``out/points/<id>.npz``."""
    from ..io.rundir import atomic_file

    arrays = {k: np.asarray(v) for k, v in rec.items() if k not in ("settings", "id", "metrics")}
    arrays["settings"] = np.array(json.dumps(point.settings, sort_keys=True))
    arrays["fingerprint"] = np.array(json.dumps(spec.fingerprint(), sort_keys=True))
    arrays["metrics"] = np.array(rec["metrics"])
    os.makedirs(os.path.join(os.fspath(out), POINTS_DIR), exist_ok=True)
    with atomic_file(point_path(out, point)) as f:
        np.savez(f, **arrays)


def load_point(path, spec: Spec | None = None) -> dict | None:
    """A point record from its file, or None if it is missing, unreadable or from another sweep."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None
    try:
        fp = json.loads(str(rec.pop("fingerprint")))
        rec["settings"] = json.loads(str(rec["settings"]))
    except (KeyError, ValueError):
        return None
    if spec is not None and fp != spec.fingerprint():
        return None
    rec["metrics"] = [str(m) for m in rec["metrics"]]
    return rec


def finished_points(out, plan: Plan) -> dict:
    """``{point index: record}`` of the points already written under ``out`` by this sweep."""
    found = {}
    for p in plan.points:
        path = point_path(out, p)
        if os.path.exists(path):
            rec = load_point(path, plan.spec)
            if rec is not None:
                found[p.index] = rec
    return found


def _clean_temporaries(out) -> None:
    folder = os.path.join(os.fspath(out), POINTS_DIR)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".") and ".tmp-" in name:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))


def prepare_out(out, spec: Spec, overwrite: bool = False) -> None:
    """Create ``out`` or check that it holds this sweep (then it is resumed); write ``sweep.json``."""
    from ..io.rundir import write_text

    d = os.fspath(out)
    path = os.path.join(d, SPEC_FILE)
    if os.path.isdir(d) and os.listdir(d):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            raise ConfigError(f"output directory {d} exists, is not empty and holds no sweep ({SPEC_FILE}); "
                              f"choose another --out") from None
        if old != spec.fingerprint():
            if not overwrite:
                raise ConfigError(f"output directory {d} holds a sweep with other chains, generations, seed or "
                                  f"keep_final ({old}); pass --overwrite to replace it or choose another --out")
            for name in (MANIFEST, TABLE, POINTS_CSV, SPEC_FILE):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(d, name))
    elif os.path.exists(d) and not os.path.isdir(d):
        raise ConfigError(f"output {d} exists and is not a directory")
    os.makedirs(os.path.join(d, POINTS_DIR), exist_ok=True)
    _clean_temporaries(d)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(d, MANIFEST))         # the directory stops being a finished sweep
    write_text(path, json.dumps(spec.fingerprint(), sort_keys=True) + "\n")


_SETTING_COLUMNS = ("regime", "initial", "vocab", "support", "exponent", "ratio", "concentration", "contexts",
                    "initial_seed", "size", "fraction", "synthetic", "real", "window", "train", "temperature",
                    "top_k", "top_p", "smoothing", "sampler")


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _columns(points) -> list:
    used = set()
    for p in points:
        used |= {k for k, v in p.settings.items() if v is not None}
    return [k for k in _SETTING_COLUMNS if k in used]


def table_csv(points, records) -> str:
    """``table.csv`` text: a row per (point, generation, metric), points in sweep order."""
    from ..stats.analysis import wilson_ci

    cols = _columns(points)
    out = io.StringIO()
    out.write(",".join(["point", "id", *cols, "generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"])
              + "\n")
    for p in points:
        rec = records[p.index]
        head = ",".join([str(p.index), p.id, *(_cell(p.settings.get(c)) for c in cols)])
        chains = int(rec["collapse_time"].shape[0])
        frac = rec["collapsed"]
        ci = wilson_ci(np.rint(frac * chains), chains)
        names = list(rec["metrics"])
        for gi in range(frac.shape[0]):
            for k, m in enumerate(names):
                out.write(f"{head},{gi},{m},{float(rec['mean'][k, gi])!r},{float(rec['sd'][k, gi])!r},"
                          f"{float(rec['ci_low'][k, gi])!r},{float(rec['ci_high'][k, gi])!r},"
                          f"{int(rec['n'][k, gi])}\n")
            sd = math.sqrt(frac[gi] * (1 - frac[gi]) * chains / max(chains - 1, 1))
            out.write(f"{head},{gi},collapsed,{float(frac[gi])!r},{sd!r},{float(ci.low[gi])!r},"
                      f"{float(ci.high[gi])!r},{chains}\n")
    return out.getvalue()


def point_summary(rec: dict, generations: int) -> dict:
    """Final-generation numbers of one point: collapsed fraction with its Wilson interval, median collapse time
    (NaN when fewer than half collapsed), mean collapse time of the collapsed chains, final metric means."""
    from ..stats.analysis import wilson_ci

    t = np.asarray(rec["collapse_time"])
    chains = t.shape[0]
    k = int((t >= 0).sum())
    ci = wilson_ci(k, chains)
    big = np.where(t >= 0, t, np.iinfo(np.int64).max)
    kth = np.partition(big, math.ceil(chains / 2) - 1)[math.ceil(chains / 2) - 1]
    out = {"chains": chains, "collapsed_fraction": k / chains, "collapsed_low": float(ci.low),
           "collapsed_high": float(ci.high),
           "median_collapse_time": float(kth) if kth <= generations else float("nan"),
           "mean_collapse_time_collapsed": float(t[t >= 0].mean()) if k else float("nan")}
    for j, m in enumerate(rec["metrics"]):
        out[f"final_{m}"] = float(rec["mean"][j, -1])
    return out


def points_csv(points, records, generations: int) -> str:
    cols = _columns(points)
    rows = [point_summary(records[p.index], generations) for p in points]
    keys = list(rows[0])
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["point", "id", *cols, *keys])
    for p, r in zip(points, rows):
        w.writerow([p.index, p.id, *(_cell(p.settings.get(c)) for c in cols), *(_cell(r[k]) for k in keys)])
    return out.getvalue()


def write_tables(out, plan: Plan, records: dict, *, command: str = "", argv=None, wall_time: float = 0.0,
                 extra: dict | None = None) -> dict:
    """Write ``table.csv``, ``points.csv`` and (last) ``manifest.json`` from the point records."""
    from ..io.rundir import _jsonable, backend, versions, write_text

    d = os.fspath(out)
    files = {}
    for name, text in ((TABLE, table_csv(plan.points, records)),
                       (POINTS_CSV, points_csv(plan.points, records, plan.spec.generations))):
        write_text(os.path.join(d, name), text)
        files[name] = os.path.getsize(os.path.join(d, name))
    spec = plan.spec
    manifest = {
        MARKER: 1, "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "chains": spec.chains, "generations": spec.generations, "seed": spec.seed,
        "points": [{"index": p.index, "id": p.id, "settings": p.settings} for p in plan.points],
        "plan": {"buckets": len(plan.buckets), "compilations": plan.compilations,
                 "bucket_sizes": [len(b.points) for b in plan.buckets],
                 "points_per_call": [b.group for b in plan.buckets],
                 "chains_per_call": [b.chunk for b in plan.buckets]},
        "plot": spec.plot, "versions": versions(), "jax": backend(), "command": command,
        "argv": list(sys.argv if argv is None else argv), "cwd": os.getcwd(), "wall_time_s": wall_time,
        "files": {**files, POINTS_DIR: len(plan.points)},
    }
    if extra:
        manifest.update(extra)
    write_text(os.path.join(d, MANIFEST), json.dumps(_jsonable(manifest), indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(out) -> dict | None:
    try:
        with open(os.path.join(os.fspath(out), MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get(MARKER) == 1 else None


# ------------------------------------------------------------------------------------------------
# the Python entry point


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
      plan: the :class:`Plan` (points, buckets).  records: ``{point index: record}`` of every finished point.
      ran: indices of the points computed by this call (the rest were found on disk or run by other hosts).
      complete: whether every point is finished.  wall_time: seconds.  out: the results directory or None.
    """

    plan: Plan
    records: dict
    ran: list
    complete: bool
    wall_time: float
    out: str | None

    @property
    def points(self) -> list:
        return self.plan.points

    def table_csv(self) -> str:
        return table_csv(self.plan.points, self.records)


def _as_spec(spec, overrides) -> Spec:
    if isinstance(spec, Spec):
        s = dataclasses.replace(spec)
    elif isinstance(spec, (str, os.PathLike)):
        s = load_spec(spec)
    elif isinstance(spec, dict):
        s = spec_from_dict(spec)
    elif isinstance(spec, (list, tuple)):
        s = Spec(points=[dict(p) for p in spec])
    else:
        raise ConfigError("spec must be a TOML path, a dict, a list of point settings or a Spec")
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "chains":
            v = check_int("chains", v, low=1, high=2**31 - 1)
        elif k == "generations":
            v = check_int("generations", v, low=1, high=1 << 24)
        elif k == "seed":
            v = check_int("seed", v, low=0, high=2**63 - 1)
        elif k == "memory":
            v = check_int("memory", v, low=1)
        setattr(s, k, v)
    return s


def sweep(spec, *, chains: int | None = None, generations: int | None = None, seed: int | None = None,
          out=None, host: int | None = None, hosts: int | None = None, devices=None, memory: int | None = None,
          points_per_call: int | None = None, keep_final: bool | None = None, overwrite: bool = False,
          progress: Callable | None = None, command: str = "", argv=None) -> SweepResult:
    """Run a parameter sweep.

    Args:
      spec: a sweep TOML path, a dict in the TOML's layout, a list of point-settings dicts, or a :class:`Spec`.
      chains, generations, seed, memory (bytes), points_per_call, keep_final: override the spec's values.
      out: results directory; with it, finished points are written as they finish, points already there are
        not run again (resume), and when all points are done the tables and the manifest are written.
      host, hosts: run only the call groups ``t`` with ``t % hosts == host`` (default: ``jax.process_index()``
        and ``jax.process_count()``); merge the hosts' points with :func:`merge`.
      devices: JAX devices to spread call groups over (default: all local devices).
      progress: ``progress(chain_generations_done, total, points_done, work_fraction)`` between segments.
    """
    import jax

    t0 = time.perf_counter()
    spec = _as_spec(spec, {"chains": chains, "generations": generations, "seed": seed, "memory": memory,
                           "points_per_call": points_per_call, "keep_final": keep_final})
    hosts = jax.process_count() if hosts is None else check_int("hosts", hosts, low=1)
    host = jax.process_index() if host is None else check_int("host", host, low=0, high=hosts - 1)
    plan = make_plan(spec)
    done = {}
    if out is not None:
        prepare_out(out, spec, overwrite)
        done = finished_points(out, plan)
    ran = run_plan(plan, out, host=host, hosts=hosts, devices=devices, done=set(done), progress=progress)
    records = {**done, **ran}
    complete = len(records) == len(plan.points)
    wall = time.perf_counter() - t0
    if out is not None and complete and hosts == 1:
        write_tables(out, plan, records, command=command, argv=argv, wall_time=wall)
    return SweepResult(plan, records, sorted(ran), complete, wall, None if out is None else os.fspath(out))


def merge(spec, out, sources=(), *, command: str = "", argv=None, overwrite: bool = False) -> SweepResult:
    """Merge the point files of several hosts into ``out``'s tables (``sources``: more directories whose
    ``points/`` are copied into ``out``); ConfigError naming the missing points if some are not finished."""
    import shutil

    t0 = time.perf_counter()
    spec = _as_spec(spec, {})
    plan = make_plan(spec)
    d = os.fspath(out)
    if not os.path.isdir(os.path.join(d, POINTS_DIR)) and not sources:
        raise ConfigError(f"{d} holds no sweep points to merge")
    prepare_out(d, spec, overwrite)
    for src in sources:
        for p in plan.points:
            path = point_path(src, p)
            if os.path.exists(path) and load_point(path, spec) is not None and not os.path.exists(point_path(d, p)):
                tmp = point_path(d, p) + f".tmp-{os.getpid()}"
                shutil.copyfile(path, tmp)
                os.replace(tmp, point_path(d, p))
    records = finished_points(d, plan)
    missing = [p.index for p in plan.points if p.index not in records]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(f"{len(missing)} of {len(plan.points)} points are not finished (points {shown}); "
                          f"run the missing hosts' shares first")
    write_tables(d, plan, records, command=command, argv=argv, wall_time=time.perf_counter() - t0,
                 extra={"merged_from": [os.fspath(s) for s in sources]})
    return SweepResult(plan, records, [], True, time.perf_counter() - t0, d)


# ------------------------------------------------------------------------------------------------
# cost: calibration, estimate, progress


@dataclasses.dataclass
class Estimate:
    """Predicted cost of a plan. seconds: compute + compilation; compile_s: per compilation (measured);
    rate: padded size units x chain-generations per second (measured); device_bytes: largest call;
    host_bytes: per-point arrays held at once."""

    seconds: float
    compile_s: float
    rate: float
    device_bytes: int
    host_bytes: int

    def describe(self) -> str:
        return (f"estimate: about {_clock(self.seconds)} ({self.compile_s:.1f} s per compilation, "
                f"{self.rate / 1e6:.0f}M size-units x chain-generations/s measured); device memory per call "
                f"{self.device_bytes / 2**20:.0f} MiB, host memory {self.host_bytes / 2**20:.0f} MiB")


def _clock(s: float) -> str:
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def host_bytes(plan: Plan) -> int:
    """Host bytes held for one call group at a time (metric blocks of a chunk, per-chain arrays, final models)."""
    spec = plan.spec
    most = 0
    for b in plan.buckets:
        c = b.config
        per_point = spec.chains * (8 * 8 + 3 * 8 * c.contexts) + 8 * 8 * 6 * (spec.generations + 1)
        if spec.keep_final:
            per_point += spec.chains * c.contexts * c.vocab * 8
        block = b.chunk * (spec.generations + 1) * 8 * 8 * 2
        most = max(most, b.group * (per_point + block))
    return most


def estimate(plan: Plan, hosts: int = 1, devices=None) -> Estimate:
    """Time one call of the largest bucket (compilation, then a run) and extrapolate to the whole plan."""
    import jax

    from .run import time_call

    spec = plan.spec
    device = (list(devices) if devices is not None else jax.local_devices())[0]
    b = max(plan.buckets, key=lambda b: len(b.points) * b.work)
    first, run, seg = time_call(plan, b, [device])
    rate = b.group * b.chunk * seg * b.work / run
    compile_s = max(first - 2 * run, 0.0)
    work = sum(len(bk.tasks) * bk.group * math.ceil(spec.chains / bk.chunk) * bk.chunk * spec.generations * bk.work
               for bk in plan.buckets)
    n_dev = 1 if devices is None and device.platform == "cpu" else len(devices or jax.local_devices())
    seconds = work / rate / hosts / max(n_dev, 1) + compile_s * (len(plan.buckets) - 1)
    return Estimate(seconds, compile_s, rate, max(bk.bytes_per_call for bk in plan.buckets), host_bytes(plan))


def check_fits(plan: Plan, est: Estimate | None = None, devices=None) -> None:
    """ConfigError when a call needs more device memory than the device has, or the host arrays more than
    the available host memory."""
    import jax

    from ..cli.main import available_memory

    device = (list(devices) if devices is not None else jax.local_devices())[0]
    need = max(b.bytes_per_call for b in plan.buckets)
    limit = None
    with contextlib.suppress(Exception):
        stats = device.memory_stats()
        limit = stats.get("bytes_limit") if stats else None
    if limit and need > limit:
        raise ConfigError(f"a call of this sweep needs about {need / 2**20:.0f} MiB of device memory, the device has "
                          f"{limit / 2**20:.0f} MiB; lower memory, points_per_call or the sizes")
    host = host_bytes(plan) if est is None else est.host_bytes
    avail = available_memory()
    if avail is not None and host > avail:
        raise ConfigError(f"this sweep needs about {host / 2**20:.0f} MiB of host memory at once, "
                          f"{avail / 2**20:.0f} MiB are available; lower chains or turn keep_final off")


class Progress:
    """Progress over the whole sweep on a stream: points done, chain-generations per second, ETA.
    On a terminal one line is redrawn; elsewhere a line is printed at most every ``every`` seconds."""

    def __init__(self, stream, points_total: int, points_before: int = 0, every: float = 10.0):
        self.stream, self.total_points, self.before, self.every = stream, points_total, points_before, every
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.perf_counter()
        self.last = -every
        self.width = 0

    def __call__(self, done: int, total: int, points_done: int, fraction: float | None = None) -> None:
        now = time.perf_counter() - self.t0
        final = done >= total
        if not self.tty and not final and now - self.last < self.every:
            return
        self.last = now
        rate = done / now if now > 0 else 0.0
        frac = done / max(total, 1) if fraction is None else fraction
        eta = now * (1 - frac) / frac if frac >= 0.01 else float("nan")
        text = (f"sweep: {self.before + points_done}/{self.total_points} points, {100 * frac:.0f}% "
                f"of this run, {rate / 1e3:.1f}k chain-generations/s, "
                f"ETA {_clock(eta) if math.isfinite(eta) else '?'}")
        if self.tty:
            self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------------------------------------
# the command line: ``jaxcollapse sweep FILE.toml``

DESCRIPTION = """Run a parameter sweep from a TOML file: a product grid and/or a list of points over any setting
(regime, synthetic, real, size, fraction, window, train, initial, vocab, support, exponent, temperature, top_k,
top_p, smoothing, sampler), with chains, generations and a seed for all. Points that share array shapes run as one
compiled, vmapped call. Results (OUT/table.csv, OUT/points.csv, OUT/points/*.npz, OUT/manifest.json) are written as
points finish; rerunning the same command resumes an interrupted sweep. See the README's "Sweeps" section."""


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="FILE.toml", help="the sweep's TOML file")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="results directory (default: sweeps/<name of FILE>); an unfinished sweep there resumes")
    parser.add_argument("--chains", type=int, default=None, help="chains per point (overrides the file)")
    parser.add_argument("--generations", "-g", type=int, default=None, help="generations (overrides the file)")
    parser.add_argument("--seed", type=int, default=None, help="seed (overrides the file)")
    parser.add_argument("--memory", type=float, default=None, metavar="MIB",
                        help="device-memory budget per compiled call in MiB (default: 1024)")
    parser.add_argument("--points-per-call", type=int, default=None, metavar="P",
                        help="points vmapped in one call (default: from the memory budget)")
    parser.add_argument("--host", type=int, default=None, metavar="I",
                        help="run only host I's share of the points (default: jax.process_index())")
    parser.add_argument("--hosts", type=int, default=None, metavar="H",
                        help="number of hosts sharing the sweep (default: jax.process_count())")
    parser.add_argument("--merge", action="store_true",
                        help="merge the hosts' finished points into the tables (no simulation)")
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                        help="with --merge: another host's results directory to take points from (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (points, buckets, compilations) and a calibrated estimate; run nothing")
    parser.add_argument("--plot", action="store_true", help="draw the phase diagrams (OUT/plots/) when finished")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a sweep in --out that has other chains, generations or seed")
    parser.add_argument("--quiet", action="store_true", help="print only the results line and errors")


def _command(args) -> str:
    import shlex

    parts = ["jaxcollapse", "sweep", args.spec, "--out", args.out]
    for flag in ("chains", "generations", "seed", "memory", "points_per_call"):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def run_command(args) -> int:
    """``jaxcollapse sweep``: plan, estimate, run (or resume, or merge), write the tables, plot."""
    import jax

    spec = _as_spec(args.spec, {"chains": args.chains, "generations": args.generations, "seed": args.seed,
                                "memory": None if args.memory is None else int(check_float(
                                    "memory", args.memory, low=0.0, low_open=True) * 2**20),
                                "points_per_call": args.points_per_call})
    if args.out is None:
        args.out = os.path.join("sweeps", os.path.splitext(os.path.basename(args.spec))[0])
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.merge:
        res = merge(spec, args.out, args.sources, command=_command(args), overwrite=args.overwrite)
        say(f"merged {len(res.records)} points")
        return _finish(args, res, say)
    hosts = jax.process_count() if args.hosts is None else check_int("hosts", args.hosts, low=1)
    host = jax.process_index() if args.host is None else check_int("host", args.host, low=0, high=hosts - 1)
    plan = make_plan(spec)
    say(describe_plan(plan))
    if hosts > 1:
        share = sum(len(t) for ti, _, t in plan.tasks() if ti % hosts == host)
        say(f"host {host} of {hosts}: {share} points")
    check_fits(plan)
    if args.dry_run:
        say(estimate(plan, hosts).describe())
        return 0
    prepare_out(args.out, spec, args.overwrite)
    done = finished_points(args.out, plan)
    if done:
        say(f"resuming: {len(done)} of {len(plan.points)} points already finished in {args.out}")
    todo = [p for p in plan.points if p.index not in done]
    if todo and not args.quiet:
        say(estimate(plan, hosts).describe())
    progress = None if args.quiet else Progress(sys.stderr, len(plan.points), len(done))
    t0 = time.perf_counter()
    try:
        ran = run_plan(plan, args.out, host=host, hosts=hosts, done=set(done), progress=progress)
    finally:
        if progress is not None:
            progress.close()
    records = {**done, **ran}
    wall = time.perf_counter() - t0
    rate = len(ran) * spec.chains * spec.generations / max(wall, 1e-9)
    say(f"ran {len(ran)} points in {wall:.1f} s ({rate / 1e3:.1f}k chain-generations/s, compilation included; "
        f"{plan.compilations} compilations planned)")
    if len(records) < len(plan.points):
        say(f"{len(records)} of {len(plan.points)} points finished; when every host is done run "
            f"`{_command(args)} --merge`")
        return 0
    if hosts > 1:
        say(f"every point is finished; write the tables with `{_command(args)} --merge`")
        return 0
    res = SweepResult(plan, records, sorted(ran), True, wall, args.out)
    write_tables(args.out, plan, records, command=_command(args), wall_time=wall)
    return _finish(args, res, say)


def _finish(args, res: SweepResult, say) -> int:
    from .phase import format_points

    say(format_points(res.plan.points, res.records, res.plan.spec.generations))
    files = [TABLE, POINTS_CSV, POINTS_DIR + "/", MANIFEST]
    if args.plot:
        from .phase import plot_sweep
        from ..io.rundir import _jsonable, write_text

        made = plot_sweep(args.out)
        manifest = read_manifest(args.out)
        manifest["plots"] = [os.path.relpath(p, args.out) for p in made]
        write_text(os.path.join(args.out, MANIFEST), json.dumps(_jsonable(manifest), indent=2) + "\n")
        files.insert(3, "plots/")
    print(f"results: {args.out}{os.sep} ({', '.join(files)})")
    return 0
