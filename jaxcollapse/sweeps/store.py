"""A sweep's results directory: per-point arrays in a Zarr store and summary rows in Parquet parts, written as
call groups finish; shards; the manifest; the CSV export.

A *store* is the directory one process writes: ``OUT`` for a one-process sweep, ``OUT/shards/I-of-N`` for shard
``I`` of ``N`` (a SLURM array task), which never touches another shard's files or ``OUT``'s own. It holds:

``sweep.json``            the sweep: ``store_format``, the fingerprint (chains, generations, seed, keep_final), the
                          sweep settings and every point's settings, and the shard; written before any point.
``arrays.zarr/``          Zarr v3 arrays along a ``point`` axis in the order points were written, with named
                          dimensions (``xarray.open_zarr`` reads them): ``point`` (the point's index in the sweep;
                          -1 on a row no part refers to), ``vocab``, ``contexts``, ``collapse_time`` (point, chain;
                          -1 = censored), ``collapse_token`` and ``context_collapse_time`` (point, chain, context),
                          ``final_value`` (point, metric, chain: each metric at the last generation),
                          ``summary_mean|sd|ci_low|ci_high|n|infinite`` (point, metric, generation),
                          ``collapsed_fraction`` (point, generation), with ``keep_final`` ``final`` (point,
                          chain, context, token) and with ``keep_traces`` ``traces`` (point, metric, chain,
                          generation: every chain's metric at every generation). Contexts and tokens are padded (-1, NaN) to the largest point.
                          The metric names are the group's attribute ``metrics``. Blosc-zstd compressed.
``parts/<lo>-<hi>.parquet``  the summary rows of the points on Zarr rows ``lo..hi-1``: one row per (point,
                          generation, metric) with the point's settings as columns and ``mean, sd, ci_low, ci_high,
                          n``; metric ``collapsed`` is the fraction of chains collapsed by that generation (Wilson
                          95% interval). Written atomically after the rows' arrays: a part is the commit of its
                          points, so a killed run leaves at most arrays no part refers to.
``OUT/manifest.json``     versions, plan, command, the stores; written last, once every point is finished (by the
                          one-process run or by ``jaxcollapse sweep-merge OUT``).

Reading (:func:`read_store`) trusts a part only when it and its Zarr rows read back whole: a damaged part or row is
dropped (when resuming, deleted), and its points are run again. ``jaxcollapse sweep-export OUT --csv`` writes the
``table.csv`` / ``points.csv`` of earlier versions (:func:`write_csv`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import time

import numpy as np

from ..errors import ConfigError
from .spec import Point, Spec
from .tables import MANIFEST, POINTS_DIR, STORE_FORMAT, summary_table

SPEC_FILE = "sweep.json"
PARTS = "parts"
ARRAYS = "arrays.zarr"
SHARDS = "shards"
#: Buffered points are committed (one part) at least this often while a sweep runs, and after its first group.
FLUSH_SECONDS = 5.0
#: ... or once this many points are buffered.
FLUSH_POINTS = 4096
#: Target uncompressed bytes of one Zarr chunk (a block of rows).
CHUNK_BYTES = 1 << 18

# ------------------------------------------------------------------------------------------------
# where a shard's store lies


def parse_shard(text) -> tuple:
    """``"I/N"`` (or a pair) as ``(I, N)`` with ``0 <= I < N``; ConfigError otherwise."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        i, n = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise ConfigError(f"shard must be I/N with 0 <= I < N (e.g. 3/16), got {text!r}")
        i, n = m.groups()
    i, n = int(i), int(n)
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"shard must be I/N with N >= 1 and 0 <= I < N, got {i}/{n}")
    return i, n


def shard_from_env(env=None) -> tuple | None:
    """``(I, N)`` of a SLURM array task (``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``, of
    ``SLURM_ARRAY_TASK_COUNT``), or None outside one."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    try:
        i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        n = int(env["SLURM_ARRAY_TASK_COUNT"])
    except ValueError:
        raise ConfigError("SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT must be integers; "
                          "or pass --shard I/N") from None
    return parse_shard((i, n))


def store_dir(out, shard: int = 0, shards: int = 1) -> str:
    """The store of shard ``shard`` of ``shards`` under ``out`` (``out`` itself for one shard)."""
    d = os.fspath(out)
    return d if shards == 1 else os.path.join(d, SHARDS, f"{shard}-of-{shards}")


def find_stores(out) -> list:
    """The stores under ``out``: ``out`` itself if it holds one, then ``out/shards/*`` by shard."""
    d = os.fspath(out)
    top = _read_json(os.path.join(d, SPEC_FILE))
    found = [d] if isinstance(top, dict) and top.get("store_format") == STORE_FORMAT else []
    folder = os.path.join(d, SHARDS)
    if os.path.isdir(folder):
        names = [n for n in os.listdir(folder) if re.fullmatch(r"\d+-of-\d+", n)]
        found += [os.path.join(folder, n) for n in sorted(names, key=lambda n: tuple(map(int, n.split("-of-"))))]
    return found


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def spec_record(spec: Spec) -> dict:
    """What ``sweep.json`` holds of the sweep (enough to rebuild its :class:`Spec`)."""
    return {"store_format": STORE_FORMAT, "fingerprint": spec.fingerprint(),
            "settings": {"chains": spec.chains, "generations": spec.generations, "seed": spec.seed,
                         "memory": spec.memory, "buckets": spec.buckets, "points_per_call": spec.points_per_call,
                         "keep_final": bool(spec.keep_final), "keep_traces": bool(spec.keep_traces),
                         "plot": spec.plot},
            "points": spec.points}


def read_spec(d) -> Spec:
    """The :class:`Spec` recorded in store ``d``; ConfigError for a directory of another layout."""
    data = _read_json(os.path.join(os.fspath(d), SPEC_FILE))
    if not isinstance(data, dict) or data.get("store_format") != STORE_FORMAT:
        raise ConfigError(f"{d} holds no sweep store of this version ({SPEC_FILE} with store_format "
                          f"{STORE_FORMAT})")
    return Spec(points=data["points"], **data["settings"])


def prepare_store(d, spec: Spec, overwrite: bool = False, shard: tuple = (0, 1)) -> None:
    """Create store ``d`` or check that it holds this sweep (then it is resumed); write ``sweep.json``."""
    from ..io.rundir import write_text

    d = os.fspath(d)
    record = {**spec_record(spec), "shard": list(shard)}
    if os.path.exists(d) and not os.path.isdir(d):
        raise ConfigError(f"output {d} exists and is not a directory")
    if os.path.isdir(d) and set(os.listdir(d)) - {SHARDS}:
        old = _read_json(os.path.join(d, SPEC_FILE))
        if old is None:
            raise ConfigError(f"output directory {d} exists, is not empty and holds no sweep ({SPEC_FILE}); "
                              f"choose another --out")
        if old.get("store_format") != STORE_FORMAT:
            raise ConfigError(f"{d} holds a sweep written by an earlier version (one points/<id>.npz per point): "
                              f"it cannot be resumed; jaxcollapse.load_sweep still reads it; choose another --out")
        if (old.get("fingerprint"), old.get("points")) != (record["fingerprint"], record["points"]):
            if not overwrite:
                raise ConfigError(f"output directory {d} holds another sweep (other points, chains, generations, "
                                  f"seed or keep_final); pass --overwrite to replace it or choose another --out")
            for name in (PARTS, ARRAYS):
                shutil.rmtree(os.path.join(d, name), ignore_errors=True)
    os.makedirs(os.path.join(d, PARTS), exist_ok=True)
    for name in os.listdir(os.path.join(d, PARTS)):       # this store's own leftovers of a killed write
        if ".tmp-" in name:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(d, PARTS, name))
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(d, MANIFEST))              # the directory stops being a finished sweep
    write_text(os.path.join(d, SPEC_FILE), json.dumps(record, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------------
# the per-point arrays (Zarr)

#: name -> (dimension names after ``point``, dtype, fill value)
_ARRAYS = {
    "vocab": ((), "int64", -1), "contexts": ((), "int64", -1),
    "collapse_time": (("chain",), "int64", -1),
    "collapse_token": (("chain", "context"), "int64", -1),
    "context_collapse_time": (("chain", "context"), "int64", -1),
    "final_value": (("metric", "chain"), "float64", float("nan")),
    **{f"summary_{k}": (("metric", "generation"), "float64", float("nan")) for k in ("mean", "sd", "ci_low",
                                                                                     "ci_high")},
    **{f"summary_{k}": (("metric", "generation"), "int64", -1) for k in ("n", "infinite")},
    "collapsed_fraction": (("generation",), "float64", float("nan")),
    "final": (("chain", "context", "token"), "float64", float("nan")),
    "traces": (("metric", "chain", "generation"), "float64", float("nan")),
}
_RECORD_KEY = {"summary_mean": "mean", "summary_sd": "sd", "summary_ci_low": "ci_low", "summary_ci_high": "ci_high",
               "summary_n": "n", "summary_infinite": "infinite", "collapsed_fraction": "collapsed"}


def _row(name: str, rec: dict) -> np.ndarray:
    """One point's row of array ``name`` (unpadded)."""
    if name == "vocab":
        return np.asarray(rec["_vocab"])
    if name == "contexts":
        return np.asarray(np.asarray(rec["collapse_token"]).shape[1])
    if name == "final_value":
        return np.stack([np.asarray(rec[f"final_{m}"]) for m in rec["metrics"]])
    return np.asarray(rec[_RECORD_KEY.get(name, name)])


def _codec():
    import zarr

    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


class _Writer:
    """The open store of one directory in this process: buffered points, committed by :meth:`flush`."""

    def __init__(self, d: str, spec: Spec):
        import zarr

        self.d, self.spec = d, spec
        os.makedirs(os.path.join(d, PARTS), exist_ok=True)
        self.group = zarr.open_group(os.path.join(d, ARRAYS), mode="a")
        self.buffer = []                 # (point, record)
        self.last = -math.inf            # time of the last commit
        self.opened = time.monotonic()

    def _array(self, name: str, tail: tuple):
        """Array ``name`` with trailing shape at least ``tail`` (created or grown)."""
        dims, dtype, fill = _ARRAYS.get(name, ((), "int64", -1))
        if name in self.group:
            arr = self.group[name]
            if any(t > s for t, s in zip(tail, arr.shape[1:])):
                arr.resize((arr.shape[0], *(max(t, s) for t, s in zip(tail, arr.shape[1:]))))
            return arr
        row = max(8 * int(np.prod(tail, dtype=np.int64)), 1)
        rows = int(min(max(CHUNK_BYTES // row, 1), 1 << 16))
        arr = self.group.create_array(name, shape=(0, *tail), chunks=(rows, *tail), dtype=dtype, fill_value=fill,
                                      dimension_names=("point", *dims), compressors=_codec())
        return arr

    def flush(self) -> None:
        """Append the buffered points' rows to the arrays (``point`` last), then write their part."""
        if not self.buffer:
            return
        import pyarrow.parquet as pq

        from ..io.rundir import atomic_file

        points = [p for p, _ in self.buffer]
        recs = {p.index: r for p, r in self.buffer}
        first = recs[points[0].index]
        self.group.attrs.update({"metrics": list(first["metrics"]), "chains": self.spec.chains,
                                 "generations": self.spec.generations, "seed": self.spec.seed})
        names = [n for n in _ARRAYS if n not in ("final", "traces") or n in first]
        lo = self.group["point"].shape[0] if "point" in self.group else 0
        hi = lo + len(points)
        for name in [*names, "point"]:
            rows = [np.asarray([p.index]) if name == "point" else _row(name, recs[p.index]) for p in points]
            rows = [r.reshape(()) if name == "point" else r for r in rows]
            tail = tuple(max(s) for s in zip(*(r.shape for r in rows))) if rows[0].ndim else ()
            arr = self._array(name, tail)
            block = np.full((len(rows), *arr.shape[1:]), arr.fill_value, dtype=arr.dtype)
            for k, r in enumerate(rows):
                block[(k, *(slice(0, s) for s in r.shape))] = r
            arr.resize((hi, *arr.shape[1:]))
            arr[lo:hi] = block
        with atomic_file(os.path.join(self.d, PARTS, f"{lo:012d}-{hi:012d}.parquet")) as f:
            pq.write_table(summary_table(points, recs), f, compression="zstd")
        self.buffer.clear()
        self.last = time.monotonic()


_OPEN: dict = {}


def write_point(out, point: Point, record: dict, spec: Spec) -> None:
    """Hand one finished point's record to store ``out`` (a directory prepared by :func:`prepare_store`).

    The one writer of sweep results, for any engine, called in the driver process as call groups finish. Points
    are buffered and committed together (one Parquet part and one append to each Zarr array) by :func:`flush`,
    here once :data:`FLUSH_SECONDS` have passed since the last commit, and by :func:`close`; a point is durable
    once committed.
    """
    d = os.fspath(out)
    w = _OPEN.get(d)
    if w is None:
        w = _OPEN[d] = _Writer(d, spec)
    rec = dict(record)
    rec["_vocab"] = int(np.asarray(record["final"]).shape[-1]) if "final" in record else int(point.settings.get(
        "vocab", 0))
    w.buffer.append((point, rec))
    if len(w.buffer) >= FLUSH_POINTS or time.monotonic() - max(w.last, w.opened) >= FLUSH_SECONDS:
        w.flush()


def flush(out, force: bool = False) -> None:
    """Commit the points buffered for ``out``: after the first group, then at most every :data:`FLUSH_SECONDS`
    (``force``: now). Engines call it after each call group and with ``force`` at the end."""
    w = _OPEN.get(os.fspath(out))
    if w is not None and (force or time.monotonic() - w.last >= FLUSH_SECONDS):
        w.flush()


def close(out) -> None:
    """Commit what is buffered for ``out`` and forget its open store."""
    flush(out, force=True)
    _OPEN.pop(os.fspath(out), None)


def part_paths(d) -> list:
    """The paths of store ``d``'s Parquet parts, by row (checked by :func:`read_store`, not here)."""
    return [path for _, _, path in _parts(os.fspath(d))]


def _parts(d) -> list:
    """``[(lo, hi, path)]`` of the store's part files, by row."""
    folder = os.path.join(d, PARTS)
    out = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            m = re.fullmatch(r"(\d+)-(\d+)\.parquet", name)
            if m:
                out.append((int(m[1]), int(m[2]), os.path.join(folder, name)))
    return sorted(out)


def read_store(d, points: list, *, repair: bool = False) -> tuple:
    """The finished points of store ``d``: ``({point index: record}, [good part paths])``.

    A part counts when its file reads back whole and its Zarr rows read back and name its points; otherwise its
    points are left out (``repair``: the part is deleted and its rows marked -1, so that they are run again).
    Records are as :func:`jaxcollapse.sweeps.run.run_group` returns them (``final``, ``traces`` only when kept).
    """
    import pyarrow.parquet as pq
    import zarr

    d = os.fspath(d)
    parts = _parts(d)
    if not parts:
        return {}, []
    try:
        group = zarr.open_group(os.path.join(d, ARRAYS), mode="r")
        metrics = list(group.attrs["metrics"])
        arrays = {name: group[name] for name in [*_ARRAYS, "point"] if name in group}
    except Exception:                          # noqa: BLE001 - unreadable arrays: every point is run again
        arrays, metrics = {}, []
        if repair:
            shutil.rmtree(os.path.join(d, ARRAYS), ignore_errors=True)
    by_index = {p.index: p for p in points}
    full, damaged, bad, good = {}, {}, [], []
    for name, arr in arrays.items():
        full[name], damaged[name] = _read_rows(arr)
    records = {}
    for lo, hi, path in parts:
        try:
            listed = pq.read_table(path, columns=["point"])["point"].to_numpy()
            block = {name: full[name][lo:hi] for name in arrays}
            idx = block["point"]
            ok = (all(block[name].shape[0] == hi - lo for name in arrays) and len(set(idx.tolist())) == hi - lo
                  and np.array_equal(np.unique(listed), np.unique(idx)) and all(int(i) in by_index for i in idx)
                  and not any(a < hi and lo < b for rows in damaged.values() for a, b in rows))
        except Exception:                      # noqa: BLE001 - unreadable part or rows
            ok = False
        if not ok:
            bad.append((lo, hi, path))
            continue
        good.append(path)
        for k, i in enumerate(idx.tolist()):
            v, c = int(block["vocab"][k]), int(block["contexts"][k])
            rec = {"settings": by_index[i].settings, "id": by_index[i].id, "metrics": metrics}
            for name in arrays:
                if name in ("point", "vocab", "contexts"):
                    continue
                row = block[name][k]
                if name in ("collapse_token", "context_collapse_time"):
                    row = row[:, :c]
                elif name == "final":
                    row = row[:, :c, :v]
                if name == "final_value":
                    for j, m in enumerate(metrics):
                        rec[f"final_{m}"] = np.ascontiguousarray(row[j])
                else:
                    rec[_RECORD_KEY.get(name, name)] = np.ascontiguousarray(row)
            records[i] = rec
    if repair and arrays:
        _drop(d, bad, [(lo, hi) for lo, hi, path in parts if path in set(good)], damaged)
    return records, good


def _read_rows(arr) -> tuple:
    """``(values, [(lo, hi)])``: the whole array, and the row ranges of the chunks that did not decode (read
    chunk by chunk when the whole read fails; fill values there)."""
    try:
        return arr[...], []
    except Exception:                          # noqa: BLE001 - a damaged chunk: find it
        pass
    values = np.full(arr.shape, arr.fill_value, dtype=arr.dtype)
    rows, n, step = [], arr.shape[0], arr.chunks[0]
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        try:
            values[lo:hi] = arr[lo:hi]
        except Exception:                      # noqa: BLE001
            rows.append((lo, hi))
    return values, rows


def _drop(d: str, bad: list, kept: list, damaged: dict) -> None:
    """Delete the ``bad`` parts, overwrite the ``damaged`` chunks (``{array: [(lo, hi)]}``) with fill values and
    mark -1 every Zarr row no kept part covers (rows of a killed write)."""
    import zarr

    for _, _, path in bad:
        with contextlib.suppress(OSError):
            os.remove(path)
    with contextlib.suppress(Exception):
        group = zarr.open_group(os.path.join(d, ARRAYS), mode="a")
        for name, rows in damaged.items():
            for lo, hi in rows:              # a whole chunk is written without reading it back
                group[name][lo:hi] = group[name].fill_value
        arr = group["point"]
        live = np.zeros(arr.shape[0], bool)
        for lo, hi in kept:
            live[lo:hi] = True
        if not live.all():
            idx = arr[...]
            if (idx[~live] != -1).any():
                idx[~live] = -1
                arr[...] = idx


def read_sweep(out) -> tuple:
    """Everything finished under ``out`` (its stores: ``out`` and ``out/shards/*``, or the point files of the
    earlier layout): ``(spec, points, {point index: record}, [Parquet parts], manifest or {})``. The parts are
    left out when stores overlap (then the summary rows are rebuilt from the records)."""
    from .spec import resolve
    from .tables import load_point, read_manifest

    d = os.fspath(out)
    stores = find_stores(d)
    manifest = read_manifest(d) or {}
    if not stores:
        if not (manifest and os.path.isdir(os.path.join(d, POINTS_DIR))):
            raise ConfigError(f"{d} holds no jaxcollapse sweep (no {SPEC_FILE}, no {SHARDS}/)")
        points = [Point(p["index"], p["id"], p["settings"], 0, None, None, None, p["settings"].get("smoothing"),
                        p["settings"].get("sampler")) for p in manifest["points"]]
        records = {p.index: load_point(os.path.join(d, POINTS_DIR, f"{p.id}.npz")) for p in points}
        spec = Spec(points=[p.settings for p in points], chains=manifest["chains"],
                    generations=manifest["generations"], seed=manifest["seed"], plot=manifest.get("plot") or {})
        return spec, points, {i: r for i, r in records.items() if r is not None}, [], manifest
    spec = read_spec(stores[0])
    for s in stores[1:]:
        other = read_spec(s)
        if (other.fingerprint(), other.points) != (spec.fingerprint(), spec.points):
            raise ConfigError(f"{s} holds another sweep than {stores[0]} (other points, chains, generations, seed or keep_final)")
    points = resolve(spec)
    records, parts, overlap = {}, [], False
    for s in stores:
        recs, good = read_store(s, points)
        overlap |= bool(records.keys() & recs.keys())
        records = {**recs, **records}
        parts += good
    return spec, points, records, [] if overlap else parts, manifest
