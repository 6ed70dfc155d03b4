"""Parameter sweeps: many studies (grid points) run as a few compiled, vmapped calls.

A sweep is a list of *points*, each a full study setting (regime, sizes, initial distribution, decoding,
smoothing), all with the same ``chains``, ``generations`` and ``seed``. The modules of this package:

``spec``   the specification (TOML layout, :class:`Spec`), points resolved to what ``simulate`` takes, keys;
``plan``   buckets of points sharing one compilation, call groups;
``run``    the compiled, vmapped calls that run a plan;
``store``  the results directory: point files, tables, manifest;
``cost``   calibrated time estimate and memory checks;
``phase``  phase diagrams of a finished sweep;
and here the Python entry points :func:`sweep` and :func:`merge`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import numpy as np

from ..errors import ConfigError, check_int
from .plan import Plan, make_plan
from .ray_engine import run_plan_on
from .spec import as_spec
from .store import POINTS_DIR, finished_points, load_point, point_path, prepare_out, table_csv, write_tables


@dataclasses.dataclass(repr=False)
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
      plan: the :class:`Plan` (points, buckets).  records: ``{point index: record}`` of every finished point.
      ran: indices of the points computed by this call (the rest were found on disk or run by other hosts).
      complete: whether every point is finished.  wall_time: seconds.  out: the results directory or None.

    In a notebook: :meth:`to_pandas` (the rows of ``table.csv``), :meth:`to_xarray` (dims ``point``,
    ``generation``, ``metric``, ``chain``), :meth:`plot` (per-setting metric curves) and a rich display.
    """

    plan: Plan
    records: dict
    ran: list
    complete: bool
    wall_time: float
    out: str | None

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
        from .store import _columns

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
        """A pandas DataFrame of the rows of ``table.csv``: one per (point, generation, metric) with the point's
        settings as columns and ``mean, sd, ci_low, ci_high, n``; metric ``collapsed`` is the fraction of chains
        collapsed by that generation (Wilson 95% interval). ``pip install 'jaxcollapse[io]'``."""
        from ..io.frames import sweep_frame

        return sweep_frame(self.plan.points, self.records, self._columns())

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
        title = f"sweep · {len(done)} points · {self.chains:,} chains × {self.generations:,} generations"
        return sweep_figure(items, metric, x, groups, generation=g, title=title)

    def _repr_html_(self) -> str:
        from ..io.draw import fmt, html_block
        from .store import point_summary

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


def sweep(spec, *, chains: int | None = None, generations: int | None = None, seed: int | None = None,
          out=None, host: int | None = None, hosts: int | None = None, devices=None, memory: int | None = None,
          points_per_call: int | None = None, keep_final: bool | None = None, overwrite: bool = False,
          progress: Callable | None = None, command: str = "", argv=None, ray: bool | str = False) -> SweepResult:
    """Run a parameter sweep.

    Args:
      spec: a sweep TOML path, a dict in the TOML's layout, a list of point-settings dicts, or a :class:`Spec`.
      chains, generations, seed, memory (bytes), points_per_call, keep_final: override the spec's values.
      out: results directory; with it, finished points are written as they finish, points already there are
        not run again (resume), and when all points are done the tables and the manifest are written.
      host, hosts: run only the call groups ``t`` with ``t % hosts == host`` (default: ``jax.process_index()``
        and ``jax.process_count()``); merge the hosts' points with :func:`merge`.
      devices: JAX devices to spread call groups over (default: all local devices).
      progress: ``progress(chain_generations_done, total, points_done, work_fraction)`` between segments.
      ray: run the call groups as tasks of a Ray cluster: True for a local one, or the address of one
        (``pip install "jaxcollapse[ray]"``; host, hosts and devices are then left unset).
    """
    import jax

    t0 = time.perf_counter()
    spec = as_spec(spec, {"chains": chains, "generations": generations, "seed": seed, "memory": memory,
                           "points_per_call": points_per_call, "keep_final": keep_final})
    hosts = jax.process_count() if hosts is None else check_int("hosts", hosts, low=1)
    host = jax.process_index() if host is None else check_int("host", host, low=0, high=hosts - 1)
    plan = make_plan(spec)
    done = {}
    if out is not None:
        prepare_out(out, spec, overwrite)
        done = finished_points(out, plan)
    ran = run_plan_on(ray, plan, out, host=host, hosts=hosts, devices=devices, done=set(done), progress=progress)
    records = {**done, **ran}
    complete = len(records) == len(plan.points)
    wall = time.perf_counter() - t0
    if out is not None and complete and hosts == 1:
        write_tables(out, plan, records, command=command, argv=argv, wall_time=wall)
    return SweepResult(plan, records, sorted(ran), complete, wall, None if out is None else os.fspath(out))


def merge(spec, out, sources=(), *, command: str = "", argv=None, overwrite: bool = False) -> SweepResult:
    """Merge the point files of several hosts into ``out``'s tables (``sources``: more directories whose
    ``points/`` are copied into ``out``); ConfigError naming the missing points if some are not finished."""
    import shutil

    t0 = time.perf_counter()
    spec = as_spec(spec, {})
    plan = make_plan(spec)
    d = os.fspath(out)
    if not os.path.isdir(os.path.join(d, POINTS_DIR)) and not sources:
        raise ConfigError(f"{d} holds no sweep points to merge")
    prepare_out(d, spec, overwrite)
    for src in sources:
        for p in plan.points:
            path = point_path(src, p)
            if os.path.exists(path) and load_point(path, spec) is not None and not os.path.exists(point_path(d, p)):
                tmp = point_path(d, p) + f".tmp-{os.getpid()}"
                shutil.copyfile(path, tmp)
                os.replace(tmp, point_path(d, p))
    records = finished_points(d, plan)
    missing = [p.index for p in plan.points if p.index not in records]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(f"{len(missing)} of {len(plan.points)} points are not finished (points {shown}); "
                          f"run the missing hosts' shares first")
    write_tables(d, plan, records, command=command, argv=argv, wall_time=time.perf_counter() - t0,
                 extra={"merged_from": [os.fspath(s) for s in sources]})
    return SweepResult(plan, records, [], True, time.perf_counter() - t0, d)
