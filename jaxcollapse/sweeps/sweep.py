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

from ..errors import ConfigError, check_int
from .plan import Plan, make_plan
from .run import run_plan
from .spec import as_spec
from .store import POINTS_DIR, finished_points, load_point, point_path, prepare_out, table_csv, write_tables


@dataclasses.dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
      plan: the :class:`Plan` (points, buckets).  records: ``{point index: record}`` of every finished point.
      ran: indices of the points computed by this call (the rest were found on disk or run by other hosts).
      complete: whether every point is finished.  wall_time: seconds.  out: the results directory or None.
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

    def table_csv(self) -> str:
        return table_csv(self.plan.points, self.records)


def sweep(spec, *, chains: int | None = None, generations: int | None = None, seed: int | None = None,
          out=None, host: int | None = None, hosts: int | None = None, devices=None, memory: int | None = None,
          points_per_call: int | None = None, keep_final: bool | None = None, overwrite: bool = False,
          progress: Callable | None = None, command: str = "", argv=None) -> SweepResult:
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
    ran = run_plan(plan, out, host=host, hosts=hosts, devices=devices, done=set(done), progress=progress)
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
