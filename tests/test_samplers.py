"""The samplers against the exact moments of the multinomial and multivariate hypergeometric laws."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcollapse import samplers
from stats import assert_mean

P = np.array([0.5, 0.25, 0.15, 0.1, 0.0])


def _draw(method, weights, sizes, seed=0, repeats=None):
    """One draw (or ``repeats`` independent draws, stacked) of the whole table in one compiled call."""
    w = jnp.asarray(weights, jnp.float64)
    s = jnp.asarray(sizes, jnp.int64)
    cap = int(np.sum(sizes))
    one = lambda k: samplers.multinomial(k, w, s, method=method, capacity=cap)
    key = jax.random.key(seed)
    if repeats is None:
        return np.asarray(jax.jit(one)(key))
    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(key, repeats)))


@pytest.mark.parametrize("method", ["tokens", "binomial"])
def test_multinomial_first_and_second_moments(x64, method):
    rows, n = 20000, 12
    counts = _draw(method, np.tile(P * 3.0, (rows, 1)), np.full(rows, n), seed=1)
    assert counts.dtype == np.int64
    assert np.all(counts.sum(axis=1) == n)
    assert np.all(counts[:, 4] == 0), "a zero-weight token was drawn"
    p = P[:4]
    c = counts[:, :4].astype(np.float64)
    assert_mean(c, n * p, what=f"{method} counts")
    pairs = list(itertools.combinations_with_replacement(range(4), 2))
    products = np.stack([c[:, i] * c[:, j] for i, j in pairs], axis=1)
    second = np.array([n * p[i] * (i == j) + n * (n - 1) * p[i] * p[j] for i, j in pairs])
    assert_mean(products, second, what=f"{method} E[c_i c_j]")


@pytest.mark.parametrize("method", ["tokens", "binomial"])
def test_rows_with_own_sizes_and_weights(x64, method):
    weights = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 2.0], [5.0, 5.0, 0.0], [1.0, 1.0, 1.0]])
    sizes = np.array([7, 3, 0, 5])
    counts = _draw(method, weights, sizes, repeats=2000)
    assert np.all(counts.sum(axis=2) == sizes)
    assert np.all(counts[:, weights == 0] == 0)
    assert np.all(counts[:, 1, 2] == 3) and np.all(counts[:, 2] == 0)
    probs = weights / weights.sum(axis=1, keepdims=True)
    assert_mean(counts[:, [0, 0, 3, 3, 3], [0, 2, 0, 1, 2]],
                (sizes[:, None] * probs)[[0, 0, 3, 3, 3], [0, 2, 0, 1, 2]], what=f"{method} per-row means")


def test_tail_probability_1e7_unbiased(x64):
    """500 tokens of probability 1e-7 sit where the cumulative sum is near 1 (float32 resolution 6e-8
    there: a float32 cumulative sum gives each of them 2 ulp = 1.19e-7, a +19% bias); 5e7 draws put about
    2500 of them in the tail, a standard error of 2%, so that bias would stand at about 9.5 standard errors."""
    tail, p_tail = 500, 1e-7
    p = np.concatenate([[0.6, 0.4 - tail * p_tail], np.full(tail, p_tail)])
    rows, size = 10, 5_000_000
    w = jnp.tile(jnp.asarray(p), (rows, 1))
    s = jnp.full(rows, size, jnp.int64)
    f = jax.jit(lambda k: samplers.multinomial(k, w, s, method="tokens", capacity=rows * size))
    per_row = np.asarray(f(jax.random.key(100)))[:, 2:].sum(axis=1)
    # each row's tail count is Binomial(size, tail * p_tail): test the mean over rows
    assert_mean(per_row.astype(np.float64), size * tail * p_tail, what="tail count (tokens, 1e-7)")
    binom = jax.jit(lambda k: samplers.multinomial(k, w, s, method="binomial"))
    per_row = np.asarray(binom(jax.random.key(7)))[:, 2:].sum(axis=1)
    assert_mean(per_row.astype(np.float64), size * tail * p_tail, what="tail count (binomial, 1e-7)")


def test_counts_exact_beyond_2_31(x64):
    sizes = np.array([2**31 + 1, 2**33 + 7, 3 * 2**31])
    counts = _draw("binomial", np.tile([0.5, 0.3, 0.2], (3, 1)), sizes)
    assert counts.dtype == np.int64 and np.all(counts.sum(axis=1) == sizes)
    # 400 rows of 2^33: the mean counts are n p within their standard error
    n = 2**33
    many = _draw("binomial", np.tile([0.5, 0.3, 0.2], (400, 1)), np.full(400, n), seed=3)
    assert_mean(many.astype(np.float64), n * np.array([0.5, 0.3, 0.2]), what="counts at n = 2^33")


def test_choose_sampler_rule():
    assert samplers.choose_sampler("auto", 1, 1000, 100) == "tokens"
    assert samplers.choose_sampler("auto", 1, 100, 10**6) == "binomial"
    assert samplers.choose_sampler("binomial", 1, 1000, 100) == "binomial"


def test_hypergeometric_subsample_moments(x64):
    pool = np.array([[6, 0, 3, 1], [2, 2, 0, 0]])
    draws = np.array([4, 4])
    f = jax.jit(jax.vmap(lambda k: samplers.hypergeometric_subsample(k, jnp.asarray(pool), jnp.asarray(draws), 10)))
    counts = np.asarray(f(jax.random.split(jax.random.key(0), 4000)))
    assert np.all(counts.sum(axis=2) == draws)
    assert np.all(counts <= pool) and np.all(counts[:, 1] == pool[1])
    big, size, s = pool[0].astype(float), 10.0, 4.0
    frac = big / size
    assert_mean(counts[:, 0].astype(float), s * frac, what="hypergeometric mean")
    var = s * frac * (1 - frac) * (size - s) / (size - 1)
    assert_mean((counts[:, 0] - s * frac) ** 2, var, what="hypergeometric variance")
