"""Bad inputs give a one-line ConfigError that names the parameter."""

import numpy as np
import pytest

import jaxcollapse as jc

P = np.array([0.5, 0.3, 0.2])


def _run(**kw):
    args = dict(key=0, initial=P, regime=jc.fully_synthetic(10), chains=4, generations=2)
    args.update(kw)
    return jc.simulate(**args)


@pytest.mark.parametrize("call, name", [
    (lambda: _run(initial=[0.5, 0.6]), "sum to 1"),
    (lambda: _run(initial=[0.5, np.nan, 0.5]), "finite"),
    (lambda: _run(initial=[1.2, -0.2]), "non-negative"),
    (lambda: _run(initial=[]), "at least one token"),
    (lambda: _run(initial=np.ones((2, 2, 2))), "initial distribution"),
    (lambda: _run(chains=0), "chains"),
    (lambda: _run(chains=-3), "chains"),
    (lambda: _run(generations=0), "generations"),
    (lambda: _run(regime=jc.fully_synthetic(0)), "synthetic"),
    (lambda: _run(regime=jc.fully_synthetic(-5)), "synthetic"),
    (lambda: _run(regime=jc.fully_synthetic(2.5)), "synthetic"),
    (lambda: _run(regime=jc.partially_synthetic(0, 10)), "real"),
    (lambda: jc.fresh_real(100, 1.5), "fraction"),
    (lambda: jc.fresh_real(100, -0.1), "fraction"),
    (lambda: jc.regime("collapse_fast", synthetic=10), "regime"),
    (lambda: jc.Regime("partially_synthetic", synthetic=10), "real"),
    (lambda: jc.most_recent(10, 0), "window"),
    (lambda: _run(regime=jc.most_recent(3, 5)), "window"),
    (lambda: _run(regime=jc.accumulate_subsample(10, 5, train=11)), "train"),
    (lambda: jc.Decoding(temperature=0), "temperature"),
    (lambda: jc.Decoding(temperature=-1), "temperature"),
    (lambda: jc.Decoding(top_p=0), "top_p"),
    (lambda: jc.Decoding(top_p=1.5), "top_p"),
    (lambda: jc.Decoding(top_k=0), "top_k"),
    (lambda: _run(smoothing=-1), "smoothing"),
    (lambda: _run(smoothing=float("nan")), "smoothing"),
    (lambda: _run(sampler="gpu"), "sampler"),
    (lambda: _run(chunk_size=0), "chunk_size"),
    (lambda: _run(key="seed"), "key"),
    (lambda: _run(regime="fully_synthetic"), "regime"),
    (lambda: jc.table([[0.5, 0.5], [1.0, 0.0]], weights=[1.0]), "weights"),
    (lambda: jc.zipf(0), "vocab"),
    (lambda: jc.zipf(10, support=11), "support"),
    (lambda: jc.zipf(10, exponent=-1), "exponent"),
    (lambda: jc.geometric(10, ratio=1.5), "ratio"),
    (lambda: jc.dirichlet(10, concentration=0), "concentration"),
    (lambda: _run(regime=jc.fully_synthetic([3, 4])), "synthetic"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(jc.ConfigError) as err:
        call()
    message = str(err.value)
    assert name in message and "\n" not in message, message


def test_error_is_a_value_error():
    assert issubclass(jc.ConfigError, ValueError)


def test_initial_is_renormalised_within_tolerance():
    init = jc.table([0.5, 0.5 + 1e-9])
    assert init.probs.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("make, sigma", [
    (lambda: jc.zipf(600, 1.1, support=52), 0.0998),
    (lambda: jc.uniform(10, support=4), 0.25),
])
def test_named_distributions(make, sigma):
    init = make()
    assert init.probs.shape[0] == 1 and abs((init.probs ** 2).sum() - sigma) < 1e-3


def test_geometric_and_dirichlet():
    g = jc.geometric(5, 0.5)
    assert np.allclose(g.probs[0], np.array([16, 8, 4, 2, 1]) / 31)
    d = jc.dirichlet(7, concentration=0.5, contexts=4, seed=3)
    assert d.probs.shape == (4, 7) and np.allclose(d.probs.sum(axis=1), 1)
    assert np.array_equal(d.probs, jc.dirichlet(7, concentration=0.5, contexts=4, seed=3).probs)
    with pytest.warns(DeprecationWarning, match="dirichlet\\(seed, vocab"):
        old = jc.dirichlet(3, 7, 0.5, 4)              # the former order (seed, vocab, concentration, contexts)
    assert np.array_equal(old.probs, d.probs)


def test_contexts_without_samples_are_warned_about():
    init = jc.table(np.array([[0.5, 0.5], [0.9, 0.1], [0.3, 0.7]]), [0.98, 0.01, 0.01])
    with pytest.warns(UserWarning, match="2 of 3 contexts get no sample"):
        jc.build(init, jc.fully_synthetic(10), generations=3)
