"""The engine against the exact results of model.md §4, at fixed keys.

Each ``assert_mean`` / ``assert_proportion`` call fails with probability at most ``FAIL_PROB`` when the engine
is right (Bonferroni over the generations or tokens it checks at once; tests/stats.py states the budget).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import theory
from jaxcollapse.bench.reference import np_decode
from stats import assert_mean, assert_proportion

P = np.array([0.4, 0.3, 0.15, 0.1, 0.05, 0.0])
CHECK = np.array([1, 2, 3, 5, 8, 12, 20, 30])


def sq_dev(result, p):
    return ((result.final[:, 0, :] - p) ** 2).sum(axis=1)


KERNELS = ["resample", "tokens"]


@pytest.mark.parametrize("sampler", KERNELS)
def test_fully_synthetic_exact_moments(sampler):
    n, g = 20, 30
    r = jc.simulate(11, P, jc.fully_synthetic(n), chains=20000, generations=g, sampler=sampler)
    assert_mean(r.traces["collision"][:, CHECK], theory.fully_synthetic_collision(P, n, g)[CHECK],
                what="E collision (Theorem 1 eq. 6)")
    assert_mean(sq_dev(r, P), theory.fully_synthetic_sq_deviation(P, n, g)[g], what="E||p^(m) - p||^2")
    assert_mean(r.final[:, 0, :5], P[:5], what="E p^(m) = p")
    assert_mean(r.traces["support"][:, CHECK], theory.expected_alive(P, n, g)[CHECK], what="E #alive tokens")
    collapsed = (r.collapse_time[:, None] >= 0) & (r.collapse_time[:, None] <= CHECK)
    assert_proportion(collapsed, theory.collapsed_probability(P, n, g)[CHECK], what="P(collapsed by m)")
    assert np.all(r.final[:, 0, 5] == 0) and np.all(r.traces["support"] <= 5), "a lost token reappeared"


@pytest.mark.parametrize("sampler", KERNELS)
def test_collapse_token_is_drawn_with_initial_probability(sampler):
    """Proposition 1: P(collapse onto i) = p_i. With n = 5 every chain collapses within 200 generations."""
    r = jc.simulate(12, P, jc.fully_synthetic(5), chains=20000, generations=200, sampler=sampler)
    assert np.all(r.collapsed)
    tokens = r.collapse_token[:, 0]
    assert_proportion(tokens[:, None] == np.arange(5), P[:5], what="P(collapse onto token i)")
    t = r.collapse_time
    assert_mean(t.astype(float), theory.expected_collapse_time(P, 5), what="E[T]")
    m = r.traces["max_prob"]
    assert np.all(m[np.arange(len(t)), t] == 1.0) and np.all(m[np.arange(len(t)), t - 1] < 1.0)


@pytest.mark.parametrize("sampler", KERNELS)
def test_partially_synthetic_corrected_theorem2(sampler):
    big_n, n, g = 20, 10, 30
    r = jc.simulate(13, P, jc.partially_synthetic(big_n, n), chains=20000, generations=g, sampler=sampler)
    assert_mean(r.traces["collision"][:, CHECK], theory.theorem2_collision(P, big_n, n, g)[CHECK],
                what="E collision (corrected Theorem 2)")
    assert_mean(sq_dev(r, P), theory.partial_sq_deviation(P, big_n, n, g)[g], what="E||p^(m) - p||^2")
    printed = theory.theorem2_collision(P, big_n, n, g, corrected=False)
    z = (r.traces["collision"][:, 1].mean() - printed[1]) / (r.traces["collision"][:, 1].std() / np.sqrt(20000))
    assert abs(z) > 10, "the paper's printed sign should be visibly wrong at m = 1"


@pytest.mark.parametrize("sampler", KERNELS)
def test_fresh_real_exact_deviation(sampler):
    m, lam, g = 30, 0.6, 30
    r = jc.simulate(14, P, jc.fresh_real(m, lam), chains=20000, generations=g, sampler=sampler)
    d = theory.fresh_real_sq_deviation(P, m, lam, g)
    assert_mean(r.traces["collision"][:, CHECK], theory.collision(P) + d[CHECK],
                what="E collision = S0 + E||p^(m) - p||^2")
    assert_mean(sq_dev(r, P), d[g], what="E||p^(m) - p||^2")


@pytest.mark.parametrize("sampler", KERNELS)
def test_accumulate_exact_diversity(sampler):
    big_n, n, g = 10, 10, 30
    r = jc.simulate(15, P, jc.accumulate(big_n, n), chains=20000, generations=g, sampler=sampler)
    assert_mean(r.traces["collision"][:, CHECK], 1 - theory.accumulate_diversity(P, big_n, n, g)[CHECK],
                what="E collision (accumulate)")


@pytest.mark.parametrize("big_n, n, train", [(15, 10, 12), (8, 3, 2)])
def test_accumulate_subsample_exact_collision(big_n, n, train):
    g = 30
    r = jc.simulate(21, P, jc.accumulate_subsample(big_n, n, train=train), chains=20000, generations=g)
    assert r.settings["sizes"]["train"] == [train]
    assert_mean(r.traces["collision"][:, CHECK],
                theory.accumulate_subsample_collision(P, big_n, n, train, g)[CHECK],
                what="E collision (accumulate-subsample)")


@pytest.mark.parametrize("regime", [
    jc.accumulate_subsample(15, 10, train=12),
    jc.most_recent(12, 3),
    jc.random_history(12),
])
def test_unbiased_regimes_keep_the_mean(regime):
    """Every regime without decoding mixes unbiased refits: E p^(m) = p."""
    r = jc.simulate(16, P, regime, chains=20000, generations=12)
    assert_mean(r.final[:, 0, :5], P[:5], what=f"E p^(m) = p for {regime.kind}")
    assert np.all(r.final[:, 0, 5] == 0)


def test_most_recent_window_one_is_fully_synthetic():
    n, g = 10, 30
    r = jc.simulate(17, P, jc.most_recent(n, 1), chains=20000, generations=g)
    assert_mean(r.traces["collision"][:, CHECK], theory.fully_synthetic_collision(P, n, g)[CHECK],
                what="most_recent(window=1) collision")


def test_ngram_contexts_follow_their_own_sample_sizes():
    table = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    weights = np.array([0.5, 0.3, 0.2])
    init = jc.table(table, weights)
    sizes = np.array([8, 15, 4])
    g = 20
    r = jc.simulate(18, init, jc.fully_synthetic(sizes), chains=20000, generations=g, per_context=True)
    per = r.context_traces["collision"]
    for c in range(3):
        assert_mean(per[:, CHECK[:6], c], theory.fully_synthetic_collision(table[c], sizes[c], g)[CHECK[:6]],
                    what=f"context {c} collision")
    expected = sum(weights[c] * theory.fully_synthetic_collision(table[c], sizes[c], g) for c in range(3))
    assert_mean(r.traces["collision"][:, CHECK[:6]], expected[CHECK[:6]], what="weighted collision")
    assert np.all(r.context_collapse_time[:, 2] == 0)
    both = (r.context_collapse_time >= 0).all(axis=1)
    assert np.array_equal(both, r.collapse_time >= 0)
    assert np.array_equal(np.where(both, r.context_collapse_time.max(axis=1), -1), r.collapse_time)


def test_total_split_by_context_weights():
    init = jc.table(np.array([[0.5, 0.5], [0.9, 0.1]]), [3, 1])
    config, params = jc.build(init, jc.fully_synthetic(10), generations=2)
    assert params.synthetic.tolist() == [8, 2]


@pytest.mark.parametrize("regime, sampler, chunk", [
    (jc.fully_synthetic(7), "tokens", 1), (jc.partially_synthetic(9, 5), "tokens", 7),
    (jc.accumulate_subsample(8, 4, train=6), "auto", 1), (jc.most_recent(9, 2), "auto", 7),
    (jc.fresh_real(10, 0.5), "tokens", 1), (jc.partially_synthetic(9, 5), "resample", 7),
    (jc.accumulate(6, 3), "resample", 1), (jc.fresh_real(10, 0.5), "resample", 7)])
def test_trajectories_do_not_depend_on_chunk_size(regime, sampler, chunk):
    """Models, collapse times and tokens are bit-identical; metrics are sums whose order XLA may pick per
    batch shape, so they agree to the last few bits (1e-13 relative). Chunks of 1 (a batch of one) and of 7
    (the last one padded) each for every kernel: tokens, auto (binomial) and resample."""
    kw = dict(chains=23, generations=9, sampler=sampler)
    whole = jc.simulate(5, P, regime, **kw)
    part = jc.simulate(5, P, regime, chunk_size=chunk, **kw)
    assert np.array_equal(whole.final, part.final)
    for m in whole.traces:
        assert np.allclose(whole.traces[m], part.traces[m], rtol=1e-13, atol=1e-15, equal_nan=True), m
    assert np.array_equal(whole.traces["support"], part.traces["support"])
    assert np.array_equal(whole.collapse_time, part.collapse_time)
    assert np.array_equal(whole.collapse_token, part.collapse_token)


def test_both_samplers_give_the_same_law():
    n, g = 30, 12
    for sampler in ("tokens", "binomial"):
        r = jc.simulate(19, P, jc.fully_synthetic(n), chains=20000, generations=g, sampler=sampler)
        assert r.settings["sampler"] == sampler
        assert_mean(r.traces["collision"][:, [1, 4, 12]], theory.fully_synthetic_collision(P, n, g)[[1, 4, 12]],
                    what=f"{sampler} collision")


def test_public_step_reproduces_simulate():
    """init/step composed by hand with the documented keys give chain i's trajectory bit for bit (its
    metrics to the last bits: a batch of one sums in another order)."""
    regime, g = jc.partially_synthetic(9, 6), 6
    r = jc.simulate(3, P, regime, chains=4, generations=g, sampler="tokens")
    with jax.enable_x64(True):
        config, params = jc.build(P, regime, generations=g, sampler="tokens")
        chain_key = jax.random.fold_in(jax.random.key(3), 2)
        state = jc.init(chain_key, params, config)
        trace = [float(jc.measure(state, params)["collision"])]
        step = jax.jit(jc.step, static_argnums=3)
        for m in range(1, g + 1):
            state, info = step(jax.random.fold_in(chain_key, m), state, params, config)
            trace.append(float(info["collision"]))
    assert np.array_equal(np.asarray(state.model), r.final[2])
    assert np.allclose(np.array(trace), r.traces["collision"][2], rtol=1e-13, atol=0)


def test_public_step_under_vmap_equals_the_step_of_each_chain():
    """The public step is one computation for every generation, the first included: under vmap over chains at
    generation 0, at a later generation, or at mixed generations, it equals the unbatched step chain by chain."""
    regime, g = jc.partially_synthetic(9, 6), 4
    with jax.enable_x64(True):
        config, params = jc.build(P, regime, generations=g, sampler="tokens")
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(3), i))(jnp.arange(5))
        start = states = jax.vmap(lambda k: jc.init(k, params, config))(keys)
        single = jax.jit(lambda k, s: jc.step(k, s, params, config))
        batched = jax.jit(jax.vmap(single))
        for m in (1, 2, "mixed"):
            if m == "mixed":       # chains 0, 2, 4 at generation 2, chains 1 and 3 at generation 0
                states = jax.tree.map(lambda a, b: a.at[1::2].set(b[1::2]), states, start)
            ks = jax.vmap(lambda k, s: jax.random.fold_in(k, s.generation + 1))(keys, states)
            new, info = batched(ks, states)
            for i in range(5):
                one, one_info = single(ks[i], jax.tree.map(lambda x: x[i], states))
                assert np.array_equal(np.asarray(new.model[i]), np.asarray(one.model))
                assert int(new.generation[i]) == int(one.generation) == int(states.generation[i]) + 1
                # the metrics to rounding: batched, XLA may sum in another order
                assert abs(float(info["collision"][i]) - float(one_info["collision"])) < 1e-12
            states = new


def test_generation_one_is_the_fit_on_real_samples_in_every_regime(x64):
    """The count kernel's step serves generation 1 in every regime (``Kernel.first_in_step``; the driver then
    compiles its sampler once): from generation 0 it fits ``first`` samples of ``p^(0)`` itself, not decoded,
    drawn with the generation's first key (the first ``train`` of them under accumulate-subsample), and pools
    them where the regime pools; bit for bit the sampler's own draw."""
    from jaxcollapse.core import count, rng, samplers
    from jaxcollapse.core.kernels import kernel_for

    top = jc.Decoding(temperature=0.7, top_k=2)
    # the token sampler (the binomial one compiles for seconds; its rows depend only on their own inputs, and the
    # golden outputs of every regime, recorded with generation 1 in a program of its own, hold it bit for bit)
    sampler = "tokens"
    cases = [(jc.fully_synthetic(40), None), (jc.partially_synthetic(20, 10), top), (jc.fresh_real(20, 0.5), None),
             (jc.accumulate(20, 10), None), (jc.accumulate_subsample(20, 10, 15), None),
             (jc.most_recent(12, 3), top), (jc.random_history(10), None)]
    for regime, decoding in cases:
        config, params = jc.build(P, regime, generations=3, sampler=sampler, decoding=decoding)
        kernel = kernel_for(config)
        assert kernel is count.KERNEL and kernel.first_in_step(config), regime

        def both(key):
            s1, info = kernel.step(key, kernel.init(key, params, config), params, config)
            k_draw, k_sub = rng.split(key)
            drawn = samplers.multinomial(k_draw, jnp.asarray(P, jnp.float64)[None], params.first,
                                         method=sampler, capacity=config.capacity)
            counts, total = drawn, params.first
            if config.subsample:
                counts = samplers.hypergeometric_subsample(k_sub, drawn, params.train, method=config.subsample,
                                                           capacity=config.pool_capacity)
                total = params.train
            return s1, info, drawn, counts / total[:, None]

        s1, info, drawn, fitted = jax.jit(both)(jax.random.fold_in(jax.random.key(5), 1))
        assert info == {} and int(s1.generation) == 1, regime
        assert np.array_equal(np.asarray(s1.model), np.asarray(fitted)), regime
        assert np.array_equal(np.asarray(s1.first), np.asarray(s1.model)), regime
        if config.pooled:
            assert np.array_equal(np.asarray(s1.pool), np.asarray(drawn)), regime


def test_metrics_at_generation_zero_and_after_loss():
    r = jc.simulate(1, P, jc.fully_synthetic(3), chains=200, generations=5)
    t = r.traces
    assert np.all(t["collision"][:, 0] == theory.collision(P))
    assert np.all(t["support"][:, 0] == 5) and np.all(t["kl"][:, 0] == 0) and np.all(t["l1_initial"][:, 0] == 0)
    assert np.all(np.isnan(t["l1_first"][:, 0])) and not np.any(np.isnan(t["l1_first"][:, 1:]))
    for m in ("collision", "max_prob", "l1_initial", "entropy", "support", "missing_mass", "kl"):
        assert not np.any(np.isnan(t[m])), m
    lost = t["missing_mass"] > 0
    assert lost.any() and np.all(np.isinf(t["kl"][lost])) and np.all(np.isfinite(t["kl"][~lost]))
    assert np.allclose(t["missing_mass"][:, -1], ((r.final[:, 0, :] == 0) * P).sum(axis=1), rtol=0, atol=1e-15)
    s = r.summary["kl"]
    assert np.isinf(s.mean[-1]) and not np.isnan(s.mean).any()


def test_decoding_top_k_one_collapses_at_generation_two():
    r = jc.simulate(2, P, jc.fully_synthetic(50), chains=500, generations=4, decoding=jc.Decoding(top_k=1))
    assert np.all(r.collapse_time == 2)
    assert np.array_equal(r.collapse_token[:, 0], np.argmax(r.final[:, 0, :], axis=1))


def test_decode_matches_numpy_reference(x64):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(12), size=4)
    p[:, 3] = 0
    p /= p.sum(axis=1, keepdims=True)
    for temp, k, top_p in [(0.5, None, None), (2.0, 5, None), (1.0, None, 0.7), (0.7, 4, 0.5), (1.0, 12, 1.0)]:
        config, params = jc.build(jc.table(p), jc.fully_synthetic(10), generations=1,
                                  decoding=jc.Decoding(temp, k, top_p))
        q = np.asarray(jc.decode(jnp.asarray(p), params, config))
        for row in range(4):
            ref = np_decode(p[row], temp, k, top_p)
            assert np.allclose(q[row] / q[row].sum(), ref / ref.sum(), rtol=1e-12, atol=1e-15), (temp, k, top_p)


def test_low_temperature_speeds_collapse():
    kw = dict(chains=4000, generations=40)
    base = jc.simulate(4, P, jc.fully_synthetic(20), **kw)
    cold = jc.simulate(4, P, jc.fully_synthetic(20), decoding=jc.Decoding(temperature=0.5), **kw)
    assert cold.collapsed.mean() > base.collapsed.mean() + 0.1


def test_smoothing_keeps_every_token():
    r = jc.simulate(6, P, jc.fully_synthetic(5), chains=500, generations=50, smoothing=0.5)
    assert np.all(r.traces["support"][:, 1:] == 6) and not r.collapsed.any()
    assert np.all(np.isfinite(r.traces["kl"]))
    counts = np.rint(r.final[:, 0, :] * (5 + 0.5 * 6) - 0.5)
    assert np.allclose(r.final[:, 0, :], (counts + 0.5) / (5 + 3.0))


def test_summary_interval_and_rows():
    r = jc.simulate(7, P, jc.fully_synthetic(10), chains=300, generations=3)
    s = r.summary["collision"]
    x = r.traces["collision"]
    assert np.allclose(s.mean, x.mean(axis=0)) and np.allclose(s.sd[1:], x.std(axis=0, ddof=1)[1:])
    assert np.all(s.ci_low[1:] < s.mean[1:]) and np.all(s.mean[1:] < s.ci_high[1:])
    rows = r.summary_rows()
    assert len(rows) == 4 * len(jc.METRICS) and rows[0]["generation"] == 0
    assert r.summary_csv().splitlines()[0] == "generation,metric,mean,sd,ci_low,ci_high,n"


def test_auto_picks_resampling_for_small_samples():
    config, _ = jc.build(jc.zipf(600, 1.1), jc.fully_synthetic(100), generations=10)
    assert config.sampler == "resample"
    config, _ = jc.build(jc.zipf(600, 1.1), jc.fully_synthetic(100), generations=10, smoothing=0.1)
    assert config.sampler == "tokens"
    config, _ = jc.build(jc.zipf(100, 1.1), jc.fully_synthetic(10**6), generations=10)
    assert config.sampler == "binomial"


def test_resample_ngram_per_context():
    table = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    weights = np.array([0.5, 0.3, 0.2])
    sizes = np.array([8, 15, 4])
    g = 12
    r = jc.simulate(21, jc.table(table, weights), jc.fully_synthetic(sizes), chains=20000, generations=g,
                    per_context=True, sampler="resample")
    for c in range(3):
        assert_mean(r.context_traces["collision"][:, CHECK[:5], c],
                    theory.fully_synthetic_collision(table[c], sizes[c], g)[CHECK[:5]], what=f"context {c}")
    assert np.all(r.context_collapse_time[:, 2] == 0)
    assert np.allclose(r.final.sum(axis=2), 1)


@pytest.mark.parametrize("sampler", ["resample", "tokens"])
def test_partially_synthetic_collapse_records_follow_the_models(sampler):
    """A context's collapse record is the first generation its model is a Dirac mass. The resample kernel
    decides it from the synthetic samples and p^(1)'s support alone; both samplers agree with the traced
    models."""
    table = np.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05]])
    r = jc.simulate(3, jc.table(table, np.array([0.5, 0.5])),
                    jc.partially_synthetic(np.array([2, 3]), np.array([4, 1])), chains=300, generations=25,
                    per_context=True, sampler=sampler)
    dirac = r.context_traces["max_prob"] == 1.0                                  # (chains, generations + 1, C)
    first = np.where(dirac.any(axis=1), dirac.argmax(axis=1), -1)
    assert np.array_equal(r.context_collapse_time, first)
    # The real samples stay: a context collapses at generation 1, when they are all one token, or never.
    assert 50 < (first >= 0).sum() < 550 and set(first[first >= 0].tolist()) == {1}


def test_random_history_weighs_every_earlier_model_equally_under_decoding(x64):
    """With top_k = 1, p^(1) decodes to a point mass on its top token a; generation 2 then draws from
    (p^(0) + δ_a) / 2, so E[p^(2)_a] = E[(p0_a + 1) / 2] whatever p^(1)'s own top probability is."""
    p0 = np.array([0.4, 0.3, 0.2, 0.1])
    config, params = jc.build(p0, jc.random_history(20), generations=2, decoding=jc.Decoding(top_k=1))
    params = jax.tree.map(jnp.asarray, params)

    def chain(k):
        s1 = jc.first_step(jax.random.fold_in(k, 1), jc.init(k, params, config), params, config)
        s2 = jc.next_step(jax.random.fold_in(k, 2), s1, params, config)
        top = jnp.argmax(s1.model[0])
        return s2.model[0, top], (jnp.asarray(p0)[top] + 1) / 2

    share, expected = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(4), 20000))
    assert_mean(np.asarray(share) - np.asarray(expected), 0.0, what="E[p2_a] - (p0_a + 1)/2")


def test_a_new_regime_is_a_table_entry_and_a_data_step(monkeypatch):
    """Adding a regime to the engine takes an entry of the regime table and the count kernel's data step:
    a copy of the fully synthetic regime under another name runs the same trajectories."""
    import dataclasses

    from jaxcollapse.core import count, regime_table

    spec = dataclasses.replace(regime_table.TABLE["fully_synthetic"], name="copy_of_fully_synthetic")
    monkeypatch.setitem(regime_table.TABLE, spec.name, spec)
    monkeypatch.setitem(count.DATA, spec.name, count.DATA["fully_synthetic"])
    kw = dict(chains=6, generations=5, sampler="tokens", keep_final=True)
    copy = jc.simulate(1, P, jc.regime("copy_of_fully_synthetic", synthetic=10), **kw)
    plain = jc.simulate(1, P, jc.fully_synthetic(10), **kw)
    assert np.array_equal(copy.final, plain.final)
    assert np.array_equal(copy.collapse_time, plain.collapse_time)
