"""Reading a run directory's files back, checked: the manifest (its marker and ``format_version``), ``summary.csv``,
``traces.npz`` and ``collapse.csv``. Whatever is wrong with a file (empty, truncated, not the format, an array or
column missing, shapes that disagree with the manifest, a newer format) is a ConfigError ``<path>: <what is
wrong>``, never a traceback of the parser underneath.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import zipfile
import zlib

import numpy as np

from ..errors import ConfigError

MANIFEST = "manifest.json"
MARKER = "jaxcollapse_run"
#: 2: a censored chain's ``collapse_time`` in ``collapse.csv`` is empty (1: the last generation). Both are read.
FORMAT_VERSION = 2
SUMMARY_COLUMNS = ("generation", "metric", "mean", "sd", "ci_low", "ci_high", "n")
COLLAPSE_COLUMNS = ("chain", "collapse_time", "censored", "token")
#: Arrays every ``traces.npz`` holds (runs whose file lacks them fall back on ``collapse.csv``).
COLLAPSE_ARRAYS = ("collapse_time", "collapse_token", "context_collapse_time")


def _damaged(path: str, what) -> ConfigError:
    return ConfigError(f"{path}: {' '.join(str(what).split())}")


@contextlib.contextmanager
def _reading(path: str, what: str):
    """Turn the errors of reading ``path`` (I/O, parsing) into ConfigErrors naming it; ``what``: a parse error."""
    try:
        yield
    except ConfigError:
        raise
    except OSError as e:
        raise _damaged(path, e.strerror or e) from None
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise _damaged(path, f"{what} ({e})") from None


def read_run_manifest(directory: str) -> dict:
    """The manifest of the finished run in ``directory``, checked: the run marker, a ``format_version`` this
    version reads (1 to :data:`FORMAT_VERSION`), and ``chains``/``generations`` non-negative integers."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise ConfigError(f"{directory} is not a finished jaxcollapse run (no {MANIFEST}; an interrupted run "
                          "leaves none)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise _damaged(path, e.strerror or e) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise _damaged(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get(MARKER) != 1:
        raise _damaged(path, f"not a jaxcollapse run manifest (no \"{MARKER}\": 1)")
    version = data.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _damaged(path, f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise _damaged(path, f"format_version {version} is newer than this jaxcollapse reads (1 to "
                             f"{FORMAT_VERSION}); upgrade jaxcollapse to read it")
    for key in ("chains", "generations"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _damaged(path, f"{key} must be a non-negative integer, got {value!r}")
    return data


def read_summary_csv(path, generations: int | None = None) -> dict:
    """``summary.csv`` as {metric: Summary} (``infinite`` left at 0; :func:`load_run` fills it in); with
    ``generations``, every metric must have the rows ``0..generations``."""
    from ..engine.result import Summary     # JAX's import waits until a run is read

    path = os.fspath(path)
    rows = {}
    with _reading(path, "not a jaxcollapse summary"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise _damaged(path, "empty file")
            if not set(SUMMARY_COLUMNS) <= set(reader.fieldnames):
                raise _damaged(path, f"not a jaxcollapse summary (columns {', '.join(SUMMARY_COLUMNS)})")
            for r in reader:
                if any(r.get(k) in (None, "") for k in SUMMARY_COLUMNS):
                    raise _damaged(path, f"line {reader.line_num} is incomplete (truncated file?)")
                rows.setdefault(r["metric"], []).append(r)
        out = {}
        for metric, rs in rows.items():
            rs.sort(key=lambda r: int(r["generation"]))
            col = {k: np.array([float(r[k]) for r in rs]) for k in ("mean", "sd", "ci_low", "ci_high")}
            n = np.array([int(r["n"]) for r in rs], np.int64)
            if generations is not None and [int(r["generation"]) for r in rs] != list(range(generations + 1)):
                raise _damaged(path, f"metric {metric} has {len(rs)} rows, not generations 0..{generations} "
                                     f"(truncated file, or a manifest that does not match it)")
            out[metric] = Summary(col["mean"], col["sd"], col["ci_low"], col["ci_high"], n, np.zeros_like(n))
    if not out:
        raise _damaged(path, "no rows (truncated file?)")
    return out


def read_arrays(path) -> dict:
    """Every array of ``traces.npz`` (no pickles), read in full so that a damaged member fails here."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except OSError as e:
        raise _damaged(path, e.strerror or e) from None
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError) as e:
        what = "empty file" if os.path.getsize(path) == 0 else f"damaged or not a NumPy .npz file ({e})"
        raise _damaged(path, what) from None


def check_arrays(path, arrays: dict, chains: int, generations: int, metrics) -> None:
    """ConfigError naming ``path`` unless the collapse arrays have ``chains`` rows and the trace of each of
    ``metrics`` is ``(chains, generations + 1)``."""
    for name in COLLAPSE_ARRAYS:
        if name not in arrays:
            raise _damaged(path, f"the array {name} is missing")
        if arrays[name].shape[:1] != (chains,):
            raise _damaged(path, f"{name} has shape {arrays[name].shape}, not {chains} chains as the manifest says")
    for m in metrics:
        if arrays[m].shape != (chains, generations + 1):
            raise _damaged(path, f"the trace {m} has shape {arrays[m].shape}, not ({chains}, {generations + 1}) "
                                 "as the manifest says")


def read_collapse_csv(path) -> dict:
    """``collapse.csv`` as arrays ``{"chain", "collapse_time", "censored", "token"}`` (int64; ``censored`` bool),
    with ``collapse_time`` -1 for a censored chain whichever encoding wrote it (empty, or the last generation
    with ``censored = 1`` in runs of ``format_version`` 1). ConfigError if the file is not a collapse table."""
    path = os.fspath(path)
    cols = {k: [] for k in COLLAPSE_COLUMNS}
    with _reading(path, "cannot read it"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(COLLAPSE_COLUMNS) <= set(reader.fieldnames):
                raise _damaged(path, f"not a jaxcollapse collapse table (columns {', '.join(COLLAPSE_COLUMNS)})")
            for r in reader:
                if r["censored"] is None or r["token"] is None:
                    raise _damaged(path, f"line {reader.line_num} is incomplete (truncated file?)")
                censored = int(r["censored"]) != 0 or not r["collapse_time"].strip()
                cols["chain"].append(int(r["chain"]))
                cols["censored"].append(censored)
                cols["collapse_time"].append(-1 if censored else int(r["collapse_time"]))
                cols["token"].append(int(r["token"]))
    out = {k: np.asarray(v, np.int64) for k, v in cols.items() if k != "censored"}
    out["censored"] = np.asarray(cols["censored"], bool)
    return out
