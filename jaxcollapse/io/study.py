"""A study's settings resolved into what :func:`jaxcollapse.simulate` and :func:`jaxcollapse.simulate_trained`
take: the truth (a family of :mod:`jaxcollapse.engine.settings`, a file, or a corpus's n-gram table), the regime
and its sizes, decoding and smoothing, the estimator and its training.

:func:`resolve_study` is the one resolver behind ``jaxcollapse run`` (flags and config files,
:func:`jaxcollapse.cli.settings.resolve`) and sweep points (:func:`jaxcollapse.sweeps.spec.resolve_point`); its
messages name a setting through the caller's ``name`` (a flag on the command line, the key in a sweep). Imports
no JAX and no NumPy until it runs.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..engine.settings import STUDY_DEFAULTS, initial_distribution, regime_sizes
from ..errors import MAX_SMOOTHING, MIN_TEMPERATURE, ConfigError, check_bool, check_float, check_int

#: Trained-estimator settings: key -> field of :class:`jaxcollapse.Training`.
TRAINING_KEYS = {"optimizer": "optimizer", "learning_rate": "learning_rate", "steps": "steps", "batch": "batch",
                 "weight_decay": "weight_decay", "label_smoothing": "label_smoothing", "embedding_dim": "dim",
                 "hidden": "hidden", "combine": "combine", "warm_start": "warm_start", "floor": "floor"}
#: Settings whose values are strings (file paths included).
TEXT_KEYS = ("regime", "initial", "initial_file", "corpus", "tokens", "estimator", "optimizer", "combine",
             "sampler")
#: Defaults of the settings that are not sizes (the command line's option table has the same values).
DEFAULTS = {**STUDY_DEFAULTS, "order": 2, "tokens": "chars", "max_vocab": 1000, "max_contexts": 1000,
            "estimator": "count"}


class Study(NamedTuple):
    """A study's resolved settings and what they build.

    Attributes:
      resolved: the settings that matter for this study, JSON-friendly (regime, initial, the truth's settings,
        estimator and training when trained, sizes, temperature, top_k, top_p, smoothing).
      initial: the :class:`~jaxcollapse.Initial`.  regime: a Regime (or an autoregressive regime).
      decoding: a :class:`~jaxcollapse.Decoding`.  corpus: the :class:`~jaxcollapse.Corpus` or None.
      describe: one line on the truth.  trained: whether it runs on :func:`jaxcollapse.simulate_trained`
        (``estimator`` softmax or embedding, or regime autoregressive).
    """

    resolved: dict
    initial: object
    regime: object
    decoding: object
    corpus: object
    describe: str
    trained: bool


def _same(key: str) -> str:
    return key


def range_checks(cfg: dict, name=_same) -> None:
    """Check every value given, whether or not the chosen regime or distribution uses it."""
    positive_int = ("chains", "generations", "vocab", "support", "contexts", "synthetic", "real", "window",
                    "train", "chunk_size", "top_k", "order", "max_contexts")
    for k in positive_int:
        if cfg.get(k) is not None:
            check_int(name(k), cfg[k], low=1)
    for k in ("seed", "initial_seed"):
        if cfg.get(k) is not None:
            check_int(name(k), cfg[k], low=0, high=2**63 - 1)
    if cfg.get("max_vocab") is not None:
        check_int(name("max_vocab"), cfg["max_vocab"], low=2)
    floats = {
        "fraction": dict(low=0.0, high=1.0), "temperature": dict(low=MIN_TEMPERATURE),
        "top_p": dict(low=0.0, high=1.0, low_open=True), "smoothing": dict(low=0.0, high=MAX_SMOOTHING),
        "exponent": dict(low=0.0), "ratio": dict(low=0.0, high=1.0, low_open=True),
        "concentration": dict(low=0.0, low_open=True), "memory": dict(low=0.0, low_open=True),
    }
    for k, rng in floats.items():
        if cfg.get(k) is not None:
            check_float(name(k) + (" (MiB)" if k == "memory" else ""), cfg[k], **rng)
    for k in TEXT_KEYS:
        if cfg.get(k) is not None and not isinstance(cfg[k], str):
            raise ConfigError(f"{name(k)} must be a string, got {cfg[k]!r}")


def initial_from_file(path: str):
    """The :class:`~jaxcollapse.Initial` of a ``.npy``, ``.npz`` (``probs``, optional ``weights``), ``.csv`` or
    ``.txt`` file; ConfigError naming the file for a missing, unreadable or invalid one."""
    import numpy as np

    from ..core.initial import table

    if not os.path.exists(path):
        raise ConfigError(f"initial file {path} not found")
    if os.path.isdir(path):
        raise ConfigError(f"initial file {path} is a directory")
    ext = os.path.splitext(path)[1].lower()
    weights = None
    try:
        if ext == ".npy":
            probs = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "probs" not in z.files:
                    raise ConfigError(f"initial file {path} must hold an array named 'probs' (and optionally "
                                      f"'weights'); found {', '.join(z.files) or 'nothing'}")
                probs = z["probs"]
                weights = z["weights"] if "weights" in z.files else None
        elif ext in (".csv", ".txt", ".tsv", ".dat", ""):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
            probs = np.loadtxt(path, delimiter="," if "," in first else None, ndmin=1, comments="#")
        else:
            raise ConfigError(f"initial file {path}: unknown extension {ext!r} (use .npy, .npz, .csv or .txt)")
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(f"initial file {path} is not a UTF-8 text file") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read initial file {path}: {' '.join(str(e).split())}") from None
    if np.size(probs) == 0:
        raise ConfigError(f"initial file {path} is empty")
    try:
        return table(probs, weights)
    except ConfigError as e:
        raise ConfigError(f"initial file {path}: {e}") from None


def _trained_regime(cfg: dict, kind: str, sizes: dict, res: dict, name):
    """Check the trained-estimator settings of ``cfg``, record them in ``res`` and return the regime."""
    from ..core import autoregressive as ar
    from ..core.regimes import Regime
    from ..core.trained import ESTIMATORS, Training

    estimator = cfg.get("estimator") or "count"
    if estimator not in ESTIMATORS:
        raise ConfigError(f"{name('estimator')} must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
    res["estimator"] = estimator
    defaults = Training()
    if estimator != "count":
        values = {}
        for key, field in TRAINING_KEYS.items():
            value = cfg.get(key)
            value = getattr(defaults, field) if value is None else value
            if key == "learning_rate":
                check_float(name(key), value, low=0.0, low_open=True)
            elif key in ("steps", "embedding_dim"):
                check_int(name(key), value, low=1, high=1 << 24)
            elif key in ("batch", "hidden"):
                check_int(name(key), value, low=0, high=1 << 26)
            elif key == "weight_decay":
                check_float(name(key), value, low=0.0)
            elif key in ("label_smoothing", "floor"):
                check_float(name(key), value, low=0.0, high=1.0, high_open=True)
            elif key == "warm_start":
                check_bool(name(key), value)
            values[field] = value
            res[key] = value
        Training(**values)
    if kind == "autoregressive":
        length = cfg.get("sequence_length")
        length = check_int(name("sequence_length"), ar.DEFAULT_LENGTH if length is None else length, low=1,
                           high=1 << 20)
        res["sequence_length"] = length
        return ar.autoregressive(sizes["synthetic"], sizes["fraction"], length)
    return Regime(kind, **sizes)


def training(res: dict):
    """The :class:`jaxcollapse.Training` of resolved settings."""
    from ..core.trained import Training

    if res.get("estimator", "count") == "count":
        return Training()
    return Training(**{field: res[key] for key, field in TRAINING_KEYS.items()})


def resolve_study(cfg: dict, *, defaults: dict | None = None, sizes: dict | None = None, name=_same) -> Study:
    """Check the settings ``cfg`` of one study and build its truth, regime and decoding.

    Args:
      cfg: the settings given (keys of the command line's option table; None counts as not given).
      defaults: the caller's defaults of settings that are not sizes (over :data:`DEFAULTS`).
      sizes: defaults of the regime's sizes (a corpus's events replace those of ``synthetic`` and ``real``).
      name: a setting's name in messages.

    The truth is the corpus's n-gram table when ``corpus`` is given (``initial`` left out or ``"corpus"``), the
    table of ``initial_file`` (``initial`` left out or ``"file"``), else the family ``initial``.
    """
    from ..core.regimes import Decoding, Regime
    from .corpus import load_corpus

    range_checks(cfg, name)
    defaults = {**DEFAULTS, **(defaults or {})}

    def get(key):
        return defaults.get(key) if cfg.get(key) is None else cfg[key]

    # which distribution
    if cfg.get("corpus") is not None:
        if cfg.get("initial") not in (None, "corpus"):
            raise ConfigError(f"{name('corpus')} builds the initial distribution from the text; drop {name('initial')}")
        if cfg.get("initial_file") is not None:
            raise ConfigError(f"give either {name('corpus')} or {name('initial_file')}, not both")
        source = "corpus"
    elif cfg.get("initial_file") is not None:
        if cfg.get("initial") not in (None, "file"):
            raise ConfigError(f"{name('initial_file')} needs {name('initial')} file (got {name('initial')} "
                              f"{cfg['initial']})")
        source = "file"
    else:
        source = get("initial")
        if source == "file":
            raise ConfigError(f"{name('initial')} file needs {name('initial_file')} FILE")
    kind = get("regime")
    res = {"regime": kind, "initial": source}
    corpus = None
    if source == "corpus":
        corpus = load_corpus(cfg["corpus"], get("order"), get("tokens"), get("max_vocab"), get("max_contexts"))
        initial = corpus.initial
        res.update(corpus=corpus.path, order=corpus.order, tokens=corpus.tokenizer, max_vocab=get("max_vocab"),
                   max_contexts=get("max_contexts"))
        describe = corpus.describe()
    elif source == "file":
        path = os.path.abspath(cfg["initial_file"])
        initial = initial_from_file(path)
        res["initial_file"] = path
        c, v = initial.probs.shape
        describe = f"{os.path.basename(path)} ({c} context{'s' if c > 1 else ''} × {v} tokens)"
    else:
        initial, used, describe = initial_distribution(source, cfg)
        res.update(used)
    # sizes, regime, estimator
    size_defaults = dict(sizes or {})
    if corpus is not None:
        size_defaults.update(synthetic=corpus.events, real=corpus.events)
    found = regime_sizes(kind, cfg, size_defaults)
    trained = kind == "autoregressive" or get("estimator") != "count"
    regime = _trained_regime(cfg, kind, found, res, name) if trained else Regime(kind, **found)
    res.update(found)
    # decoding and smoothing
    temperature = check_float(name("temperature"), get("temperature"), low=MIN_TEMPERATURE)
    decoding = Decoding(temperature, cfg.get("top_k"), cfg.get("top_p"))
    smoothing = check_float(name("smoothing"), get("smoothing"), low=0.0, high=MAX_SMOOTHING)
    if trained and decoding.active:
        raise ConfigError(f"{name('temperature')}, {name('top_k')} and {name('top_p')} are not available with "
                          f"{name('estimator')} softmax|embedding or {name('regime')} autoregressive")
    if trained and smoothing:
        raise ConfigError(f"{name('smoothing')} is not available with {name('estimator')} softmax|embedding or "
                          f"{name('regime')} autoregressive (use {name('label_smoothing')})")
    res.update(temperature=temperature, top_k=cfg.get("top_k"), top_p=cfg.get("top_p"), smoothing=smoothing)
    return Study(res, initial, regime, decoding, corpus, describe, trained)
