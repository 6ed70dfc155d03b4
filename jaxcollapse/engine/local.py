"""A ``jax.distributed`` job of several processes on this machine, each pinned to its own CPU cores.

On a CPU, XLA runs one program's operations on a pool of threads, one per core of the process. The binomial
sampler's list passes and tree steps are many small operations, and handing each of them to a thread on
another core costs more than it saves: on the 2-core test machine, 512 binomials took 267–394 µs (medians of
41 calls in three processes) with the process on both cores, 117–126 µs pinned to one. :func:`launch` starts
``P`` processes instead, process ``p`` pinned to its own share of the cores before JAX starts (so that its pool
has one thread per core of its own), joined by ``jax.distributed`` on localhost; :func:`jaxcollapse.simulate`
then gives each process its share of the chunks and gathers the whole result in every process (every chain's
trajectory bit-identical to a one-process run).

Each process runs ``python -m jaxcollapse.engine.local CORES PORT P p MODULE:FUNCTION ARG...``, which pins
itself, initialises ``jax.distributed`` and returns ``FUNCTION(list_of_ARG)`` (an int) as its exit status.
JAX writes its persistent compilation cache from process 0 only, and on a CPU an entry belongs to one device:
every other process compiles its programs at each start (W2's first call 7.5 s, the next ones 2.1 s).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time

from ..errors import ConfigError

#: Set to the number of processes in every process that :func:`launch` starts.
JOB_ENV = "JAXCOLLAPSE_LOCAL_PROCESSES"
#: Seconds every process waits for the others to join (``jax.distributed`` initialisation).
JOIN_TIMEOUT_S = 120
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(target: str, args: list[str], processes: int, *, env: dict | None = None) -> int:
    """Run ``target`` (``"module:function"``, called as ``function(args) -> int``) in ``processes`` pinned
    processes of one ``jax.distributed`` job and wait for them; returns the first non-zero exit status, else 0.

    Every process inherits stdout and stderr, and ends when this one does. If one fails, or an interrupt
    arrives (Ctrl-C reaches every process of the terminal's group), the others get ``SIGINT`` (a second interrupt
    ends a command's process at once) and are killed if they still run :data:`GRACE_S` seconds later; an
    interrupt returns 130, a process ended by signal ``s`` 128 + ``s``."""
    groups = core_groups(processes)
    port = str(_free_port())
    base = dict(os.environ if env is None else env)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    base.update({JOB_ENV: str(processes), "JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}",
                 "PYTHONPATH": os.pathsep.join(x for x in (package_root, base.get("PYTHONPATH")) if x)})
    if any(k.lower() in ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy") for k in base):
        no_proxy = ",".join(x for x in (base.get("no_proxy"), "127.0.0.1", "localhost") if x)
        base.update(no_proxy=no_proxy, NO_PROXY=no_proxy)     # the job's connections stay on this machine
    procs = [subprocess.Popen([sys.executable, "-m", __name__, ",".join(map(str, g)), port, str(processes),
                               str(p), target, *args], env=base)
             for p, g in enumerate(groups)]
    status, interrupted = 0, False
    try:
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
    codes = [p.wait() for p in procs]
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
    cores, port, processes, process, target, *args = argv
    _end_with_parent()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
    import jax                               # after pinning: XLA sizes its thread pool from the affinity

    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=int(processes),
                               process_id=int(process), initialization_timeout=JOIN_TIMEOUT_S)
    if jax.default_backend() != "cpu":       # the processes would share the accelerators
        if int(process) == 0:
            print(f"jaxcollapse: error: processes pinned to CPU cores run on the CPU backend, but JAX's default "
                  f"backend here is {jax.default_backend()}: run one process per accelerator (jax.distributed), "
                  "or set JAX_PLATFORMS=cpu", file=sys.stderr)
        return 2
    module, function = target.split(":")
    return int(getattr(importlib.import_module(module), function)(args) or 0)


if __name__ == "__main__":
    code = _child(sys.argv[1:])
    if code != 0:            # skip JAX's shutdown barrier, which would wait for the other processes
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(0)
