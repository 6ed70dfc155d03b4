"""A sweep's specification and its points: the TOML layout, the settings a point may set, and each point
resolved (by the resolver of ``jaxcollapse run``) to what :func:`jaxcollapse.simulate` or
:func:`jaxcollapse.simulate_trained` takes, with its key.

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

from ..engine.settings import REGIME_SIZES, STUDY_DEFAULTS, regime_sizes, size_and_fraction
from ..errors import ConfigError, check_bool, check_float, check_int
from ..io.study import TRAINING_KEYS, range_checks, resolve_study

#: Version of the point files and the sweep's fingerprint.
FORMAT_VERSION = 1

#: Settings a point may set (each a scalar; lists in a grid): those of ``jaxcollapse run`` that fix a study.
SETTINGS = ("regime", "initial", "vocab", "support", "exponent", "ratio", "concentration", "contexts",
            "initial_seed", "initial_file", "corpus", "order", "tokens", "max_vocab", "max_contexts", "synthetic",
            "real", "size", "fraction", "window", "train", "temperature", "top_k", "top_p", "smoothing", "sampler",
            "estimator", *TRAINING_KEYS, "sequence_length")
#: Settings that name a file (relative to the sweep file's directory).
PATH_SETTINGS = ("corpus", "initial_file")
#: Settings that give a regime's sample sizes: a grid's points mostly differ in these alone, and the rest of a
#: point (its truth, decoding, smoothing) is resolved once per distinct combination of the other settings.
SIZE_SETTINGS = ("size", *sorted({k for sizes in REGIME_SIZES.values() for k in sizes}))
#: Settings of the whole sweep.
SWEEP_KEYS = ("chains", "generations", "seed", "memory", "buckets", "points_per_call", "keep_final", "keep_traces",
              "plot")
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
      keep_traces: also keep every chain's metric traces ``(metrics, chains, generations + 1)`` per point.
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
    keep_traces: bool = False
    plot: dict = dataclasses.field(default_factory=dict)

    def fingerprint(self) -> dict:
        return {"format_version": FORMAT_VERSION, "chains": self.chains, "generations": self.generations,
                "seed": self.seed, "keep_final": bool(self.keep_final),
                **({"keep_traces": True} if self.keep_traces else {})}


def _check_setting(name: str, value, where: str):
    if name not in SETTINGS:
        raise ConfigError(f"{where}: unknown setting {name!r}; allowed: {', '.join(SETTINGS)}")
    if isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"{where}: setting {name} must be a single value here, got {value!r}")
    return value


def spec_from_dict(data: dict, *, where: str = "sweep", folder: str | None = None) -> Spec:
    """A :class:`Spec` from a TOML-like dict (see the README's "Sweeps" section).

    Top-level keys: sweep settings (:data:`SWEEP_KEYS`; ``memory`` in MiB) and base point settings
    (:data:`SETTINGS`). ``grid``: a table (or array of tables) of lists whose product gives points; ``points``:
    an array of tables, each one more point. Every point is the base settings updated by its own values.
    Relative file names (:data:`PATH_SETTINGS`) are relative to the directory ``folder`` (default: the current one).
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
    if folder is not None:
        for point in points:
            for k in PATH_SETTINGS:
                if isinstance(point.get(k), str):
                    point[k] = os.path.normpath(os.path.join(folder, os.path.expanduser(point[k])))
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
                keep_final=check_bool("keep_final", top.get("keep_final", False)),
                keep_traces=check_bool("keep_traces", top.get("keep_traces", False)), plot=dict(plot))


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
    return spec_from_dict(data, where=os.path.basename(path), folder=os.path.dirname(os.path.realpath(path)))


# ------------------------------------------------------------------------------------------------
# one point: resolved settings, key, (config, params)


@dataclasses.dataclass(slots=True)
class Point:
    """One resolved grid point.

    Attributes:
      index: position in the sweep.  id: 12 hex digits of the hash of ``settings`` (file name).
      settings: resolved settings (JSON-friendly; ``size`` and ``fraction`` always filled in: the training-set
        size of generations ``m >= 2`` and its synthetic share, as requested when both were given).
      fold: the 31-bit number folded into the sweep key to give the point's key.
      initial, regime, decoding, smoothing, sampler: what :func:`jaxcollapse.simulate` takes.
      corpus: the :class:`~jaxcollapse.Corpus` of a ``corpus`` point (else None).
      trained: whether the point runs as :func:`jaxcollapse.simulate_trained` does (``estimator`` softmax or
        embedding, or regime autoregressive; its estimator and training in ``settings``).
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
    corpus: object = None
    trained: bool = False

    def build(self, generations: int, memo: dict | None = None):
        """The point's static ``Config`` and traced ``Params`` (call inside ``jax.enable_x64(True)``); ``memo``: a
        dict kept over the points of a sweep (see :func:`jaxcollapse.core.count.build`)."""
        if self.trained:
            from ..core import trained
            from ..io.study import training

            return trained.build(self.initial if self.corpus is None else self.corpus, self.regime,
                                 generations=generations, estimator=self.settings["estimator"],
                                 training=training(self.settings))
        from ..core import count

        return count.build(self.initial, self.regime, generations=generations, decoding=self.decoding,
                           smoothing=self.smoothing, sampler=self.sampler, memo=memo)


_SETTINGS = frozenset(SETTINGS)
_PLAIN = (str, int, float, bool)
#: ``json.dumps(x, sort_keys=True, separators=(",", ":"))``, the encoder built once.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _resolve_study(given: dict, cache: dict | None):
    """``resolve_study(given)``, the parts that do not depend on the sizes taken from ``cache`` when a point with
    the same other settings was resolved before (its truth, decoding and smoothing; only the sizes and the
    regime are checked and built again). Trained points are resolved whole."""
    key = tuple([(k, type(v), v) for k, v in given.items() if k not in SIZE_SETTINGS])
    combo = None if cache is None else cache.get(key)
    if combo is None:
        study = resolve_study(given)
        if cache is not None and not study.trained:
            res = study.resolved
            taken = [k for k in REGIME_SIZES[res["regime"]] if k in res]
            first = list(res).index(taken[0])
            head = {k: v for k, v in list(res.items())[:first] if k not in taken}
            tail = {k: v for k, v in list(res.items())[first:] if k not in taken}
            defaults = {} if study.corpus is None else {"synthetic": study.corpus.events, "real": study.corpus.events}
            cache[key] = (study, head, tail, defaults)
        return study
    study, head, tail, defaults = combo
    checked = cache.setdefault("checked sizes", set())     # range_checks passed by each (size setting, value)
    new = {k: given[k] for k in SIZE_SETTINGS if k in given and (k, type(given[k]), given[k]) not in checked}
    if new:
        range_checks(new)
        checked.update((k, type(v), v) for k, v in new.items())
    found = regime_sizes(head["regime"], given, defaults)
    return study._replace(resolved={**head, **found, **tail}, regime=type(study.regime)(head["regime"], **found))


def resolve_point(settings: dict, index: int = 0, cache: dict | None = None) -> Point:
    """Validate one point's settings and build what ``simulate`` (or ``simulate_trained``) takes, with the
    resolver of ``jaxcollapse run`` (:func:`jaxcollapse.io.study.resolve_study`); ConfigError naming the bad
    setting. Sizes have no defaults (a corpus's: its events, as in ``run``); files are hashed by content.
    ``cache``: a dict shared by the points of one sweep, so that each distinct combination of the settings other
    than :data:`SIZE_SETTINGS` is resolved (its truth built, its files hashed) once."""
    given = {k: v if type(v) in _PLAIN or not isinstance(v, os.PathLike) else os.fspath(v)
             for k, v in settings.items() if v is not None}
    for k, v in given.items():
        if k not in _SETTINGS or type(v) not in _PLAIN:
            _check_setting(k, v, f"point {index}")
    study = _resolve_study(given, cache)
    res = study.resolved
    kind = res["regime"]
    if given.get("train") is not None and "train" not in res:
        # unused by this regime, but kept in the settings (and so in the point's id) as it always was
        res["train"] = check_int("train", given["train"], low=1)
    res["sampler"] = given.get("sampler", DEFAULTS["sampler"])
    hashed = dict(res)
    if study.corpus is not None:
        hashed["corpus"] = study.corpus.sha256
    if "initial_file" in res:
        path = res["initial_file"]
        digests = {} if cache is None else cache.setdefault("file digests", {})
        hashed["initial_file"] = digests.get(path) or digests.setdefault(path, _file_digest(path))
    blob = _ENCODE(hashed)
    digest = hashlib.sha256(blob.encode()).hexdigest()
    # Derived columns for tables and phase diagrams (not part of the hash).
    size, frac = size_and_fraction(kind, res)
    if settings.get("size") is not None and settings.get("fraction") is not None:
        frac = float(settings["fraction"])          # as requested (n / (N + n) is rounded to whole samples)
    res["size"], res["fraction"] = size, float(frac)
    return Point(index, digest[:12], res, int(digest[:8], 16) & 0x7FFFFFFF, study.initial, study.regime,
                 study.decoding, res["smoothing"], res["sampler"], study.corpus, study.trained)


def resolve(spec: Spec) -> list:
    """Resolve every point of ``spec``; ConfigError on a bad or duplicated point."""
    points, seen, cache = [], {}, {}
    for i, s in enumerate(spec.points):
        try:
            p = resolve_point(s, i, cache)
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
    ``overrides`` (chains, generations, seed, memory in bytes, points_per_call, keep_final, keep_traces) applied."""
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
        elif k in ("keep_final", "keep_traces"):
            v = check_bool(k, v)
        setattr(s, k, v)
    return s
