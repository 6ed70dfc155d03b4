"""The settings of ``jaxcollapse run`` (and of ``plan``'s pilot): config file and flags merged, defaulted, checked
and turned into what :func:`jaxcollapse.simulate` takes (:func:`resolve`), and back into a command line
(:func:`rerun_command`). The size and initial-distribution rules are those of sweeps
(:mod:`jaxcollapse.engine.settings`). Imports no JAX and no NumPy until :func:`resolve` runs.
"""

from __future__ import annotations

import os
import shlex
from typing import NamedTuple

from ..engine.host import estimator_text
from ..errors import MAX_SMOOTHING, MIN_TEMPERATURE, ConfigError, check_float, check_int
from .options import (BY_KEY, CORPUS_CHAINS, DEFAULT_CHAINS, DISTRIBUTION_KEYS, INITIAL_KEYS, OPTIONS, PROG,
                      REGIME_KEYS, SIZE_KEYS, TRAINED_KEYS, Opt, flag_name, one_line)

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml


class RunSettings(NamedTuple):
    """A run's resolved settings and what they build."""

    resolved: dict          # effective settings (only those that matter for this study)
    given: dict             # flags and config file, as given
    initial: object         # jaxcollapse.Initial
    regime: object
    decoding: object
    corpus: object          # Corpus or None
    describe_initial: str
    keep_final: bool
    warnings: list


def _get(cfg: dict, key: str):
    """The value of a setting: given, else the default of the option table."""
    return cfg.get(key, BY_KEY[key].default)


def _range_checks(cfg: dict) -> None:
    """Check every value given, whether or not the chosen regime or distribution uses it."""
    positive_int = ("chains", "generations", "vocab", "support", "contexts", "synthetic", "real", "window",
                    "train", "chunk_size", "top_k", "order", "max_contexts")
    for k in positive_int:
        if cfg.get(k) is not None:
            check_int(flag_name(k), cfg[k], low=1)
    for k in ("seed", "initial_seed"):
        if cfg.get(k) is not None:
            check_int(flag_name(k), cfg[k], low=0, high=2**63 - 1)
    if cfg.get("max_vocab") is not None:
        check_int(flag_name("max_vocab"), cfg["max_vocab"], low=2)
    floats = {
        "fraction": dict(low=0.0, high=1.0), "temperature": dict(low=MIN_TEMPERATURE),
        "top_p": dict(low=0.0, high=1.0, low_open=True), "smoothing": dict(low=0.0, high=MAX_SMOOTHING), "exponent": dict(low=0.0),
        "ratio": dict(low=0.0, high=1.0, low_open=True), "concentration": dict(low=0.0, low_open=True),
        "memory": dict(low=0.0, low_open=True),
    }
    for k, rng in floats.items():
        if cfg.get(k) is not None:
            check_float(flag_name(k) + (" (MiB)" if k == "memory" else ""), cfg[k], **rng)


# ------------------------------------------------------------------------------------------------
# config files


def load_config(path: str) -> dict:
    """Read a TOML config: keys are the long flag names (``top_k`` or ``top-k``); relative paths are relative
    to the file's directory. ConfigError for unreadable or invalid files, unknown keys and wrong types."""
    try:
        with open(path, "rb") as f:
            data = _toml.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except _toml.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in config file {path}: {one_line(str(e))}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not valid UTF-8") from None
    base = os.path.dirname(os.path.abspath(path))
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        opt = BY_KEY.get(key)
        if opt is None:
            known = ", ".join(o.key for o in OPTIONS)
            raise ConfigError(f"unknown key {raw_key!r} in config file {path} (known keys: {known})")
        out[key] = _typed(opt, value, f"config key {raw_key!r} in {path}")
        if opt.kind == "path":
            out[key] = os.path.normpath(os.path.join(base, os.path.expanduser(out[key])))
    return out


def _typed(opt: Opt, value, where: str):
    if opt.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif opt.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
    elif opt.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        if opt.choices and value not in opt.choices:
            raise ConfigError(f"{where} must be one of {', '.join(opt.choices)}; got {value!r}")
    return value


def _initial_from_file(path: str):
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
        raise ConfigError(f"cannot read initial file {path}: {one_line(e)}") from None
    if np.size(probs) == 0:
        raise ConfigError(f"initial file {path} is empty")
    try:
        return table(probs, weights)
    except ConfigError as e:
        raise ConfigError(f"initial file {path}: {e}") from None


# ------------------------------------------------------------------------------------------------
# trained estimators and autoregressive generation (``--estimator softmax|embedding``, ``--regime autoregressive``)

#: run settings of the trained estimators: key -> (flag, field of :class:`jaxcollapse.Training`).
TRAINING_FLAGS = {"optimizer": ("--optimizer", "optimizer"), "learning_rate": ("--learning-rate", "learning_rate"),
                  "steps": ("--steps", "steps"), "batch": ("--batch", "batch"),
                  "weight_decay": ("--weight-decay", "weight_decay"),
                  "label_smoothing": ("--label-smoothing", "label_smoothing"),
                  "embedding_dim": ("--embedding-dim", "dim"), "hidden": ("--hidden", "hidden"),
                  "combine": ("--combine", "combine"), "warm_start": ("--warm-start", "warm_start"),
                  "floor": ("--floor", "floor")}


def _trained_regime(cfg: dict, kind: str, sizes: dict, res: dict):
    """Check the trained-estimator settings of ``cfg`` (flag names in messages), record them in ``res`` and
    return the regime."""
    from ..core import autoregressive as ar
    from ..core.regimes import Regime
    from ..core.trained import Training

    estimator = cfg.get("estimator", "count")
    res["estimator"] = estimator
    defaults = Training()
    if estimator != "count":
        values = {}
        for key, (flag, field) in TRAINING_FLAGS.items():
            value = cfg.get(key, getattr(defaults, field))
            if key == "learning_rate":
                check_float(flag, value, low=0.0, low_open=True)
            elif key in ("steps", "embedding_dim"):
                check_int(flag, value, low=1, high=1 << 24)
            elif key in ("batch", "hidden"):
                check_int(flag, value, low=0, high=1 << 26)
            elif key == "weight_decay":
                check_float(flag, value, low=0.0)
            elif key in ("label_smoothing", "floor"):
                check_float(flag, value, low=0.0, high=1.0, high_open=True)
            values[field] = value
            res[key] = value
        Training(**values)
    if kind == "autoregressive":
        length = check_int("--sequence-length", cfg.get("sequence_length", ar.DEFAULT_LENGTH), low=1, high=1 << 20)
        res["sequence_length"] = length
        return ar.autoregressive(sizes["synthetic"], sizes["fraction"], length)
    return Regime(kind, **sizes)


def training(res: dict):
    """The :class:`jaxcollapse.Training` of resolved settings."""
    from ..core.trained import Training

    if res["estimator"] == "count":
        return Training()
    return Training(**{field: res[key] for key, (_, field) in TRAINING_FLAGS.items()})


# ------------------------------------------------------------------------------------------------
# resolving a run's settings


def resolve(flags: dict, config_path: str | None) -> RunSettings:
    """Merge config file and flags, apply defaults, validate, build the initial distribution and regime."""
    from ..core.regimes import Decoding, Regime
    from ..engine.settings import initial_distribution, regime_sizes
    from ..io.corpus import load_corpus

    file_cfg = load_config(config_path) if config_path else {}
    cfg = {**file_cfg, **{k: v for k, v in flags.items() if v is not None}}
    given = {"flags": {k: v for k, v in flags.items() if v is not None}, "config_file": config_path,
             "config_file_settings": file_cfg or None}
    _range_checks(cfg)
    warnings = []
    # which distribution
    if cfg.get("corpus") is not None:
        if cfg.get("initial") is not None:
            raise ConfigError("--corpus builds the initial distribution from the text; drop --initial")
        if cfg.get("initial_file") is not None:
            raise ConfigError("give either --corpus or --initial-file, not both")
        source = "corpus"
    elif cfg.get("initial_file") is not None:
        if cfg.get("initial", "file") != "file":
            raise ConfigError(f"--initial-file needs --initial file (got --initial {cfg['initial']})")
        source = "file"
    else:
        source = _get(cfg, "initial")
        if source == "file":
            raise ConfigError("--initial file needs --initial-file FILE")
    regime_kind = _get(cfg, "regime")
    res = {"regime": regime_kind, "initial": source}
    corpus = None
    seed = _get(cfg, "seed")
    if source == "corpus":
        corpus = load_corpus(cfg["corpus"], _get(cfg, "order"), _get(cfg, "tokens"), _get(cfg, "max_vocab"),
                             _get(cfg, "max_contexts"))
        initial = corpus.initial
        res.update(corpus=corpus.path, order=corpus.order, tokens=corpus.tokenizer,
                   max_vocab=_get(cfg, "max_vocab"), max_contexts=_get(cfg, "max_contexts"))
        describe = corpus.describe()
    elif source == "file":
        path = os.path.abspath(cfg["initial_file"])
        initial = _initial_from_file(path)
        res["initial_file"] = path
        c, v = initial.probs.shape
        describe = f"{os.path.basename(path)} ({c} context{'s' if c > 1 else ''} × {v} tokens)"
    else:
        initial, used, describe = initial_distribution(source, {**cfg, "initial_seed": cfg.get("initial_seed", seed)})
        res.update(used)
    used = set(INITIAL_KEYS[source])
    for k in DISTRIBUTION_KEYS:
        if k in cfg and k not in used and k in flags and flags[k] is not None:
            warnings.append(f"--{k.replace('_', '-')} is not used by --initial {source}; ignored")
    # sizes
    needs = REGIME_KEYS[regime_kind]
    defaults = {k: BY_KEY[k].default if corpus is None else corpus.events for k in ("synthetic", "real")}
    defaults.update(window=BY_KEY["window"].default,
                    fraction=1.0 if regime_kind == "autoregressive" else BY_KEY["fraction"].default)
    sizes = regime_sizes(regime_kind, cfg, defaults)
    for k in SIZE_KEYS:
        if k in flags and flags[k] is not None and k not in needs:
            warnings.append(f"--{k if k != 'synthetic' else 'synthetic/-n'} is not used by regime {regime_kind}; "
                            "ignored")
    if regime_kind == "autoregressive" or _get(cfg, "estimator") != "count":
        regime = _trained_regime(cfg, regime_kind, sizes, res)
        if cfg.get("traces") is False:
            warnings.append("--no-traces is not available with --estimator softmax|embedding or --regime "
                            "autoregressive; the traces are kept")
    else:
        regime = Regime(regime_kind, **sizes)
        warnings += [f"{BY_KEY[k].flags[0]} applies to --estimator softmax|embedding or --regime autoregressive; "
                     "ignored" for k in TRAINED_KEYS if flags.get(k) is not None]
    res.update(sizes)
    temperature = _get(cfg, "temperature")
    decoding = Decoding(temperature, cfg.get("top_k"), cfg.get("top_p"))
    res.update(temperature=temperature, top_k=cfg.get("top_k"), top_p=cfg.get("top_p"),
               smoothing=_get(cfg, "smoothing"))
    res.update(chains=cfg.get("chains", CORPUS_CHAINS if corpus is not None else DEFAULT_CHAINS),
               generations=_get(cfg, "generations"), seed=seed, sampler=_get(cfg, "sampler"),
               chunk_size=cfg.get("chunk_size"), memory=_get(cfg, "memory"),
               per_context=cfg.get("per_context", corpus is not None),
               traces=_get(cfg, "traces"), final=cfg.get("final"), plots=_get(cfg, "plots"))
    res["devices"] = _devices_setting(cfg.get("devices"))
    c, v = initial.probs.shape
    keep_final = res["final"] if res["final"] is not None else res["chains"] * c * v * 8 <= 1 << 29
    return RunSettings(res, given, initial, regime, decoding, corpus, describe, bool(keep_final), warnings)


def _devices_setting(value) -> str | None:
    """``--devices``: ``all`` or a positive number of devices (checked against the devices JAX sees at run time)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--devices must be 'all' or a number of devices >= 1; got {value!r}")
    return str(n)


def describe_fit(res: dict) -> str:
    """How a run fits each generation, for its header: ``"estimator embedding, floor 1e-06"`` for a trained run
    (``--estimator``, ``--floor``), ``"estimator count"`` for counting under ``--regime autoregressive``, ``""``
    for the counting engine."""
    return estimator_text(res.get("estimator"), res.get("floor"))


def default_out_name(res: dict) -> str:
    """The name part of a run's default results directory: the regime, and for a trained run the estimator
    and the floor (``"autoregressive-embedding-floor1e-06"``)."""
    parts = [str(res["regime"])]
    if res.get("estimator") is not None:
        parts.append(str(res["estimator"]))
        if res.get("floor") is not None and res["estimator"] != "count":
            parts.append(f"floor{res['floor']:g}")
    return "-".join(parts)


def rerun_command(res: dict) -> str:
    """A self-contained command line for the resolved settings (no config file; a new output directory)."""
    parts = [PROG, "run"]
    for opt in OPTIONS:
        if opt.key not in res or opt.key in ("out", "overwrite", "quiet"):
            continue
        value = res[opt.key]
        if value is None:
            continue
        flag = opt.flags[-1] if opt.flags[-1].startswith("--") else opt.flags[0]
        if opt.key == "synthetic":
            flag = "-n"
        if opt.kind == "bool":
            if value != opt.default:
                parts.append(flag if value else "--no-" + flag[2:])
            continue
        if opt.key == "initial" and value == "corpus":
            continue
        if opt.key == "initial" and value == "file":
            continue
        parts += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(parts)
