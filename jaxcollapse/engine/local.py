"""Several processes on this machine, each pinned to its own CPU cores, that run one study together.

On a CPU, XLA runs one program's operations on a pool of threads, one per core of the process. The binomial
sampler's list passes and tree steps are many small operations, and handing each of them to a thread on
another core costs more than it saves: on the 2-core test machine, 512 binomials took 267–394 µs (medians of
41 calls in three processes) with the process on both cores, 117–126 µs pinned to one. :func:`launch` starts
``P`` processes instead, process ``p`` pinned to its own share of the cores before JAX starts (so that its pool
has one thread per core of its own). :func:`jaxcollapse.simulate` gives each process its share of the chunks
(:func:`job`) and every process ends with the whole result (:func:`allgather`), every chain's trajectory
bit-identical to a one-process run.

The processes are not a ``jax.distributed`` job: each is a JAX process of its own, with one CPU device, so its
compiled programs are those of a one-process run and JAX's persistent compilation cache serves every process
(JAX writes that cache from the first process of a ``jax.distributed`` job only). They exchange their results
through files in a folder that :func:`launch` makes and removes.

Each process runs ``python -m jaxcollapse.engine.local CORES MODULE:FUNCTION ARG...``, which pins itself and
returns ``FUNCTION(list_of_ARG)`` (an int) as its exit status.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..errors import ConfigError

#: Set to the number of processes in every process that :func:`launch` starts.
JOB_ENV = "JAXCOLLAPSE_LOCAL_PROCESSES"
#: Set to the process's index (0 .. P - 1) in every process that :func:`launch` starts.
PROCESS_ENV = "JAXCOLLAPSE_LOCAL_PROCESS"
#: The folder through which the processes of one :func:`launch` exchange their results.
EXCHANGE_ENV = "JAXCOLLAPSE_LOCAL_EXCHANGE"
#: Seconds the processes get to end after an interrupt or a failed process, before they are killed.
GRACE_S = 10.0


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity), sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:                    # no affinity on this platform: every core
        return list(range(os.cpu_count() or 1))


def core_groups(processes: int, cores: list[int] | None = None, name: str = "processes") -> list[list[int]]:
    """``processes`` disjoint groups of ``cores`` (default: :func:`usable_cores`), as even as possible, in order;
    a :class:`ConfigError` naming ``name`` unless ``1 <= processes <= len(cores)``."""
    cores = usable_cores() if cores is None else list(cores)
    if not 1 <= processes <= len(cores):
        raise ConfigError(f"{name} must be between 1 and the {len(cores)} usable CPU cores, got {processes}")
    size, extra = divmod(len(cores), processes)
    groups, at = [], 0
    for p in range(processes):
        n = size + (p < extra)
        groups.append(cores[at:at + n])
        at += n
    return groups


def _local() -> tuple[int, int, str] | None:
    """``(process, processes, exchange folder)`` in a process that :func:`launch` started, else None."""
    try:
        return int(os.environ[PROCESS_ENV]), int(os.environ[JOB_ENV]), os.environ[EXCHANGE_ENV]
    except (KeyError, ValueError):
        return None


def job() -> tuple[int, int]:
    """``(process, processes)``: this process's index and the number of processes that run the study together,
    those of :func:`launch` in a process it started, else ``jax.process_index()`` and ``jax.process_count()``
    (a ``jax.distributed`` job; ``(0, 1)`` for a process on its own)."""
    here = _local()
    if here is not None:
        return here[0], here[1]
    import jax

    return jax.process_index(), jax.process_count()


_calls = itertools.count()


def allgather(tree: dict) -> dict:
    """Every process's ``tree`` (a dict of dicts of NumPy arrays, the same structure and shapes in every process)
    with each leaf stacked on a new leading axis in process order, ``(P, ...)``, in every process; every process
    of the job must call it, in the same order. In a process of :func:`launch`, through files; in a
    ``jax.distributed`` job, ``jax.experimental.multihost_utils.process_allgather``."""
    here = _local()
    if here is None:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree)
    process, processes, folder = here
    names, leaves = zip(*_flat(tree)) if tree else ((), ())
    call = next(_calls)
    path = os.path.join(folder, str(call))
    os.makedirs(path, exist_ok=True)
    mine = os.path.join(path, f"{process}.npz")
    with open(mine + ".part", "wb") as f:
        np.savez(f, *leaves)
    os.replace(mine + ".part", mine)
    parts = [_read(os.path.join(path, f"{p}.npz"), len(leaves)) if p != process else list(leaves)
             for p in range(processes)]
    # Every process has written this call's file, so every process has read the previous call's files.
    if call:
        try:
            os.remove(os.path.join(folder, str(call - 1), f"{process}.npz"))
        except FileNotFoundError:
            pass
    out: dict = {}
    for name, stack in zip(names, zip(*parts)):
        *outer, last = name
        node = out
        for key in outer:
            node = node.setdefault(key, {})
        node[last] = np.stack(stack)
    return out


def _flat(tree: dict, prefix: tuple = ()) -> list:
    """``[(path, leaf)]`` of a dict of dicts, in key order."""
    items = []
    for key in sorted(tree):
        value = tree[key]
        items += _flat(value, prefix + (key,)) if isinstance(value, dict) else [(prefix + (key,), np.asarray(value))]
    return items


def _read(path: str, count: int) -> list:
    """The ``count`` arrays of another process's file, once it is there."""
    wait = 0.002
    while not os.path.exists(path):
        time.sleep(wait)
        wait = min(2 * wait, 0.05)
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(count)]


def launch(target: str, args: list[str], processes: int, *, env: dict | None = None) -> int:
    """Run ``target`` (``"module:function"``, called as ``function(args) -> int``) in ``processes`` pinned
    processes that run one study together (:func:`job`, :func:`allgather`) and wait for them; returns the first
    non-zero exit status, else 0.

    Every process inherits stdout and stderr, and ends when this one does. If one fails, or an interrupt
    arrives (Ctrl-C reaches every process of the terminal's group), the others get ``SIGINT`` (a second interrupt
    ends a command's process at once) and are killed if they still run :data:`GRACE_S` seconds later; an
    interrupt returns 130, a process ended by signal ``s`` 128 + ``s``."""
    groups = core_groups(processes)
    base = dict(os.environ if env is None else env)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folder = tempfile.mkdtemp(prefix="jaxcollapse-processes-")
    base.update({JOB_ENV: str(processes), EXCHANGE_ENV: folder,
                 "PYTHONPATH": os.pathsep.join(x for x in (package_root, base.get("PYTHONPATH")) if x)})
    status, interrupted, procs = 0, False, []
    try:
        for p, g in enumerate(groups):
            procs.append(subprocess.Popen([sys.executable, "-m", __name__, ",".join(map(str, g)), target, *args],
                                          env={**base, PROCESS_ENV: str(p)}))
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                status = failed[0]
                _stop(procs)
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
        _stop(procs)
    finally:
        codes = [p.wait() for p in procs]
        shutil.rmtree(folder, ignore_errors=True)
    if interrupted:
        return 130
    status = status or next((c for c in codes if c != 0), 0)
    return 128 - status if status < 0 else status


def _stop(procs) -> None:
    """SIGINT to the processes still running, then a kill after :data:`GRACE_S` seconds."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    end = time.monotonic() + GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
        except KeyboardInterrupt:
            p.kill()


def _end_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent ends (``prctl(PR_SET_PDEATHSIG)``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child(argv: list[str]) -> int:
    cores, target, *args = argv
    _end_with_parent()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
    import jax                               # after pinning: XLA sizes its thread pool from the affinity

    if jax.default_backend() != "cpu":       # the processes would share the accelerators
        if job()[0] == 0:
            print(f"jaxcollapse: error: processes pinned to CPU cores run on the CPU backend, but JAX's default "
                  f"backend here is {jax.default_backend()}: run one process per accelerator (jax.distributed), "
                  "or set JAX_PLATFORMS=cpu", file=sys.stderr)
        return 2
    module, function = target.split(":")
    return int(getattr(importlib.import_module(module), function)(args) or 0)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
