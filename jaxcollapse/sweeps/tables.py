"""A sweep's tables: the summary rows (an Arrow table, the Parquet parts of the store), the CSV tables of
``jaxcollapse sweep-export``, each point's final-generation summary, the manifest, and the point files of the
earlier one-file-per-point layout (read only)."""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import math
import os
import sys

import numpy as np

from .spec import FORMAT_VERSION, SETTINGS, Spec

MARKER = "jaxcollapse_sweep"
#: Version of the store's layout (1: one ``points/<id>.npz`` per point).
STORE_FORMAT = 2
MANIFEST = "manifest.json"
TABLE = "table.csv"
POINTS_CSV = "points.csv"
POINTS_DIR = "points"            # the earlier layout

_SETTING_COLUMNS = ("regime", "initial", "vocab", "support", "exponent", "ratio", "concentration", "contexts",
                    "initial_seed", "size", "fraction", "synthetic", "real", "window", "train", "temperature",
                    "top_k", "top_p", "smoothing", "sampler")
_FLOAT_SETTINGS = {"exponent", "ratio", "concentration", "fraction", "temperature", "top_p", "smoothing"}
_INT_SETTINGS = {"vocab", "support", "contexts", "initial_seed", "size", "synthetic", "real", "window", "train",
                 "top_k"}

# ------------------------------------------------------------------------------------------------
# the summary rows (Parquet)


def setting_columns() -> list:
    """Every setting column of the summary table, in order (a column no point sets is left out on reading)."""
    return list(_SETTING_COLUMNS) + [k for k in SETTINGS if k not in _SETTING_COLUMNS]


def _arrow_column(name: str, values):
    import pyarrow as pa

    if name in _INT_SETTINGS:
        return pa.array(values, pa.int64())
    if name in _FLOAT_SETTINGS:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
                    pa.string())


def summary_table(points, records: dict):
    """The summary rows of ``points`` (those in ``records``) as a ``pyarrow.Table``: one row per (point,
    generation, metric), points in the given order, generations, then the record's metrics and ``collapsed``;
    columns ``point, id, <every setting>, generation, metric, mean, sd, ci_low, ci_high, n``."""
    import pyarrow as pa

    from ..stats.analysis import wilson_ci

    done = [p for p in points if p.index in records]
    cols = {k: [] for k in ("point", "generation", "metric", "mean", "sd", "ci_low", "ci_high", "n")}
    reps = []
    for p in done:
        rec = records[p.index]
        names = list(rec["metrics"]) + ["collapsed"]
        chains = int(np.asarray(rec["collapse_time"]).shape[0])
        frac = np.asarray(rec["collapsed"], np.float64)
        width = frac.shape[0]
        ci = wilson_ci(np.rint(frac * chains), chains)
        sd = np.sqrt(frac * (1 - frac) * chains / max(chains - 1, 1))
        for k, extra in (("mean", frac), ("sd", sd), ("ci_low", ci.low), ("ci_high", ci.high),
                         ("n", np.full(width, chains))):
            cols[k].append(np.concatenate([np.asarray(rec[k], np.float64), np.asarray(extra, np.float64)[None]],
                                          axis=0).T.ravel())
        nrow = width * len(names)
        reps.append(nrow)
        cols["point"].append(np.full(nrow, p.index, np.int64))
        cols["generation"].append(np.repeat(np.arange(width, dtype=np.int64), len(names)))
        cols["metric"].append(np.tile(np.array(names, dtype=object), width))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    data = {"point": pa.array(cat["point"], pa.int64()),
            "id": pa.array(np.repeat(np.array([p.id for p in done], dtype=object), reps), pa.string())}
    for c in setting_columns():
        data[c] = _arrow_column(c, np.repeat(np.array([p.settings.get(c) for p in done] + [None], dtype=object)[:-1],
                                             reps).tolist())
    data["generation"] = pa.array(cat["generation"], pa.int64())
    data["metric"] = pa.array(cat["metric"], pa.string())
    for k in ("mean", "sd", "ci_low", "ci_high"):
        data[k] = pa.array(cat[k], pa.float64())
    data["n"] = pa.array(cat["n"].astype(np.int64), pa.int64())
    return pa.table(data)


def table_frame(table):
    """A pandas DataFrame of a summary table, without the setting columns no point sets."""
    empty = [c for c in setting_columns() if c in table.column_names and table[c].null_count == len(table)]
    return table.drop_columns(empty).to_pandas()


# ------------------------------------------------------------------------------------------------
# layout 1 (one points/<id>.npz per point): read only


def load_point(path, spec: Spec | None = None) -> dict | None:
    """A point record from a layout-1 point file, or None if it is missing, unreadable or from another sweep."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, Exception):       # noqa: BLE001 - BadZipFile and the like
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


# ------------------------------------------------------------------------------------------------
# the manifest and the CSV tables


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
    return [k for k in setting_columns() if k in used]


def table_lines(points, records):
    """The lines of ``table.csv``: a row per (point, generation, metric), points in sweep order."""
    from ..stats.analysis import wilson_ci

    cols = _columns(points)
    yield ",".join(["point", "id", *cols, "generation", "metric", "mean", "sd", "ci_low", "ci_high", "n"]) + "\n"
    for p in points:
        rec = records[p.index]
        head = ",".join([str(p.index), p.id, *(_cell(p.settings.get(c)) for c in cols)])
        chains = int(rec["collapse_time"].shape[0])
        frac = rec["collapsed"]
        ci = wilson_ci(np.rint(frac * chains), chains)
        names = list(rec["metrics"])
        rows = []
        for gi in range(frac.shape[0]):
            for k, m in enumerate(names):
                rows.append(f"{head},{gi},{m},{float(rec['mean'][k, gi])!r},{float(rec['sd'][k, gi])!r},"
                            f"{float(rec['ci_low'][k, gi])!r},{float(rec['ci_high'][k, gi])!r},"
                            f"{int(rec['n'][k, gi])}\n")
            sd = math.sqrt(frac[gi] * (1 - frac[gi]) * chains / max(chains - 1, 1))
            rows.append(f"{head},{gi},collapsed,{float(frac[gi])!r},{sd!r},{float(ci.low[gi])!r},"
                        f"{float(ci.high[gi])!r},{chains}\n")
        yield "".join(rows)


def table_csv(points, records) -> str:
    """``table.csv`` as one string (small sweeps; :func:`write_csv` streams it)."""
    return "".join(table_lines(points, records))


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


def points_lines(points, records, generations: int):
    """The lines of ``points.csv``: one row per point (settings, :func:`point_summary`)."""
    import io

    cols = _columns(points)
    keys = None
    for p in points:
        r = point_summary(records[p.index], generations)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if keys is None:
            keys = list(r)
            w.writerow(["point", "id", *cols, *keys])
        w.writerow([p.index, p.id, *(_cell(p.settings.get(c)) for c in cols), *(_cell(r[k]) for k in keys)])
        yield buf.getvalue()


def write_csv(out, points, records, generations: int) -> list:
    """Write ``table.csv`` and ``points.csv`` into ``out`` line by line (atomically); returns their paths."""
    from ..io.rundir import atomic_file

    made = []
    for name, lines in ((TABLE, table_lines(points, records)), (POINTS_CSV, points_lines(points, records,
                                                                                         generations))):
        path = os.path.join(os.fspath(out), name)
        with atomic_file(path, "w") as f:
            for line in lines:
                f.write(line)
        made.append(path)
    return made


def write_manifest(out, plan, *, stores: list, command: str = "", argv=None, wall_time: float = 0.0,
                   extra: dict | None = None) -> dict:
    """Write ``out/manifest.json`` (last): versions, the plan, the stores with their bytes on disk, command."""
    from ..io.rundir import _jsonable, backend, versions, write_text

    d = os.fspath(out)
    spec = plan.spec
    manifest = {
        MARKER: 1, "format_version": FORMAT_VERSION, "store_format": STORE_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "chains": spec.chains, "generations": spec.generations, "seed": spec.seed, "points": len(plan.points),
        "plan": {"buckets": len(plan.buckets), "compilations": plan.compilations,
                 "bucket_sizes": [len(b.points) for b in plan.buckets],
                 "points_per_call": [b.group for b in plan.buckets],
                 "chains_per_call": [b.chunk for b in plan.buckets]},
        "plot": spec.plot, "versions": versions(), "jax": backend(), "command": command,
        "argv": list(sys.argv if argv is None else argv), "cwd": os.getcwd(), "wall_time_s": wall_time,
        "stores": [os.path.relpath(s, d) for s in stores], "bytes": store_bytes(d),
    }
    if extra:
        manifest.update(extra)
    write_text(os.path.join(d, MANIFEST), json.dumps(_jsonable(manifest), indent=2, ensure_ascii=False) + "\n")
    return manifest


def store_bytes(d) -> int:
    """Bytes on disk of the files under ``d``."""
    total = 0
    for root, _, files in os.walk(os.fspath(d)):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def read_manifest(out) -> dict | None:
    try:
        with open(os.path.join(os.fspath(out), MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get(MARKER) == 1 else None
