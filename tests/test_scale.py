"""Metrics against a NumPy reference, skipping collapsed chunks, runs across processes, host memory."""

import importlib
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

simulate_module = importlib.import_module("jaxcollapse.simulate")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference_metrics(p, p0, p1):
    """The 8 metrics of ``(..., C, V)`` tables in plain NumPy, per context."""
    alive = p > 0
    p0 = np.broadcast_to(p0, p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = ((p0 > 0) & ~alive).any(axis=-1)
        kl = np.where(lost, np.inf, np.sum(np.where(p0 > 0, p0 * (np.log(np.where(p0 > 0, p0, 1))
                                                                  - np.log(np.where(alive, p, 1))), 0), axis=-1))
        return {
            "collision": (p * p).sum(axis=-1), "max_prob": p.max(axis=-1),
            "l1_initial": np.abs(p - p0).sum(axis=-1), "l1_first": np.abs(p - p1).sum(axis=-1),
            "entropy": -np.sum(np.where(alive, p * np.log(np.where(alive, p, 1)), 0), axis=-1),
            "support": alive.sum(axis=-1).astype(float), "missing_mass": np.where(alive, 0, p0).sum(axis=-1),
            "kl": kl,
        }


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
    ("partially, per slot", ZIPF, jc.partially_synthetic(12, 9)),
    ("partially, table", jc.zipf(6, 1.0), jc.partially_synthetic(20, 7)),
    ("fresh real, per slot", ZIPF, jc.fresh_real(25, 0.4)),
    ("accumulate, table", jc.zipf(4, 1.0), jc.accumulate(5, 3)),
    ("4 contexts, per slot", jc.table(TABLE, np.array([0.4, 0.3, 0.0, 0.3])),
     jc.partially_synthetic(np.array([5, 9, 3, 7]), np.array([2, 3, 1, 4]))),
    ("4 contexts, table", jc.table(TABLE, np.array([0.4, 0.3, 0.2, 0.1])), jc.fully_synthetic(np.array([30, 12, 3, 20]))),
]


@pytest.mark.parametrize("what,initial,regime", RESAMPLE_CASES, ids=[c[0] for c in RESAMPLE_CASES])
def test_resample_metrics_match_numpy(x64, what, initial, regime):
    """The resample kernel's metrics (per slot or on the count table, whichever it picks) equal the plain
    formulas on the chain's model, generation after generation, to the last bits."""
    g = 8
    config, params = kernel.build(initial, regime, generations=g, sampler="resample")
    assert config.sampler == "resample"
    assert (config.slots > config.contexts * config.vocab) == what.endswith("table"), config
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
    assert simulate_module.frozen_when_collapsed(kernel.build(p, jc.fully_synthetic(3), generations=2)[0])
    fast = jc.simulate(5, p, jc.fully_synthetic(3), **kw)
    assert fast.collapsed.all() and fast.collapse_time.max() < 30     # most generations were skipped
    monkeypatch.setattr(simulate_module, "frozen_when_collapsed", lambda config: False)
    simulate_module._segment.clear_cache()
    try:
        slow = jc.simulate(5, p, jc.fully_synthetic(3), **kw)
    finally:
        simulate_module._segment.clear_cache()
    for name in metrics.METRICS:
        assert np.array_equal(fast.traces[name], slow.traces[name], equal_nan=True), name
        assert np.array_equal(fast.context_traces[name], slow.context_traces[name], equal_nan=True), name
    assert np.array_equal(fast.final, slow.final)
    assert np.array_equal(fast.collapse_time, slow.collapse_time)
    assert np.array_equal(fast.collapse_token, slow.collapse_token)
