"""A sweep's specification and its points: the TOML layout, the settings a point may set, and each point
resolved to what :func:`jaxcollapse.simulate` takes, with its key.

Point ``p`` uses the key ``fold_in(key(seed), h_p)`` with ``h_p`` a 31-bit hash of its resolved settings, and
chain ``i`` of it ``fold_in(point_key, i)`` as in ``simulate``: results do not depend on the order of points, on
which bucket or call ran them, on the number of devices or hosts, or on interruptions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os

from ..engine.settings import STUDY_DEFAULTS
from ..errors import MAX_SMOOTHING, ConfigError, check_bool, check_float, check_int

#: Version of the point files and the sweep's fingerprint.
FORMAT_VERSION = 1

#: Settings a point may set (each a scalar; lists in a grid).
SETTINGS = ("regime", "initial", "vocab", "support", "exponent", "ratio", "concentration", "contexts",
            "initial_seed", "synthetic", "real", "size", "fraction", "window", "train", "temperature", "top_k",
            "top_p", "smoothing", "sampler")
#: Settings of the whole sweep.
SWEEP_KEYS = ("chains", "generations", "seed", "memory", "buckets", "points_per_call", "keep_final", "plot")
#: Defaults of a point's settings (the same as the command line's).
DEFAULTS = STUDY_DEFAULTS
DEFAULT_CHAINS = 1000
DEFAULT_GENERATIONS = 100
#: Default largest number of size buckets per static configuration.
DEFAULT_BUCKETS = 3


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
                keep_final=check_bool("keep_final", top.get("keep_final", False)), plot=dict(plot))


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


def resolve_point(settings: dict, index: int = 0) -> Point:
    """Validate one point's settings and build what ``simulate`` takes; ConfigError naming the bad setting."""
    from ..core.regimes import REGIMES, Decoding, Regime
    from ..engine.settings import initial_distribution, regime_sizes, size_and_fraction

    s = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    for k in s:
        _check_setting(k, s[k], f"point {index}")
    kind = s["regime"]
    if kind not in REGIMES:
        raise ConfigError(f"point {index}: regime must be one of {', '.join(REGIMES)}; got {kind!r}")
    source = s["initial"]
    initial, used, _ = initial_distribution(source, s)
    res = {"regime": kind, "initial": source, **used}
    sizes = regime_sizes(kind, s)
    if s.get("train") is not None and "train" not in sizes:
        # unused by this regime, but kept in the settings (and so in the point's id) as it always was
        sizes["train"] = check_int("train", s["train"], low=1)
    regime = Regime(kind, **sizes)
    res.update(sizes)
    decoding = Decoding(check_float("temperature", s["temperature"]), s.get("top_k"), s.get("top_p"))
    smoothing = check_float("smoothing", s["smoothing"], low=0.0, high=MAX_SMOOTHING)
    res.update(temperature=decoding.temperature, top_k=decoding.top_k, top_p=decoding.top_p, smoothing=smoothing,
               sampler=str(s["sampler"]))
    blob = json.dumps(res, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).hexdigest()
    # Derived columns for tables and phase diagrams (not part of the hash).
    size, frac = size_and_fraction(kind, res)
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


def as_spec(spec, overrides) -> Spec:
    """A :class:`Spec` from a TOML path, a dict, a list of point settings or a Spec (copied), with the non-None
    ``overrides`` (chains, generations, seed, memory in bytes, points_per_call, keep_final) applied."""
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
        elif k == "points_per_call":
            v = check_int("points_per_call", v, low=1)
        elif k == "keep_final":
            v = check_bool("keep_final", v)
        setattr(s, k, v)
    return s
