"""A sweep's files: the point files, the tables rebuilt from them and the manifest.

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
import datetime
import io
import json
import math
import os
import sys

import numpy as np

from ..errors import ConfigError
from .plan import Plan
from .spec import FORMAT_VERSION, Point, Spec

MARKER = "jaxcollapse_sweep"
SPEC_FILE = "sweep.json"
POINTS_DIR = "points"
TABLE = "table.csv"
POINTS_CSV = "points.csv"
MANIFEST = "manifest.json"


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
