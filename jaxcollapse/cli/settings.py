"""The settings of ``jaxcollapse run`` (and of ``plan``'s pilot): config file and flags merged, defaulted, checked
and turned into what :func:`jaxcollapse.simulate` takes (:func:`resolve`), and back into a command line
(:func:`rerun_command`). The study's settings are resolved as a sweep point's are
(:func:`jaxcollapse.io.study.resolve_study`). Imports no JAX and no NumPy until :func:`resolve` runs.
"""

from __future__ import annotations

import os
import shlex
from typing import NamedTuple

from ..engine.host import estimator_text
from ..errors import ConfigError
from ..io.study import initial_from_file as _initial_from_file  # noqa: F401  (re-exported)
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


# ------------------------------------------------------------------------------------------------
# resolving a run's settings


def resolve(flags: dict, config_path: str | None) -> RunSettings:
    """Merge config file and flags, apply defaults, validate, build the initial distribution and regime (the
    study's settings by :func:`jaxcollapse.io.study.resolve_study`, messages naming the flags)."""
    from ..io.study import resolve_study

    file_cfg = load_config(config_path) if config_path else {}
    cfg = {**file_cfg, **{k: v for k, v in flags.items() if v is not None}}
    given = {"flags": {k: v for k, v in flags.items() if v is not None}, "config_file": config_path,
             "config_file_settings": file_cfg or None}
    seed = _get(cfg, "seed")
    regime_kind = _get(cfg, "regime")
    sizes = {k: BY_KEY[k].default for k in ("synthetic", "real", "window")}
    sizes["fraction"] = 1.0 if regime_kind == "autoregressive" else BY_KEY["fraction"].default
    study = resolve_study({**cfg, "initial_seed": cfg.get("initial_seed", seed)},
                          defaults={o.key: o.default for o in OPTIONS if o.default is not None}, sizes=sizes,
                          name=flag_name)
    res, corpus = study.resolved, study.corpus
    source = res["initial"]
    warnings = []
    used = set(INITIAL_KEYS[source])
    for k in DISTRIBUTION_KEYS:
        if k in cfg and k not in used and k in flags and flags[k] is not None:
            warnings.append(f"--{k.replace('_', '-')} is not used by --initial {source}; ignored")
    needs = REGIME_KEYS[regime_kind]
    for k in SIZE_KEYS:
        if k in flags and flags[k] is not None and k not in needs:
            warnings.append(f"--{k if k != 'synthetic' else 'synthetic/-n'} is not used by regime {regime_kind}; "
                            "ignored")
    if study.trained:
        if cfg.get("traces") is False:
            warnings.append("--no-traces is not available with --estimator softmax|embedding or --regime "
                            "autoregressive; the traces are kept")
    else:
        warnings += [f"{BY_KEY[k].flags[0]} applies to --estimator softmax|embedding or --regime autoregressive; "
                     "ignored" for k in TRAINED_KEYS if flags.get(k) is not None]
    res.update(chains=cfg.get("chains", CORPUS_CHAINS if corpus is not None else DEFAULT_CHAINS),
               generations=_get(cfg, "generations"), seed=seed, sampler=_get(cfg, "sampler"),
               chunk_size=cfg.get("chunk_size"), memory=_get(cfg, "memory"),
               per_context=cfg.get("per_context", corpus is not None),
               traces=_get(cfg, "traces"), final=cfg.get("final"), plots=_get(cfg, "plots"),
               pdf=_get(cfg, "pdf"))
    res["devices"] = _devices_setting(cfg.get("devices"))
    c, v = study.initial.probs.shape
    keep_final = res["final"] if res["final"] is not None else res["chains"] * c * v * 8 <= 1 << 29
    return RunSettings(res, given, study.initial, study.regime, study.decoding, corpus, study.describe,
                       bool(keep_final), warnings)


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
