"""Shared fixtures, the test tiers, and one compilation cache for the session.

Tiers (markers registered in pyproject.toml; tests/README.md says how to run each):

- ``slow``: more than about 5 s on the CI machine, or subprocesses, or a large run: the tests matched by
  ``SLOW`` below (patterns of ``module::test`` names, fnmatch-style);
- ``statistical``: the Monte Carlo assertions with a stated false-failure probability, the tests listed in
  ``stats.STATISTICAL`` (the suite's false-failure budget);
- ``golden``: the fixed-seed golden outputs of tests/test_golden.py.
"""

import fnmatch
import os
import shutil
import sys
import tempfile

import jax
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import stats  # noqa: E402  (tests/stats.py, importable once the line above has run)

# The package's own compilation cache (jaxcollapse.engine.cache) stays off in the tests and in the processes
# they start, so nothing is written under the user's cache folder; the session cache below applies instead.
os.environ["JAXCOLLAPSE_CACHE_DIR"] = "off"

SLOW = (
    "test_golden.py::*",                                   # 39 compiled studies, a few seconds each
    "test_notebooks.py::test_notebook_runs",
    "test_devices.py::*",                                  # subprocess, 8 simulated devices
    "test_scale.py::test_two_processes_match_one",         # subprocesses
    "test_scale.py::test_million_chains_*",                # subprocesses, 1,000,000 chains
    "test_scale.py::test_cli_devices",
    "test_sweep.py::test_kill_9_*",                        # subprocesses
    "test_sweep.py::test_eight_devices_equal_one",         # subprocess
    "test_sweep.py::test_points_equal_plain_simulate_and_compile_once",
    "test_sweep.py::test_hosts_split_and_merge_equal_one_host",
    "test_sweep_ray.py::test_on_ray_*",                    # a local Ray cluster: JAX starts in each worker
    "test_corpus.py::test_words_run_through_the_entry_point",   # subprocess
    "test_cli.py::test_errors_through_the_entry_point",    # subprocesses
    "test_cli.py::test_*simplex*",
    "test_engine.py::test_trajectories_do_not_depend_on_chunk_size",
    "test_engine.py::test_both_samplers_give_the_same_law",
    "test_engine.py::test_accumulate_*",
    "test_engine.py::test_most_recent_window_one_is_fully_synthetic",
    "test_engine.py::test_decoding_top_k_one_collapses_at_generation_two",
    "test_samplers.py::test_tail_probability_1e7_unbiased",    # 5e7 draws
    "test_samplers.py::test_binomial_tree_marginals_uneven_tree",
    "test_reproduce.py::test_collapse_times_run_every_chain_to_collapse",
    "test_reproduce.py::test_figure_writes_its_files",
    "test_reproduce.py::test_fig*_agrees_with_*",
    "test_trained.py::test_cli_runs_trained_and_autoregressive",
    "test_bench.py::test_gpu_script_smoke_*",            # subprocess, compiles a workload
)


def _name(item) -> str:
    """``module::test`` without the parametrisation, e.g. ``test_engine.py::test_fresh_real_exact_deviation``."""
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"


COLLECTED = pytest.StashKey[tuple]()
CACHE = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)   # before -m / -k deselect: stats' check sees every collected item
def pytest_collection_modifyitems(config, items):
    runs = {}
    for item in items:
        name = _name(item)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in SLOW):
            item.add_marker(pytest.mark.slow)
        if item.path.name == "test_golden.py":
            item.add_marker(pytest.mark.golden)
        if name in stats.STATISTICAL:
            item.add_marker(pytest.mark.statistical)
        runs[name] = runs.get(name, 0) + 1
    config.stash[COLLECTED] = (runs, {item.path for item in items})


@pytest.fixture
def collected(request):
    """``({module::test: collected items}, {paths of the collected modules})`` of this session."""
    return request.config.stash[COLLECTED]


def pytest_configure(config):
    """One persistent JAX compilation cache for the session, shared by the xdist workers and the subprocesses
    the tests start (they inherit the environment), removed at the end; kept as it is when the caller set
    ``JAX_COMPILATION_CACHE_DIR``. Every compiled program is stored."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or hasattr(config, "workerinput"):
        return
    path = tempfile.mkdtemp(prefix="jaxcollapse-tests-jax-cache-")
    config.stash[CACHE] = path
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    # every program, however fast it compiles: the subprocesses, notebook kernels and doc blocks recompile
    # the same small programs otherwise
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    path = config.stash.get(CACHE, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def x64():
    """Run the test body with 64-bit JAX types, as the engine does."""
    with jax.enable_x64(True):
        yield
