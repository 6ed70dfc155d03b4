"""Running a sweep's plan as Ray tasks: one task per call group, records written by the driver as tasks finish.

Each call group is a task running :func:`jaxcollapse.sweeps.run.run_group` in a Ray worker (one GPU per task
when the cluster has GPUs, else one CPU); the plan is put in the object store once. Point ``p``'s chain ``i``
uses ``fold_in(point_key(seed, p), i)`` whichever worker runs it, so the records equal those of a one-process
:func:`jaxcollapse.sweeps.run.run_plan`. A task lost with its worker (killed, out of memory, node lost) is run
again, up to ``max_retries`` times; an error raised by the task itself is not retried.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError

#: Environment of the worker processes running tasks. Without preallocation a JAX process takes GPU memory as it
#: needs it (several worker processes may take turns on one GPU); CPU tasks see no accelerator.
GPU_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
CPU_ENV = {"JAX_PLATFORMS": "cpu"}
#: The tasks' name (``ray::jaxcollapse-sweep-group`` is the title of a worker process running one).
TASK_NAME = "jaxcollapse-sweep-group"


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('running a sweep on Ray needs Ray: install it with pip install "jaxcollapse[ray]"') \
            from None
    return ray


def _group(plan, bucket_index: int, members: list) -> dict:
    """The task: one call group of the plan, ``{point index: record}``."""
    from .run import run_group

    return run_group(plan, plan.buckets[bucket_index], members)


def _check_reachable(address: str) -> None:
    """One line naming ``address`` if nothing listens there (Ray itself would wait for it without end)."""
    import socket

    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():           # "auto", "local": Ray finds the cluster
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _connect(ray, address: str | None) -> bool:
    """Connect the driver to the cluster at ``address`` (None: start a local one); whether it was started here."""
    import logging
    import warnings

    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
    opts = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    # Ray starts its processes with fork + exec, which JAX's fork warning does not tell apart from a bare fork.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        try:
            ray.init(address=address, **opts)
        except ConnectionError as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    return address is None


def run_plan_ray(plan, out=None, *, address: str | None = None, done: set | None = None,
                 progress: Callable | None = None, write: Callable | None = None, num_gpus: float | None = None,
                 max_retries: int = 3) -> dict:
    """Run the plan's call groups not already ``done`` as tasks of a Ray cluster.

    Same contract as :func:`jaxcollapse.sweeps.run.run_plan` (one host, every group): returns ``{point index:
    record}`` for the points run, each record also written with ``write(out, point, record, spec)`` (default:
    :func:`jaxcollapse.sweeps.store.write_point`) by this process as soon as its task finishes when ``out`` is
    given. ``progress(chain_generations_done, total, points_done, work_fraction)`` is called after each task.

    Args:
      address: the cluster's address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None starts a
        local cluster on this machine and shuts it down afterwards (a Ray already initialised in this process
        is used as it is).
      num_gpus: GPUs per task (a fraction shares a GPU between tasks); None: 1 if the cluster has GPUs, else 0,
        CPU tasks of one core each.
      max_retries: times a task lost with its worker is run again.
    """
    ray = _ray()
    from .run import pending_groups

    if write is None:
        from .store import write_point as write
    spec = plan.spec
    mine = pending_groups(plan, done=done)
    index = {id(b): k for k, b in enumerate(plan.buckets)}
    g = spec.generations
    total = sum(len(t) for _, t in mine) * spec.chains * g
    work_total = sum(len(t) * b.work for b, t in mine) * spec.chains * g
    records = {}
    if not mine:
        return records
    started = _connect(ray, address)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if num_gpus is None:
            num_gpus = 1 if gpus > 0 else 0
        elif not 0 <= num_gpus <= max(gpus, 0):
            raise ConfigError(f"num_gpus must be in [0, {gpus:g}] (the GPUs of the Ray cluster), got {num_gpus}")
        task = ray.remote(_group).options(
            name=TASK_NAME, num_cpus=1, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False,
            runtime_env={"env_vars": GPU_ENV if num_gpus else CPU_ENV})
        plan_ref = ray.put(plan)
        running = {task.remote(plan_ref, index[id(b)], t): (b, t) for b, t in mine}
        finished = work_done = 0
        try:
            while running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                bucket, members = running.pop(ref)
                try:
                    ran = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    if isinstance(e.cause, ConfigError):
                        raise e.cause from None
                    raise
                for i, rec in ran.items():
                    records[i] = rec
                    if out is not None:
                        write(out, plan.points[i], rec, spec)
                finished += len(members) * spec.chains * g
                work_done += len(members) * spec.chains * g * bucket.work
                if progress:
                    progress(finished, total, len(records), work_done / max(work_total, 1))
        finally:
            for ref in running:
                ray.cancel(ref)
    finally:
        if started:
            ray.shutdown()
    return records


def run_plan_on(ray, plan, out=None, *, host: int = 0, hosts: int = 1, devices=None, done: set | None = None,
                progress: Callable | None = None) -> dict:
    """:func:`jaxcollapse.sweeps.run.run_plan` here when ``ray`` is None or False, else :func:`run_plan_ray` on a
    local Ray cluster (``ray`` True or ``""``) or on the cluster at the address ``ray``."""
    if ray is None or ray is False:
        from .run import run_plan

        return run_plan(plan, out, host=host, hosts=hosts, devices=devices, done=done, progress=progress)
    if hosts != 1 or devices is not None:
        raise ConfigError("a sweep on Ray runs every call group on the cluster's devices: leave host, hosts and "
                          "devices unset")
    return run_plan_ray(plan, out, address=None if ray is True or ray == "" else ray, done=done,
                        progress=progress)

