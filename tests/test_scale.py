"""Metrics against a NumPy reference, skipping collapsed chunks, runs across processes, host memory."""

import importlib
import itertools
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import kernel, metrics, resample
from jaxcollapse.bench.reference import metrics_dict as reference_metrics  # the 8 metrics in plain NumPy

simulate_module = importlib.import_module("jaxcollapse.engine.simulate")
from jaxcollapse.core.kernels import kernel_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_close_metrics(got, want, what):
    for name in metrics.METRICS:
        a, b = np.asarray(got[name], np.float64), np.asarray(want[name], np.float64)
        assert np.array_equal(np.isinf(a), np.isinf(b)) and np.array_equal(np.isnan(a), np.isnan(b)), (what, name)
        ok = np.isfinite(b)
        # last-bit rounding of sums of at most a few hundred terms of magnitude <= 100
        assert np.allclose(a[ok], b[ok], rtol=1e-13, atol=1e-13), (what, name, np.max(np.abs(a[ok] - b[ok])))


TABLE = np.zeros((4, 12))
TABLE[:, :5] = [[0.5, 0.5, 0, 0, 0], [0.2, 0.3, 0.5, 0, 0], [1, 0, 0, 0, 0], [0.1, 0.2, 0.3, 0.2, 0.2]]
ZIPF = jc.zipf(40, 1.1, support=20)
RESAMPLE_CASES = [
    ("fully, per slot", ZIPF, jc.fully_synthetic(30)),
    ("partially, table", jc.zipf(6, 1.0), jc.partially_synthetic(20, 7)),
    ("partially, synthetic slots", jc.zipf(12, 1.0), jc.partially_synthetic(20, 7)),
    ("partially n > N, synthetic slots", jc.zipf(40, 1.1, support=6), jc.partially_synthetic(3, 25)),
    ("fresh real, per slot", ZIPF, jc.fresh_real(25, 0.4)),
    ("accumulate, table", jc.zipf(4, 1.0), jc.accumulate(5, 3)),
    ("4 contexts, synthetic slots", jc.table(TABLE, np.array([0.4, 0.3, 0.0, 0.3])),
     jc.partially_synthetic(np.array([5, 9, 3, 7]), np.array([2, 3, 1, 4]))),
    ("4 contexts, table", jc.table(TABLE, np.array([0.4, 0.3, 0.2, 0.1])), jc.fully_synthetic(np.array([30, 12, 3, 20]))),
]


@pytest.mark.parametrize("what,initial,regime", RESAMPLE_CASES, ids=[c[0] for c in RESAMPLE_CASES])
def test_resample_metrics_match_numpy(x64, what, initial, regime):
    """The resample kernel's metrics (per slot, on the count table, or, partially synthetic, from the
    synthetic slots and sums over ``p^(1)``, whichever it picks) equal the plain formulas on the chain's
    model, generation after generation, to the last bits."""
    g = 8
    config, params = kernel.build(initial, regime, generations=g, sampler="resample")
    assert config.sampler == "resample"
    cells = config.contexts * config.vocab
    path = ("synthetic slots" if config.kind == "partially_synthetic" and config.draws <= cells
            else "table" if config.slots > cells else "per slot")
    assert what.endswith(path), config
    dp = jax.tree.map(jnp.asarray, params)

    def chain(k):
        def look(s):
            info = resample.measure(s, dp, config, per_context=True)
            return {n: info[n + "/context"] for n in metrics.METRICS}, resample.model(s, dp, config), s.first

        def body(s, m):
            s = resample.next_step(jax.random.fold_in(k, m), s, dp, config)
            return s, look(s)

        s1 = resample.first_step(k, resample.init(k, dp, config), dp, config)
        _, rest = jax.lax.scan(body, s1, jnp.arange(2, g + 1))
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), look(s1), rest)

    info, models, first = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(3), 32))
    p1 = np.asarray(first).reshape(models.shape) / params.first[:, None]
    want = reference_metrics(np.asarray(models), np.asarray(params.initial), p1)
    assert_close_metrics(info, want, what)
    lost_seen = bool(np.isinf(want["kl"]).any())
    if regime.kind == "fully_synthetic":
        assert lost_seen
    dirac = np.asarray(want["max_prob"]) == 1.0
    assert np.all(np.asarray(info["entropy"])[dirac] == 0.0), what
    if what.startswith("partially n > N"):
        assert dirac.any() and lost_seen


def test_table_metrics_match_numpy(x64):
    """``metrics.per_context`` (count kernels, generation 0) on random tables with lost tokens, exact models
    and undefined ``p1``; KL and L1 are exactly 0 at ``p = p0``."""
    rng = np.random.default_rng(0)
    p0 = rng.dirichlet(np.ones(30), size=3)
    p0[:, :5] = 0
    p0 /= p0.sum(axis=1, keepdims=True)
    f = jax.jit(metrics.per_context)
    for trial in range(40):
        n = int(rng.integers(1, 60))
        p = p0 if trial == 0 else np.stack([rng.multinomial(n, r) / n for r in p0])
        p1 = np.full_like(p0, np.nan) if trial % 5 == 0 else np.stack([rng.multinomial(n, r) / n for r in p0])
        got = f(p, p0, p1)
        assert_close_metrics(got, reference_metrics(p, p0, p1), trial)
        if trial == 0:
            assert np.all(np.asarray(got["kl"]) == 0) and np.all(np.asarray(got["l1_initial"]) == 0)


@pytest.mark.parametrize("sampler", ["resample", "tokens"])
def test_collapsed_chunks_skip_to_identical_results(monkeypatch, sampler):
    """Fully synthetic chains all collapsed within a chunk are carried forward without sampling or measuring;
    the result is bit-identical to computing every generation."""
    p = jc.zipf(6, 1.0, support=4)
    kw = dict(chains=24, generations=60, chunk_size=8, sampler=sampler, per_context=True)
    config = kernel.build(p, jc.fully_synthetic(3), generations=2)[0]
    assert kernel_for(config).freezes(config)
    fast = jc.simulate(5, p, jc.fully_synthetic(3), **kw)
    assert fast.collapsed.all() and fast.collapse_time.max() < 30     # most generations were skipped
    monkeypatch.setattr(simulate_module, "kernel_for", lambda c: kernel_for(c)._replace(freezes=lambda c: False))
    slow = jc.simulate(5, p, jc.fully_synthetic(3), **kw)
    for name in metrics.METRICS:
        assert np.array_equal(fast.traces[name], slow.traces[name], equal_nan=True), name
        assert np.array_equal(fast.context_traces[name], slow.context_traces[name], equal_nan=True), name
    assert np.array_equal(fast.final, slow.final)
    assert np.array_equal(fast.collapse_time, slow.collapse_time)
    assert np.array_equal(fast.collapse_token, slow.collapse_token)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


STUDY = dict(chains=53, generations=7, chunk_size=8, per_context=True, keep_final=True)
PROCESS = textwrap.dedent("""
    import sys
    import jax
    jax.distributed.initialize(coordinator_address="127.0.0.1:" + sys.argv[1], num_processes=2,
                               process_id=int(sys.argv[2]), initialization_timeout=120)
    import numpy as np
    import jaxcollapse as jc
    r = jc.simulate(11, jc.zipf(30, 1.1, support=12), jc.fully_synthetic(20), **{study})
    assert r.settings["processes"] == 2 and jax.process_count() == 2
    arrays = {{"final": r.final, "collapse_time": r.collapse_time, "collapse_token": r.collapse_token,
              "context_collapse_time": r.context_collapse_time}}
    for m in r.traces:
        arrays["trace/" + m] = r.traces[m]
        arrays["context/" + m] = r.context_traces[m]
        for f in ("mean", "sd", "ci_low", "ci_high", "n", "infinite"):
            arrays[f"summary/{{m}}/{{f}}"] = getattr(r.summary[m], f)
    np.savez(sys.argv[3], **arrays)
""").format(study=repr(STUDY))


def test_two_processes_match_one(tmp_path):
    """Two processes of a ``jax.distributed`` job on localhost (CPU, gloo) split the 7 chunks 4 + 3; each
    ends with the whole result, bit-identical to a single-process run: traces, per-context traces, final
    models, collapse times and tokens, and the summary."""
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS, port, str(i), str(tmp_path / f"p{i}.npz")],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    try:
        one = jc.simulate(11, jc.zipf(30, 1.1, support=12), jc.fully_synthetic(20), **STUDY)
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0, logs[i][-3000:]
    for i in range(2):
        with np.load(tmp_path / f"p{i}.npz") as z:
            assert np.array_equal(z["final"], one.final)
            assert np.array_equal(z["collapse_time"], one.collapse_time)
            assert np.array_equal(z["collapse_token"], one.collapse_token)
            assert np.array_equal(z["context_collapse_time"], one.context_collapse_time)
            for m in metrics.METRICS:
                assert np.array_equal(z["trace/" + m], one.traces[m], equal_nan=True), m
                assert np.array_equal(z["context/" + m], one.context_traces[m], equal_nan=True), m
                for f in ("mean", "sd", "ci_low", "ci_high", "n", "infinite"):
                    assert np.array_equal(z[f"summary/{m}/{f}"], getattr(one.summary[m], f), equal_nan=True), (m, f)


MEMORY = textwrap.dedent("""
    import resource, sys
    import jaxcollapse as jc
    chains, generations = int(sys.argv[1]), int(sys.argv[2])
    r = jc.simulate(0, jc.zipf(100, 1.1), jc.fully_synthetic(100), chains=chains, generations=generations,
                    keep_traces=False, keep_final=False)
    assert r.traces is None and r.final is None and r.summary["support"].n[-1] == chains
    # ru_maxrss survives fork and exec (a child of a large test process would report the parent's peak);
    # VmHWM is this process's own peak resident set.
    with open("/proc/self/status") as f:
        hwm = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")]
    print((hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024)   # bytes
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory read from Linux's /proc")
def test_million_chains_fit_in_4_gb_and_memory_does_not_grow_with_generations():
    """1,000,000 chains at vocabulary 100 (n = 100, summary only) peak under 4 GB of host memory; 50,000 chains
    take the same memory for 21 generations as for 2 (their traces would be 50,000 x 22 x 64 bytes = 70 MB)."""
    # 2 and 21 generations compile the same one-generation segment, so only the data can differ.
    runs = {"million": ("1000000", "2"), "short": ("50000", "2"), "long": ("50000", "21")}
    procs = {k: subprocess.Popen([sys.executable, "-c", MEMORY, *a], env=_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for k, a in runs.items()}
    peak = {}
    try:
        for k, p in procs.items():
            out, err = p.communicate(timeout=400)
            assert p.returncode == 0, err[-3000:]
            peak[k] = int(out.split()[-1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    assert peak["million"] < 4e9, peak
    assert peak["long"] - peak["short"] < 32 * 2**20, peak


def test_cli_devices(tmp_path, capsys):
    from jaxcollapse.cli import main

    base = ["run", "--chains", "6", "-g", "3", "--vocab", "8", "--support", "5", "--quiet", "--no-plots"]
    for bad in ("0", "-1", "two", str(len(jax.local_devices()) + 1)):
        assert main(base + ["--devices", bad, "--out", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("jaxcollapse: error: --devices must be 'all' or a number") and "\n" not in err, err
        assert not (tmp_path / bad).exists()
    assert main(base + ["--devices", "1", "--out", str(tmp_path / "one")]) == 0
    run = jc.load_run(str(tmp_path / "one"))
    assert run.config["devices"] == "1" and len(run.result.settings["devices"]) == 1
    assert "--devices 1" in run.manifest["command"]


def test_core_groups_split_the_usable_cores():
    from jaxcollapse.engine import local

    assert local.core_groups(2, [0, 1]) == [[0], [1]]
    assert local.core_groups(2, [0, 1, 2, 3, 5]) == [[0, 1, 2], [3, 5]]
    assert local.core_groups(1, [4, 6]) == [[4, 6]]
    for bad in (0, 3):
        message = f"--processes must be between 1 and the 2 usable CPU cores, got {bad}"
        with pytest.raises(jc.ConfigError, match=message):
            local.core_groups(bad, [0, 1], name="--processes")


def test_chunks_are_shared_by_the_processes():
    """Without a chunk size, every process of a job gets chunks, balanced."""
    from jaxcollapse.engine import simulate as S

    config, _ = jc.build(jc.zipf(100, 1.1), jc.fully_synthetic(10 ** 6), generations=3)
    assert S.chunk_for(config, 16384) == 16384
    assert S.chunk_for(config, 16384, processes=2) == 8192
    assert S.chunk_for(config, 5, processes=2) == 3
    assert S.chunk_for(config, 1, processes=2) == 1


def test_allgather_in_a_local_job_stacks_every_process_in_order(tmp_path, monkeypatch):
    """Process 1 of 2 of :func:`local.launch`: its own tree and process 0's file, stacked in process order; at
    the next call it removes its file of the call before (every process has read it by then)."""
    from jaxcollapse.engine import local

    monkeypatch.setenv(local.JOB_ENV, "2")
    monkeypatch.setenv(local.PROCESS_ENV, "1")
    monkeypatch.setenv(local.EXCHANGE_ENV, str(tmp_path))
    monkeypatch.setattr(local, "_calls", itertools.count())
    assert local.job() == (1, 2)
    mine = {"traces": {"kl": np.full((2, 3), 1.0), "collision": np.arange(6.0).reshape(2, 3)}, "time": np.array([7, 8])}
    theirs = {"traces": {"kl": np.zeros((2, 3)), "collision": -np.ones((2, 3))}, "time": np.array([5, 6])}
    for call in (0, 1):
        (tmp_path / str(call)).mkdir()
        names = [theirs["time"], theirs["traces"]["collision"], theirs["traces"]["kl"]]   # sorted paths
        np.savez(tmp_path / str(call) / "0.npz", *names)
        got = local.allgather(mine)
        assert sorted(got) == ["time", "traces"] and sorted(got["traces"]) == ["collision", "kl"]
        np.testing.assert_array_equal(got["time"], [[5, 6], [7, 8]])
        np.testing.assert_array_equal(got["traces"]["collision"], [-np.ones((2, 3)), np.arange(6.0).reshape(2, 3)])
        np.testing.assert_array_equal(got["traces"]["kl"], [np.zeros((2, 3)), np.ones((2, 3))])
    assert not (tmp_path / "0" / "1.npz").exists() and (tmp_path / "1" / "1.npz").exists()


def test_cli_processes(tmp_path, capsys):
    """``run --processes 2``: two pinned processes write one results directory whose traces, collapse records and
    final models are bit-identical to a one-process run, and leave no exchange folder behind; bad values are
    refused with one line before any process starts."""
    from jaxcollapse.cli import main
    from jaxcollapse.engine import local

    base = ["run", "--chains", "6", "-g", "3", "--vocab", "8", "--support", "5", "--quiet", "--no-plots"]
    cores = len(local.usable_cores())
    for bad in ("0", str(cores + 1)):
        assert main(base + ["--processes", bad, "--out", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("jaxcollapse: error: --processes must be") and "\n" not in err, err
        assert not (tmp_path / bad).exists()
    if cores < 2:
        pytest.skip("one usable CPU core")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(base + ["--out", str(one)]) == 0
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "jaxcollapse", *base, "--processes", "2", "--out", str(two)],
                          env={**_env(), "TMPDIR": str(temp)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(temp.iterdir())
    a, b = jc.load_run(str(one)), jc.load_run(str(two))
    assert b.result.settings["processes"] == 2 and b.result.settings["chunk_size"] == 3
    assert np.array_equal(a.result.final, b.result.final)
    assert np.array_equal(a.result.collapse_time, b.result.collapse_time)
    for m in metrics.METRICS:
        assert np.array_equal(a.result.traces[m], b.result.traces[m], equal_nan=True), m
        np.testing.assert_allclose(a.result.summary[m].mean, b.result.summary[m].mean, rtol=1e-12, atol=1e-15)


def _count_primitive(jaxpr, name: str) -> int:
    """Occurrences of primitive ``name`` in a jaxpr and every jaxpr nested in it."""
    from jax.extend import core as jcore

    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for value in eqn.params.values():
            for sub in (value if isinstance(value, (list, tuple)) else [value]):
                if isinstance(sub, jcore.ClosedJaxpr):
                    total += _count_primitive(sub.jaxpr, name)
                elif isinstance(sub, jcore.Jaxpr):
                    total += _count_primitive(sub, name)
    return total


def test_sweep_segment_skips_collapsed_chunks_with_a_real_branch():
    """Under the points x chains vmaps of a sweep, the driver's skip of collapsed chunks stays a lax.cond
    (one predicate per device), not a select that computes both branches."""
    import jax
    import jax.numpy as jnp

    from jaxcollapse.engine import driver
    from jaxcollapse.sweeps import plan as PL
    from jaxcollapse.sweeps import spec as SP
    from jaxcollapse.sweeps.run import _Task, _job

    spec = SP.spec_from_dict({"chains": 4, "generations": 6, "vocab": 10, "support": 5, "points_per_call": 2,
                              "grid": {"regime": ["fully_synthetic"], "size": [3, 5]}})
    plan = PL.make_plan(spec)
    bucket = plan.buckets[0]
    assert bucket.group == 2
    mesh = driver.mesh_of(jax.devices()[:1])
    with jax.enable_x64(True):
        task = _Task(bucket, bucket.tasks[0], plan)
        job = _job(bucket.config)
        keys, state, *_ = driver.start(task.keys, jnp.arange(bucket.chunk, dtype=jnp.uint32), task.params, job=job,
                                       mesh=mesh)
        args = (keys, state, task.params, jnp.int32(2), jnp.int32(6))
        impl = jax.random.key_impl(task.keys)
        swept = jax.make_jaxpr(lambda *a: driver.segment(*a, job=job, mesh=mesh, length=3, impl=impl))(*args)
        plain = jax.make_jaxpr(lambda *a: driver.segment(*a, job=job._replace(
            kernel=job.kernel._replace(freezes=lambda c: False)), mesh=mesh, length=3, impl=impl))(*args)
    assert _count_primitive(swept.jaxpr, "cond") >= 1          # the skip (no guard per generation: loops stop)
    assert _count_primitive(swept.jaxpr, "cond") == _count_primitive(plain.jaxpr, "cond") + 1


def test_cpu_chunks_are_larger_for_the_binomial_sampler():
    """On a CPU the automatic chunk holds at most MAX_CHUNK chains, the binomial sampler's up to
    MAX_CHUNK_CPU_BINOMIAL; both within the memory budget, balanced over the chunks."""
    from jaxcollapse.engine import simulate as S

    for sampler, cap in (("resample", S.MAX_CHUNK["cpu"]), ("tokens", S.MAX_CHUNK["cpu"]),
                         ("binomial", S.MAX_CHUNK_CPU_BINOMIAL)):
        config, _ = jc.build(jc.zipf(10, 1.1), jc.fully_synthetic(1000), generations=3, sampler=sampler)
        assert S.chunk_for(config, 40000) == -(-40000 // -(-40000 // cap))
        assert S.chunk_for(config, 300) == 300
    config, _ = jc.build(jc.zipf(50000, 1.1), jc.fully_synthetic(10 ** 9), generations=3, sampler="binomial")
    assert S.chunk_for(config, 64) * S.bytes_per_chain(config) <= S.DEFAULT_MEMORY


def test_large_host_arrays_are_mapped_with_their_pages():
    """The run's large host arrays (traces, models) are writable float64 arrays of the asked shape, mapped with
    their pages in place where the OS offers it; small ones are plain np.empty; the values survive pickling and
    views outlive the array they were taken from."""
    import mmap
    import pickle

    from jaxcollapse.engine import collect

    small = collect.empty((10, 3))
    assert small.shape == (10, 3) and small.dtype == np.float64 and small.flags.writeable
    rows = collect.POPULATE_BYTES // (8 * 1000) + 1
    big = collect.empty((rows, 1000), np.int64)
    assert big.shape == (rows, 1000) and big.dtype == np.int64 and big.flags.writeable
    if hasattr(mmap, "MAP_POPULATE"):
        base = big
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(getattr(base, "obj", base), mmap.mmap)
    big[:] = np.arange(1000)
    view = big[5:7]
    assert np.array_equal(pickle.loads(pickle.dumps(big)), big)
    del big
    assert view.sum() == 2 * 499500
