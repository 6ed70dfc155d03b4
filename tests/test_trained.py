"""Trained estimators (optax), the neural n-gram model, autoregressive generation and the text studies.

Appendix B.1 of the paper: the maximum-likelihood softmax over one-hot contexts is the empirical frequency.
Full-batch gradient descent with step ``η`` on the token-level loss moves the logits of context ``j`` by
``-η w_j (p_j - q_j)`` (``w_j`` its share of the tokens); in the gradient-flow limit a token that was never seen
obeys ``dp_k/dt <= -η w_j p_k²``, so after ``t`` steps from the uniform start ``p_k <= 1 / (V + η w_j t)``.
The seen tokens' deficit equals that mass to first order, so ``‖p_j - q_j‖_1 <= 2 U_j / (V + η w_j t)`` with
``U_j`` unseen tokens: the tolerance of the equivalence tests below.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stats import assert_mean, assert_proportion

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse import theory
from jaxcollapse import trained as T
from jaxcollapse.core.autoregressive import autoregressive, context_tokens, generate, transitions
from jaxcollapse.errors import ConfigError

COUNTS = np.array([[5, 3, 2, 0, 0, 0], [0, 1, 1, 8, 0, 0], [2, 2, 2, 2, 2, 0]])


def _fit(counts, estimator="softmax", initial=None, **opts):
    initial = initial if initial is not None else jc.table(np.full(counts.shape, 1 / counts.shape[1]),
                                                           counts.sum(axis=1))
    config, params = T.build(initial, jc.fully_synthetic(int(counts.sum())), generations=1, estimator=estimator,
                             training=T.Training(**opts))
    params = jax.tree.map(jnp.asarray, params)
    w = T.fit(jax.random.key(0), jnp.asarray(counts), T.init_weights(jax.random.key(1), config, params), config,
              params)
    return np.asarray(T.probabilities(w, config, params)), w, config, params


def _bound(counts, lr, steps):
    v = counts.shape[1]
    share = counts.sum(axis=1) / counts.sum()
    return (counts == 0).sum(axis=1) / (v + lr * share * steps)


@pytest.mark.parametrize("steps", [500, 4000])
def test_full_batch_gradient_descent_converges_to_counts(x64, steps):
    p, *_ = _fit(COUNTS, optimizer="sgd", learning_rate=5.0, steps=steps)
    q = COUNTS / COUNTS.sum(axis=1, keepdims=True)
    bound = _bound(COUNTS, 5.0, steps)
    unseen = np.where(COUNTS == 0, p, 0.0).sum(axis=1)
    assert np.all(unseen <= bound)
    assert np.all(np.abs(p - q).sum(axis=1) <= 2 * bound + 1e-12)
    assert np.all(unseen > 0)  # logits never reach -inf: only the limit is the counting estimate


def test_label_smoothing_optimum_is_mixed_with_uniform(x64):
    # the smoothed target (1-ε) q + ε/V has full support, so the loss is strongly convex on it: exact limit
    eps = 0.1
    p, *_ = _fit(COUNTS, optimizer="sgd", learning_rate=5.0, steps=3000, label_smoothing=eps)
    q = COUNTS / COUNTS.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, (1 - eps) * q + eps / COUNTS.shape[1], atol=1e-9)


def test_weight_decay_is_an_l2_penalty_at_the_sgd_fixed_point(x64):
    lam = 0.01
    p, w, config, params = _fit(COUNTS, optimizer="sgd", learning_rate=5.0, steps=3000, weight_decay=lam)
    q = COUNTS / COUNTS.sum(axis=1, keepdims=True)
    share = (COUNTS.sum(axis=1) / COUNTS.sum())[:, None]
    residual = share * (p - q) + lam * np.asarray(w["logits"])
    assert np.max(np.abs(residual)) < 1e-10
    assert p.min() > 1e-3  # the penalty keeps every token alive


def test_embedding_with_one_context_is_the_softmax(x64):
    counts = np.array([[7, 2, 1, 0]])
    a, *_ = _fit(counts, "softmax", steps=50)
    b, *_ = _fit(counts, "embedding", steps=50)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


def test_embedding_fits_a_table_and_shares_parameters(x64):
    corpus = jc.ngram_model("abcab cabba acbca bcabc " * 40, order=2)
    counts = np.rint(corpus.initial.probs * corpus.counts[:, None]).astype(np.int64)
    p, _, config, params = _fit(counts, "embedding", initial=corpus, steps=300, learning_rate=0.05)
    l1 = np.abs(p - corpus.initial.probs).sum(axis=1) @ corpus.initial.weights
    assert l1 < 0.05
    # a context with no data still learns: its prediction comes from the shared parameters
    counts[0] = 0
    trained, *_ = _fit(counts, "embedding", initial=corpus, steps=300, learning_rate=0.05)
    untrained = np.asarray(T.probabilities(T.init_weights(jax.random.key(1), config, params), config, params))
    assert np.abs(trained[0] - untrained[0]).sum() > 0.1


def test_trained_generation_one_matches_counting_on_the_same_data():
    # generation 1 draws the same real samples for every estimator (same keys), so the B.1 bound applies
    p0 = jc.table(np.array([[0.5, 0.3, 0.2, 0.0, 0.0], [0.1, 0.1, 0.1, 0.1, 0.6]]), [0.5, 0.5])
    kw = dict(chains=6, generations=1)
    sgd = T.Training(optimizer="sgd", learning_rate=5.0, steps=2000)
    count = jc.simulate_trained(3, p0, jc.fully_synthetic(40), estimator="count", **kw).final
    soft = jc.simulate_trained(3, p0, jc.fully_synthetic(40), estimator="softmax", training=sgd, **kw).final
    for c, s in zip(count, soft):
        counts = np.rint(c * 20).astype(int)
        assert np.all(np.abs(s - c).sum(axis=1) <= 2 * _bound(counts, 5.0, 2000) + 1e-12)
    # chain i's trajectory does not depend on how chains are chunked
    chunked = jc.simulate_trained(3, p0, jc.fully_synthetic(40), estimator="softmax", training=sgd, chunk_size=4,
                                 **kw).final
    np.testing.assert_array_equal(chunked, soft)


def test_minibatches_are_token_subsamples(x64):
    counts = jnp.asarray([[6, 0, 2], [1, 1, 0]])
    draw = jax.jit(jax.vmap(lambda k: T.minibatch(k, counts, 7)))
    batches = np.asarray(draw(jax.random.split(jax.random.key(0), 4000))).reshape(4000, -1)
    assert np.all(batches.sum(axis=1) == 7)
    assert np.all(batches[:, np.asarray(counts).reshape(-1) == 0] == 0)
    assert_mean(batches, 7 * np.asarray(counts).reshape(-1) / 10, what="E minibatch counts")


def test_order_one_autoregressive_is_fully_synthetic_in_distribution():
    # one context: the generated text is n i.i.d. draws, so Theorem 1 and the exact collapse law hold
    p = np.array([0.5, 0.3, 0.15, 0.05])
    n, g, chains = 8, 12, 3000
    r = jc.simulate_trained(5, jc.table(p), autoregressive(n, length=3), chains=chains, generations=g,
                           estimator="count")
    assert_mean(r.traces["collision"][:, 1:], theory.fully_synthetic_collision(p, n, g)[1:], what="E sigma_m")
    collapsed = (r.collapse_time[:, None] >= 0) & (r.collapse_time[:, None] <= np.array([4, 12]))
    assert_proportion(collapsed, theory.collapsed_probability(p, n, g)[[4, 12]], what="P(T <= m)")


def test_autoregressive_text_follows_transitions():
    corpus = jc.ngram_model("abcab" * 50, order=2)
    nxt = transitions(context_tokens(corpus.initial), corpus.initial.vocab)
    labels, contexts = corpus.initial.labels, corpus.initial.context_labels
    for j in range(len(contexts)):
        for k, tok in enumerate(labels):
            assert nxt[j, k] == (contexts.index(tok) if tok in contexts else -1)
    r = jc.simulate_trained(0, corpus, autoregressive(200, length=20), chains=20, generations=6, estimator="count")
    # a token never seen after a context is never generated after it
    assert np.all(r.final[:, corpus.initial.probs == 0] == 0)
    assert r.settings["context_l1"][0] == 0 and len(r.settings["context_l1"]) == 7


def test_generated_text_is_counted_exactly(x64):
    # a deterministic cycle a -> b -> c -> d -> a over order-2 contexts: every text follows it exactly
    corpus = jc.ngram_model("abcd" * 30, order=2)
    ids = context_tokens(corpus.initial)
    nxt = jnp.asarray(transitions(ids, 4))
    probs = jnp.asarray(corpus.initial.probs)
    gen = jax.jit(lambda k, b: generate(k, probs, jnp.full(4, 0.25), nxt, sequences=5, length=8, budget=b))
    counts, visits = gen(jax.random.key(0), 33)
    assert int(counts.sum()) == 33 and int(visits.sum()) == 33
    assert np.all(np.asarray(counts)[np.asarray(corpus.initial.probs) == 0] == 0)
    counts, _ = gen(jax.random.key(1), 40)  # 5 texts of 8 tokens: each goes round the cycle twice
    np.testing.assert_array_equal(np.asarray(counts).sum(axis=0), [10] * 4)
def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="learning_rate"):
        T.Training(learning_rate=0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        T.Training(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="optimizer"):
        T.Training(optimizer="lion")
    with pytest.raises(ConfigError, match="estimator"):
        T.build(jc.zipf(5), jc.fully_synthetic(5), generations=2, estimator="transformer")
    with pytest.raises(ConfigError, match="regime"):
        T.build(jc.zipf(5), jc.most_recent(5, 2), generations=2)
    with pytest.raises(ConfigError, match="context"):
        T.build(jc.dirichlet(5, contexts=3), jc.fully_synthetic(30), generations=2, estimator="embedding")
    with pytest.raises(ConfigError, match="fraction"):
        autoregressive(10, fraction=1.5)


def test_cli_runs_trained_and_autoregressive(tmp_path, capsys):
    out = tmp_path / "soft"
    code = cli.main(["run", "--estimator", "softmax", "--steps", "5", "--vocab", "20", "--support", "10",
                     "-n", "20", "--chains", "8", "-g", "3", "-o", str(out), "--no-plots", "-q"])
    assert code == 0
    run = jc.load_run(out)
    assert run.manifest["settings"]["estimator"] == "softmax"
    assert "--steps 5" in run.manifest["command"]
    corpus = tmp_path / "t.txt"
    corpus.write_text("the cat sat on the mat. " * 20)
    code = cli.main(["run", "--regime", "autoregressive", "--corpus", str(corpus), "--fraction", "0.5",
                     "--chains", "4", "-g", "2", "-o", str(tmp_path / "ar"), "--no-plots", "-q"])
    assert code == 0
    manifest = json.loads((tmp_path / "ar" / "manifest.json").read_text())
    assert manifest["settings"]["regime"].startswith("autoregressive(")
    capsys.readouterr()
    for bad, word in ((["--estimator", "softmax", "--learning-rate", "0"], "--learning-rate"),
                      (["--estimator", "softmax", "--label-smoothing", "1"], "--label-smoothing"),
                      (["--estimator", "softmax", "--steps", "0"], "--steps"),
                      (["--estimator", "softmax", "--temperature", "0.5"], "--temperature"),
                      (["--estimator", "lion"], "--estimator")):
        code = cli.main(["run", *bad, "-o", str(tmp_path / "bad"), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and word in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad").exists()


def test_a_trained_run_names_its_estimator_and_floor():
    from jaxcollapse.cli.settings import default_out_name, describe_fit

    r = jc.simulate_trained(0, jc.zipf(10, 1.1, 6), jc.fully_synthetic(20), chains=3, generations=1,
                            estimator="softmax", training=jc.Training(steps=1, floor=1e-4))
    assert "estimator softmax, floor 0.0001, chains=3" in repr(r) and len(repr(r)) < 160
    assert "estimator softmax, floor 0.0001" in r._title()
    assert "within 1 generation" in r.format() and "1 generations" not in r.format()
    counted = dataclasses.replace(r, settings={k: v for k, v in r.settings.items() if k not in ("estimator", "training")})
    assert "estimator" not in repr(counted) and "estimator" not in counted._title()   # the counting engine's
    res = {"regime": "autoregressive", "estimator": "embedding", "floor": 1e-6}
    assert describe_fit(res) == "estimator embedding, floor 1e-06"
    assert default_out_name(res) == "autoregressive-embedding-floor1e-06"
    assert describe_fit({"regime": "autoregressive", "estimator": "count"}) == "estimator count"
    assert default_out_name({"regime": "fully_synthetic"}) == "fully_synthetic" and not describe_fit({})


def test_default_chunk_keeps_large_tables_in_small_chunks():
    corpus = jc.ngram_model("the cat sat on the mat and the dog sat on the log " * 8, order=3)
    with jax.enable_x64(True):
        big, _ = T.build(jc.table(np.full((400, 50), 1 / 50)), jc.fully_synthetic(1000), generations=2)
        small, _ = T.build(jc.zipf(600, 1.1, 52), jc.fully_synthetic(100), generations=2)
        text, _ = T.build(corpus, autoregressive(20_000, 0.5), generations=2, estimator="count")
    assert T.default_chunk(big) == T.CHUNK_BYTES // (8 * 8 * 400 * 50)
    assert T.default_chunk(small) == T.CHUNK_BYTES // (8 * 8 * 600) < T.DEFAULT_CHUNK
    assert 1 <= T.default_chunk(text) < T.default_chunk(
        T.build(corpus, autoregressive(200, 0.5), generations=2, estimator="count")[0])


def test_fig5_writes_figure_table_and_headline(tmp_path):
    from jaxcollapse.studies.text import fig5

    text = "the cat sat on the mat, the dog ate the hat. " * 30
    head = fig5(tmp_path, scale=0.01, text=text, order=2, generations=2, contexts_sampled=50,
                estimators=("count",))
    assert (tmp_path / "fig5.png").read_bytes()[:4] == b"\x89PNG"
    lines = (tmp_path / "fig5.csv").read_text().splitlines()
    assert lines[0] == "estimator,synthetic_fraction,generation,mean,ci_low,ci_high,chains"
    assert len(lines) == 1 + 3 * 2
    saved = json.loads((tmp_path / "fig5.json").read_text())
    assert saved["l1_at_last"] == head["l1_at_last"]
    full, fifth = head["l1_at_last"]["count/1"][0], head["l1_at_last"]["count/0.2"][0]
    assert full > 0 and fifth > 0
