"""Sweeps on a local Ray cluster (2 CPUs): records equal a one-process run value for value, the command line's
``--ray``, a task whose worker is killed mid-sweep is run again. Skipped without Ray."""

import copy
import importlib
import logging
import os
import signal
import sys

import jax
import numpy as np
import pytest

ray = pytest.importorskip("ray")

import jaxcollapse as jc  # noqa: E402
from jaxcollapse import cli  # noqa: E402
from jaxcollapse.errors import ConfigError  # noqa: E402
from test_sweep import BASE  # noqa: E402

SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")
RUN = importlib.import_module("jaxcollapse.sweeps.run")
ST = importlib.import_module("jaxcollapse.sweeps.store")
RE = importlib.import_module("jaxcollapse.sweeps.ray_engine")

# the shapes of tests/test_sweep.py (one compilation, shared through the session's compilation cache)
SPEC = {**BASE, "grid": {"regime": ["fully_synthetic"], "size": [3, 5, 7, 9, 11, 14]}}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def plan():
    return PL.make_plan(SP.spec_from_dict(SPEC))


@pytest.fixture(scope="module")
def one(plan):
    return RUN.run_plan(plan)


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for i, rec in want.items():
        assert sorted(got[i]) == sorted(rec)
        for k, v in rec.items():
            if isinstance(v, np.ndarray):
                assert got[i][k].dtype == v.dtype and np.array_equal(got[i][k], v, equal_nan=True), (i, k)
            else:
                assert got[i][k] == v, (i, k)


def _writer(calls: list):
    def write(out, point, rec, spec):
        calls.append((os.getpid(), point.index))
    return write


def test_on_ray_equals_one_process_and_writes_in_the_driver(cluster, plan, one, tmp_path):
    calls, seen = [], []
    got = RE.run_plan_ray(plan, tmp_path, write=_writer(calls), progress=lambda *a: seen.append(a))
    _assert_same(got, one)
    assert sorted(i for _, i in calls) == sorted(one) and {pid for pid, _ in calls} == {os.getpid()}
    total = len(one) * plan.spec.chains * plan.spec.generations
    assert [a[2] for a in seen] == list(range(1, len(one) + 1)) and seen[-1] == (total, total, len(one), 1.0)
    done = {0, 2, 5}                                   # resume: only the other points run
    assert sorted(RE.run_plan_ray(plan, done=done)) == [1, 3, 4]


def test_on_ray_cli_and_python_api(cluster, plan, one, tmp_path):
    spec_file = tmp_path / "s.toml"
    grid = SPEC["grid"]
    spec_file.write_text("\n".join(f"{k} = {v}" for k, v in SPEC.items() if k != "grid")
                         + f'\n[grid]\nregime = ["{grid["regime"][0]}"]\nsize = {grid["size"]}\n')
    out = tmp_path / "out"
    assert cli.main(["sweep", str(spec_file), "--out", str(out), "--ray", "--quiet"]) == 0
    arrays = lambda recs: {i: {k: v for k, v in r.items() if isinstance(v, np.ndarray)} for i, r in recs.items()}
    _assert_same(arrays(jc.load_sweep(out).records), arrays(one))
    assert (out / "manifest.json").exists()
    _assert_same(arrays(jc.sweep(SPEC, ray=True).records), arrays(one))
    with pytest.raises(ConfigError, match=r"num_gpus must be in \[0, 0\]"):
        RE.run_plan_ray(plan, num_gpus=1)
    with pytest.raises(ConfigError, match="leave host, hosts and devices unset"):
        jc.sweep(SPEC, ray=True, devices=jax.devices())


def _die_at_start_of_task(path: str, nth: int) -> None:
    """Count a task's start in the file ``path``; the ``nth`` task to start kills its own worker process."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
        ordinal = os.lseek(fd, 0, os.SEEK_CUR)     # this write's end: O_APPEND makes it ours alone
    finally:
        os.close(fd)
    if ordinal == nth:
        os.kill(os.getpid(), signal.SIGKILL)


class _KillsItsWorker:
    """Carried by the plan into every task: unpickling it, as a task starts, runs :func:`_die_at_start_of_task`."""

    def __init__(self, path, nth):
        self.args = (os.fspath(path), nth)

    def __reduce__(self):
        return _die_at_start_of_task, self.args


def test_on_ray_a_task_whose_worker_dies_is_retried(cluster, plan, one, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    doomed = copy.copy(plan)
    doomed.crash = _KillsItsWorker(tmp_path / "starts", 3)     # the third task to start, mid-sweep
    ST.prepare_store(tmp_path / "out", plan.spec)
    got = RE.run_plan_ray(doomed, tmp_path / "out")
    ST.close(tmp_path / "out")
    assert os.path.getsize(tmp_path / "starts") == len(one) + 1          # every task, and one run again
    _assert_same(got, one)
    assert sorted(ST.read_store(tmp_path / "out", plan.points)[0]) == sorted(one)
    doomed.crash = _KillsItsWorker(tmp_path / "again", 3)       # without retries the same death ends the sweep
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        RE.run_plan_ray(doomed, max_retries=0)


def test_without_ray_or_cluster_one_clear_line(plan, monkeypatch):
    import socket

    with socket.socket() as s:                 # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}: "):
        RE._check_reachable(f"127.0.0.1:{port}")            # what run_plan_ray(address=...) checks first
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r'install it with pip install "jaxcollapse\[ray\]"'):
        RE.run_plan_ray(plan)
