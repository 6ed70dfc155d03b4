"""Parameter sweeps: many studies (grid points) run as a few compiled, vmapped calls.

A sweep is a list of *points*, each a full study setting (regime, sizes, initial distribution, decoding,
smoothing), all with the same ``chains``, ``generations`` and ``seed``. The modules of this package:

``spec``   the specification (TOML layout, :class:`Spec`), points resolved to what ``simulate`` takes, keys;
``plan``   buckets of points sharing one compilation, call groups;
``run``    the compiled, vmapped calls that run a plan;
``store``  the results directory: Zarr arrays and Parquet summaries written as groups finish, shards, manifest;
``cost``   calibrated time estimate and memory checks;
``phase``  phase diagrams of a finished sweep;
and here the Python entry points :func:`sweep`, :func:`merge` and :func:`load_sweep`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import numpy as np

from ..engine.host import plural
from ..errors import ConfigError
from .plan import Plan, make_plan
from .ray_engine import run_plan_on
from .spec import as_spec
from .store import (close, find_stores, parse_shard, part_paths, prepare_store, read_store, read_sweep,
                    shard_from_env, store_dir)
from .tables import summary_table, table_csv, table_frame, write_manifest


@dataclasses.dataclass(repr=False)
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
      plan: the :class:`Plan` (points, buckets).  records: ``{point index: record}`` of every finished point.
      ran: indices of the points computed by this call (the rest were found on disk or run by other shards).
      complete: whether every point is finished.  wall_time: seconds.  out: the results directory or None.
      parts: the Parquet summary parts the rows of :meth:`to_pandas` are read from (none: built from records).
      shard: ``(I, N)``, the share this call ran.

    In a notebook: :meth:`to_pandas` (one row per point, generation and metric), :meth:`to_xarray` (dims
    ``point``, ``generation``, ``metric``, ``chain``), :meth:`plot` (per-setting metric curves) and a rich display.
    :func:`load_sweep` reads one back from its directory.
    """

    plan: Plan
    records: dict
    ran: list
    complete: bool
    wall_time: float
    out: str | None
    parts: list = dataclasses.field(default_factory=list)
    shard: tuple = (0, 1)

    @property
    def points(self) -> list:
        return self.plan.points

    @property
    def chains(self) -> int:
        return self.plan.spec.chains

    @property
    def generations(self) -> int:
        return self.plan.spec.generations

    def table_csv(self) -> str:
        return table_csv(self.plan.points, self.records)

    def _done(self) -> list:
        return [p for p in self.plan.points if p.index in self.records]

    def _columns(self) -> list:
        from .tables import _columns

        return _columns(self._done())

    def varying(self) -> list:
        """The settings whose value differs between finished points (the phase-diagram axes first)."""
        from ..io.draw import json_value
        from .phase import AXES

        done = self._done()
        keys = []
        for p in done:
            keys += [k for k in p.settings if k not in keys]
        order = [k for k in ("regime", *AXES, "initial", "sampler") if k in keys] + \
            sorted(k for k in keys if k not in ("regime", *AXES, "initial", "sampler"))
        return [k for k in order if len({repr(json_value(p.settings.get(k))) for p in done}) > 1]

    def to_pandas(self):
        """A pandas DataFrame of the summary rows (the Parquet parts of the results directory): one per (point,
        generation, metric) with the point's settings as columns and ``mean, sd, ci_low, ci_high, n``; metric
        ``collapsed`` is the fraction of chains collapsed by that generation (Wilson 95% interval). Points in
        sweep order. ``pip install 'jaxcollapse[io]'``."""
        from ..io.frames import require

        require("pandas", "to_pandas")
        if not self._done():
            raise ValueError("no finished point to convert")
        if self.parts:
            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            table = pa.concat_tables([pq.read_table(p) for p in self.parts], promote_options="default")
            if len(table) == sum(len(self.records[p.index]["collapsed"]) * (len(self.records[p.index]["metrics"]) + 1)
                                 for p in self._done()):
                order = table["point"].to_numpy()
                if (order[1:] < order[:-1]).any():            # parts of several buckets or shards
                    table = table.take(pc.sort_indices(table, [("point", "ascending")]))
                return table_frame(table)
        return table_frame(summary_table(self.plan.points, self.records))

    def to_xarray(self):
        """An xarray Dataset with dims ``point``, ``metric``, ``generation`` and ``chain``: per-generation
        ``summary_*`` statistics, ``collapsed_fraction``, per-chain ``collapse_time`` (NaN = censored),
        ``censored`` and ``final_value`` (each chain's metric at the last generation); the point's ``id`` and
        settings as coordinates along ``point`` (see :func:`jaxcollapse.io.frames.sweep_dataset`)."""
        from ..io.frames import sweep_dataset

        spec = self.plan.spec
        attrs = {"chains": spec.chains, "generations": spec.generations, "seed": spec.seed,
                 "complete": int(self.complete), "wall_time": float(self.wall_time)}
        if self.out is not None:
            attrs["out"] = os.path.abspath(self.out)
        return sweep_dataset(self.plan.points, self.records, self._columns(), attrs)

    def plot(self, metric: str = "collision", x: str | None = None, *, generation: int | None = None):
        """Per-setting metric curves: left, ``metric``'s mean over chains per generation, one curve per point
        coloured by setting ``x``; right, its mean with the 95% interval at ``generation`` (default: the last)
        against ``x``, one line per value of the other settings that vary. ``metric`` is a recorded metric or
        ``"collapsed"`` (the fraction of chains collapsed, Wilson interval). ``x`` defaults to the first varying
        setting among the phase-diagram axes (size, fraction, ...), else the regime. Returns the Figure."""
        from ..io.draw import json_value, sweep_figure
        from ..stats.analysis import wilson_ci
        from .phase import AXES

        done = self._done()
        if not done:
            raise ValueError("no finished point to plot")
        names = list(self.records[done[0].index]["metrics"])
        if metric not in names and metric != "collapsed":
            raise ValueError(f"unknown metric {metric!r}; the sweep has {', '.join(names)}, collapsed")
        varying = self.varying()
        if x is None:
            x = next((k for k in AXES if k in varying), "regime" if "regime" in varying else None)
        elif all(p.settings.get(x) is None for p in done):
            raise ValueError(f"setting {x!r} is not set by any point; settings that vary: {', '.join(varying)}")
        groups = []
        for k in varying:
            if k == x:
                continue
            chosen = [c for c in (x, *groups) if c is not None]
            seen = {}
            for p in done:                 # a setting fixed by those already chosen adds no line (synthetic = size)
                seen.setdefault(tuple(repr(json_value(p.settings.get(c))) for c in chosen), set()).add(
                    repr(json_value(p.settings.get(k))))
            if any(len(v) > 1 for v in seen.values()):
                groups.append(k)
        g = self.generations if generation is None else int(generation)
        if not 0 <= g <= self.generations:
            raise ValueError(f"generation must be in 0..{self.generations}, got {generation}")
        items = []
        for p in done:
            rec = self.records[p.index]
            if metric == "collapsed":
                frac = np.asarray(rec["collapsed"], np.float64)
                chains = int(np.asarray(rec["collapse_time"]).shape[0])
                ci = wilson_ci(np.rint(frac * chains), chains)
                items.append((p.settings, frac, np.asarray(ci.low), np.asarray(ci.high)))
            else:
                k = names.index(metric)
                items.append((p.settings, np.asarray(rec["mean"][k]), np.asarray(rec["ci_low"][k]),
                              np.asarray(rec["ci_high"][k])))
        title = (f"sweep · {plural(len(done), 'point')} · {plural(self.chains, 'chain')} × "
                 f"{plural(self.generations, 'generation')}")
        return sweep_figure(items, metric, x, groups, generation=g, title=title)

    def _repr_html_(self) -> str:
        from ..io.draw import fmt, html_block
        from .tables import point_summary

        done = self._done()
        keys = self.varying() or ["regime"]
        rows = []
        for p in done[:12]:
            ps = point_summary(self.records[p.index], self.generations)
            rows.append([str(p.index), *(str(p.settings.get(k, "")) for k in keys),
                         f"{100 * ps['collapsed_fraction']:.1f}% [{100 * ps['collapsed_low']:.1f}, "
                         f"{100 * ps['collapsed_high']:.1f}]", fmt(ps.get("final_collision", float("nan")))])
        facts = [("points", f"{len(done)} of {len(self.points)} finished"),
                 ("chains × generations", f"{self.chains:,} × {self.generations:,}"),
                 ("settings that vary", ", ".join(self.varying()) or "none"),
                 ("wall time", f"{self.wall_time:.2f} s")]
        if self.out is not None:
            facts.append(("directory", os.path.abspath(self.out)))
        fig = self.plot("collision") if done else None
        head = ["point", *keys, f"collapsed by {self.generations} (Wilson 95%)", "final mean Σp²"]
        note = f"... and {len(done) - 12} more points (to_pandas() has them all)" if len(done) > 12 else ""
        return html_block("jaxcollapse SweepResult", facts, (head, rows), fig, note, figure_width=640)

    def __repr__(self) -> str:
        varying = self.varying() if self.records else []
        return (f"SweepResult({len(self.records)}/{len(self.points)} points, chains={self.chains}, "
                f"generations={self.generations}, varying={varying}, complete={self.complete}, "
                f"wall_time={self.wall_time:.2f}s, out={self.out!r})")


def _shard(shard) -> tuple:
    """``(I, N)``: ``shard`` if given, else the SLURM array task's, else this process of a ``jax.distributed``
    job (``jax.process_index()`` of ``jax.process_count()``)."""
    if shard is not None:
        return parse_shard(shard)
    env = shard_from_env()
    if env is not None:
        return env
    import jax

    return jax.process_index(), jax.process_count()


def sweep(spec, *, chains: int | None = None, generations: int | None = None, seed: int | None = None,
          out=None, shard=None, devices=None, memory: int | None = None, points_per_call: int | None = None,
          keep_final: bool | None = None, keep_traces: bool | None = None, overwrite: bool = False,
          progress: Callable | None = None, command: str = "", argv=None, ray: bool | str = False) -> SweepResult:
    """Run a parameter sweep.

    Args:
      spec: a sweep TOML path, a dict in the TOML's layout, a list of point settings, or a :class:`Spec`.
      chains, generations, seed, memory (bytes), points_per_call, keep_final, keep_traces: override the spec's
        values (``keep_traces``: store every chain's metric traces, ``traces`` (point, metric, chain, generation)).
      out: results directory; with it, points are written as their call groups finish, points already there are
        not run again (resume), and when all points are done the manifest is written.
      shard: ``"I/N"`` or ``(I, N)``: run only shard I's contiguous share of the call groups, into
        ``out/shards/I-of-N/`` (default: the SLURM array task's, else ``jax.process_index()`` of
        ``jax.process_count()``); :func:`merge` then checks the shards and writes the manifest.
      devices: JAX devices to spread each call group's chains over (default: all local devices).
      progress: ``progress(chain_generations_done, total, points_done, work_fraction)`` between segments.
      ray: run the call groups (of this shard) as tasks of a Ray cluster: True for a local one, or the address of
        one (``pip install "jaxcollapse[ray]"``; devices is then left unset).
    """
    t0 = time.perf_counter()
    spec = as_spec(spec, {"chains": chains, "generations": generations, "seed": seed, "memory": memory,
                           "points_per_call": points_per_call, "keep_final": keep_final,
                           "keep_traces": keep_traces})
    i, n = _shard(shard)
    plan = make_plan(spec)
    done, d = {}, None
    if out is not None:
        d = store_dir(out, i, n)
        prepare_store(d, spec, overwrite, (i, n))
        done, _ = read_store(d, plan.points, repair=True)
    try:
        ran = run_plan_on(ray, plan.share(i, n), d, devices=devices, done=set(done), progress=progress)
    finally:
        if d is not None:
            close(d)
    records = {**done, **ran}
    complete = len(records) == len(plan.points)
    wall = time.perf_counter() - t0
    if out is not None and complete and n == 1:
        write_manifest(out, plan, stores=[d], command=command, argv=argv, wall_time=wall)
    parts = part_paths(d) if d is not None else []
    return SweepResult(plan, records, sorted(ran), complete, wall, None if out is None else os.fspath(out), parts,
                       (i, n))


def load_sweep(out) -> SweepResult:
    """A sweep read back from its results directory (every store: ``out`` and ``out/shards/*``), finished or
    not: :meth:`SweepResult.to_pandas`, :meth:`SweepResult.to_xarray`, :meth:`SweepResult.plot`. Directories of
    the earlier one-file-per-point layout load too. ConfigError for a directory that holds no sweep."""
    spec, points, records, parts, manifest = read_sweep(out)
    plan = Plan(spec, points, [], [], "")          # read back: nothing to run, so no configurations
    return SweepResult(plan, records, [], len(records) == len(points), float(manifest.get("wall_time_s", 0.0)),
                       os.fspath(out), parts)


def merge(out, *, command: str = "", argv=None) -> SweepResult:
    """Check that the shards under ``out`` together hold every point and write ``out/manifest.json``;
    ConfigError naming the missing points (and shards) otherwise. Returns the merged :class:`SweepResult`."""
    t0 = time.perf_counter()
    d = os.fspath(out)
    res = load_sweep(d)
    stores = find_stores(d)
    missing = [p.index for p in res.points if p.index not in res.records]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        found = [os.path.basename(s) if s != d else "the one-process store" for s in stores]
        raise ConfigError(f"{len(missing)} of {plural(len(res.points), 'point')} are not finished (points {shown}); "
                          f"stores found: {', '.join(found)}; run the missing shards first")
    write_manifest(d, res.plan, stores=stores, command=command, argv=argv, wall_time=time.perf_counter() - t0,
                   extra={"merged_from": [os.path.relpath(s, d) for s in stores]})
    res.complete = True
    return res
