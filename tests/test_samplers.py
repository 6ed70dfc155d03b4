"""The samplers against the exact moments of the multinomial and multivariate hypergeometric laws."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcollapse import samplers
from stats import FAIL_PROB, assert_mean

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


@pytest.mark.parametrize("method", samplers.SUBSAMPLERS)
def test_hypergeometric_subsample_moments(x64, method):
    pool = np.array([[6, 0, 3, 1], [2, 2, 0, 0], [0, 0, 0, 0]])
    draws = np.array([4, 4, 0])
    f = jax.jit(jax.vmap(lambda k: samplers.hypergeometric_subsample(
        k, jnp.asarray(pool), jnp.asarray(draws), method=method, capacity=10)))
    counts = np.asarray(f(jax.random.split(jax.random.key(0), 4000)))
    assert np.all(counts.sum(axis=2) == draws)
    assert np.all(counts <= pool) and np.all(counts[:, 1] == pool[1]) and np.all(counts[:, 2] == 0)
    big, size, s = pool[0].astype(float), 10.0, 4.0
    frac = big / size
    assert_mean(counts[:, 0].astype(float), s * frac, what="hypergeometric mean")
    var = s * frac * (1 - frac) * (size - s) / (size - 1)
    assert_mean((counts[:, 0] - s * frac) ** 2, var, what="hypergeometric variance")


@pytest.mark.parametrize("method", samplers.SUBSAMPLERS)
@pytest.mark.parametrize("draws", [3, 6])
def test_hypergeometric_subsample_pmf_chi_square(x64, method, draws):
    """The joint counts follow prod_i C(pool_i, k_i) / C(size, draws) (draws = 6 of 9 takes the sequential
    sampler's complement path). Pearson chi-square over every outcome, false-failure probability FAIL_PROB each."""
    import scipy.stats as st
    from math import comb

    pool = np.array([3, 2, 0, 4])
    size, reps = int(pool.sum()), 20000
    f = jax.jit(jax.vmap(lambda k: samplers.hypergeometric_subsample(
        k, jnp.asarray(pool[None]), jnp.asarray([draws]), method=method, capacity=size)[0]))
    counts = np.asarray(f(jax.random.split(jax.random.key(draws), reps)))
    outcomes = [k for k in itertools.product(*(range(c + 1) for c in pool)) if sum(k) == draws]
    probs = np.array([np.prod([comb(int(c), j) for c, j in zip(pool, k)]) for k in outcomes]) / comb(size, draws)
    assert np.isclose(probs.sum(), 1.0)
    index = {k: i for i, k in enumerate(outcomes)}
    observed = np.bincount([index[tuple(int(x) for x in row)] for row in counts], minlength=len(outcomes))
    assert observed.sum() == reps
    assert st.chisquare(observed, probs * reps).pvalue > FAIL_PROB


def test_hypergeometric_sequential_chains_do_not_depend_on_the_batch(x64):
    """A chain's counts depend only on its key and pools: alone, and vmapped with chains whose pools make the
    (batched) loop run longer or take the complement path, it draws the same counts."""
    keys = jax.random.split(jax.random.key(3), 3)
    pools = jnp.asarray([[[5, 7, 1], [2, 0, 9]], [[40, 30, 30], [1, 1, 1]], [[3, 3, 3], [60, 0, 5]]])
    draws = jnp.asarray([[4, 3], [45, 2], [1, 50]])
    f = lambda k, pool, d: samplers.hypergeometric_sequential(k, pool, d)
    batched = np.asarray(jax.jit(jax.vmap(f))(keys, pools, draws))
    for i in range(3):
        alone = np.asarray(jax.jit(f)(keys[i], pools[i], draws[i]))
        assert np.array_equal(alone, batched[i])
        assert np.array_equal(alone.sum(axis=1), np.asarray(draws[i])) and np.all(alone <= np.asarray(pools[i]))


def test_subsampler_rule():
    assert samplers.choose_subsampler(1, 52, 100, 20100) == "sequential"
    assert samplers.choose_subsampler(1, 50000, 10000, 20000) == "sort"
    assert samplers.choose_subsampler(1, 50000, 10000, 1 << 29) == "sequential"


# ----------------------------------------------------------------------------------------------------------
# The exact batched binomial sampler
# ----------------------------------------------------------------------------------------------------------

# (n, p) in each regime of the sampler: inversion (n min(p, 1-p) < 10), BTRS, p near 0 and 1, n = 1, n = 2^40.
BINOMIAL_CASES = [
    (1, 0.3), (2, 0.999), (30, 0.2), (40, 0.5), (1000, 1e-4), (200, 0.93), (10 ** 6, 0.37),
    (2 ** 40, 0.3), (2 ** 40, 5e-12), (5 * 10 ** 7, 1e-7), (5 * 10 ** 7, 1 - 1e-7), (2 ** 40, 1e-7),
]
DRAWS = 40_000


@pytest.fixture(scope="module")
def binomial_draws():
    """DRAWS variates of every case, all in one compiled call (each element has its own n and p)."""
    with jax.enable_x64(True):
        n = np.repeat([c[0] for c in BINOMIAL_CASES], DRAWS)
        p = np.repeat([c[1] for c in BINOMIAL_CASES], DRAWS)
        f = jax.jit(lambda k, n, p: samplers.binomial(k, n, p))
        x = np.asarray(f(jax.random.key(11), jnp.asarray(n, jnp.int64), jnp.asarray(p)))
    return x.reshape(len(BINOMIAL_CASES), DRAWS)


def test_binomial_mean_and_variance(binomial_draws):
    from scipy import stats as st
    cases = len(BINOMIAL_CASES)
    for (n, p), x in zip(BINOMIAL_CASES, binomial_draws):
        assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= n
        mean, var = st.binom.mean(n, p), st.binom.var(n, p)
        xf = x.astype(np.float64)
        assert_mean(xf, mean, fail_prob=FAIL_PROB / cases, what=f"Binomial({n}, {p}) mean")
        assert_mean((xf - mean) ** 2, var, fail_prob=FAIL_PROB / cases, what=f"Binomial({n}, {p}) variance")


def test_binomial_pmf_chi_square(binomial_draws):
    """Pearson chi-square of the observed counts against scipy's pmf, on the values with expected count >= 5
    and the two tails pooled; each case fails with probability FAIL_PROB / cases when the sampler is exact."""
    from scipy import stats as st
    cases = len(BINOMIAL_CASES)
    for (n, p), x in zip(BINOMIAL_CASES, binomial_draws):
        lo, hi = st.binom.ppf(1e-4, n, p), st.binom.ppf(1 - 1e-4, n, p)
        edges = np.unique(np.linspace(lo, hi + 1, 40).astype(np.int64))
        # bins [edges[i], edges[i+1]) plus the two tails
        cdf = st.binom.cdf(edges - 1, n, p)
        probs = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        observed = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(probs))
        expected = probs * len(x)
        keep = expected >= 5
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        if exp[-1] < 5:
            obs[-2] += obs[-1]
            exp[-2] += exp[-1]
            obs, exp = obs[:-1], exp[:-1]
        if len(obs) < 2:
            continue
        pval = st.chisquare(obs, exp).pvalue
        assert pval > FAIL_PROB / cases, f"Binomial({n}, {p}): chi-square p-value {pval:.2e} over {len(obs)} bins"


def test_binomial_degenerate_cases_exact(x64):
    n = jnp.asarray([0, 0, 5, 5, 7, 2 ** 40, 3, 1], jnp.int64)
    p = jnp.asarray([0.0, 0.5, 0.0, 1.0, 1.5, 1.0, -0.2, 1.0])
    x = np.asarray(jax.jit(lambda k: samplers.binomial(k, n, p))(jax.random.key(0)))
    assert x.tolist() == [0, 0, 0, 5, 7, 2 ** 40, 0, 1]


def test_binomial_element_depends_only_on_its_own_inputs(x64):
    """Counter-based draws: changing the other elements (their n, p, regime) leaves an element unchanged,
    and a vmapped call equals the calls made one key at a time."""
    f = jax.jit(lambda k, n, p: samplers.binomial(k, n, p))
    key = jax.random.key(3)
    n1 = jnp.asarray([10 ** 6, 25, 2 ** 40, 3, 10 ** 4], jnp.int64)
    p1 = jnp.asarray([0.2, 0.3, 1e-12, 0.5, 0.6])
    n2 = n1.at[1].set(10 ** 9).at[3].set(0)
    p2 = p1.at[1].set(0.5).at[4].set(0.6)
    a, b = np.asarray(f(key, n1, p1)), np.asarray(f(key, n2, p2))
    assert a[[0, 2, 4]].tolist() == b[[0, 2, 4]].tolist()
    keys = jax.random.split(key, 3)
    batched = np.asarray(jax.jit(jax.vmap(f, (0, None, None)))(keys, n1, p1))
    for i in range(3):
        assert batched[i].tolist() == np.asarray(f(keys[i], n1, p1)).tolist()


def test_binomial_rounds_tried_in_lanes_equal_rounds_in_passes(x64):
    """The rejected elements of a large batch take one BTRS round per pass; a short list tries 2-8 rounds of
    each element at once. An element alone in its batch (the others have n = 0) gives the same variate as among
    2,000 BTRS elements, for elements that needed 1 to several rounds."""
    f = jax.jit(lambda k, n, p: samplers.binomial(k, n, p))
    key = jax.random.key(5)
    size = 2000
    rng_ = np.random.default_rng(0)
    n = jnp.asarray(rng_.integers(50, 10 ** 7, size), jnp.int64)
    p = jnp.asarray(rng_.uniform(0.01, 0.99, size))
    full = np.asarray(f(key, n, p))
    for i in rng_.choice(size, 40, replace=False):
        alone = np.asarray(f(key, jnp.zeros_like(n).at[i].set(n[i]), p))
        assert alone[i] == full[i], f"element {i}: {alone[i]} alone, {full[i]} in the batch"
        assert not alone[np.arange(size) != i].any()


def test_stored_is_the_identity(x64):
    from jaxcollapse.core import rng
    anchors = (jnp.asarray([0xFFFFFFFF, 1], jnp.uint32), jnp.asarray([-5], jnp.int64), jnp.asarray([2 ** 62], jnp.int64))
    values = (jnp.arange(12.0).reshape(3, 4), jnp.asarray([-1.5, jnp.inf, jnp.nan]), jnp.zeros((0, 3)),
              jnp.asarray([7], jnp.uint32))
    for anchor in anchors:
        for x in values:
            y = jax.jit(rng.stored)(x, anchor)
            assert y.shape == x.shape and y.dtype == x.dtype
            np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_threefry_matches_jax():
    from jax.extend.random import threefry2x32_p
    k1, k2 = jnp.uint32(0x12345678), jnp.uint32(0x9ABCDEF0)
    x1 = jnp.arange(100, dtype=jnp.uint32)
    x2 = jnp.arange(100, dtype=jnp.uint32) * jnp.uint32(7919)
    ours = samplers.threefry2x32(k1, k2, x1, x2)
    ref = threefry2x32_p.bind(jnp.broadcast_to(k1, (100,)), jnp.broadcast_to(k2, (100,)), x1, x2)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, ref))


@pytest.mark.parametrize("shape", [(1,), (7,), (1000,), (3, 17)])
def test_rng_streams_equal_jax_random(x64, shape):
    """The kernels' bits and uniforms are jax.random's own values, alone, under jit and under vmap."""
    from jaxcollapse.core import rng
    key = jax.random.fold_in(jax.random.key(12345), 9)
    assert np.array_equal(np.asarray(rng.bits(key, shape)), np.asarray(jax.random.bits(key, shape, jnp.uint32)))
    assert np.array_equal(np.asarray(jax.jit(lambda k: rng.uniform(k, shape))(key)),
                          np.asarray(jax.random.uniform(key, shape, jnp.float64)))
    keys = jax.random.split(key, 5)
    ours = jax.jit(jax.vmap(lambda k: (rng.bits(k, shape), rng.uniform(k, shape))))(keys)
    ref = jax.vmap(lambda k: (jax.random.bits(k, shape, jnp.uint32), jax.random.uniform(k, shape, jnp.float64)))(keys)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, ref))
    raw = jax.random.key_data(key)
    assert np.array_equal(np.asarray(rng.uniform(raw, shape)), np.asarray(jax.random.uniform(key, shape, jnp.float64)))


def test_rng_keys_equal_jax_random(x64):
    """``rng.fold_in`` and ``rng.split`` derive jax.random's own keys: typed and raw keys, data at 0, near and at
    2^32 - 1 and past it (modulo 2^32), traced data, under jit and under vmap over keys and data."""
    from jaxcollapse.core import rng
    data = lambda k: np.asarray(jax.random.key_data(k))
    for seed in (0, 12345, 2**31 - 1):
        typed = jax.random.key(seed)
        for key in (typed, jax.random.key_data(typed)):
            for d in (0, 1, 977, 2**32 - 1, 2**32 + 5):
                d = np.uint32(d % 2**32) if d >= 2**32 else d
                ours, ref = rng.fold_in(key, d), jax.random.fold_in(key, d)
                assert ours.dtype == ref.dtype and np.array_equal(data(ours), data(ref)), (seed, d)
            for num in (1, 2, 3, 7):
                ours, ref = rng.split(key, num), jax.random.split(key, num)
                assert ours.shape == ref.shape and ours.dtype == ref.dtype and np.array_equal(data(ours), data(ref))
    keys = jax.vmap(jax.random.key)(jnp.arange(6))
    ids = jnp.arange(6, dtype=jnp.int32) * 7919
    ours = jax.jit(jax.vmap(lambda k, i: rng.split(rng.fold_in(k, i), 3)))(keys, ids)
    ref = jax.vmap(lambda k, i: jax.random.split(jax.random.fold_in(k, i), 3))(keys, ids)
    assert np.array_equal(data(ours), data(ref))
    assert np.array_equal(data(jax.vmap(rng.fold_in, (None, 0))(keys[0], ids)),
                          data(jax.vmap(jax.random.fold_in, (None, 0))(keys[0], ids)))


def test_rng_other_generators_fall_back_to_jax_random(x64):
    from jaxcollapse.core import rng
    key = jax.random.key(3, impl="rbg")
    assert np.array_equal(np.asarray(rng.uniform(key, (64,))), np.asarray(jax.random.uniform(key, (64,), jnp.float64)))
    assert np.array_equal(np.asarray(rng.bits(key, (64,))), np.asarray(jax.random.bits(key, (64,), jnp.uint32)))
    assert np.array_equal(np.asarray(jax.random.key_data(rng.fold_in(key, 5))),
                          np.asarray(jax.random.key_data(jax.random.fold_in(key, 5))))
    assert np.array_equal(np.asarray(jax.random.key_data(rng.split(key, 3))),
                          np.asarray(jax.random.key_data(jax.random.split(key, 3))))


def test_guided_search_equals_bisection(x64):
    """The guided inverse-CDF search returns what bisection over the whole row returns, the smallest ``v`` with
    ``cdf[v] > x``: rows with zeros, with tiny and huge weights, with a zero tail, and values at, between and
    just below the cumulative weights."""
    from jaxcollapse.core import samplers as S
    rng = np.random.default_rng(5)
    w = rng.random((4, 300)) ** 8
    w[1, ::3] = 0.0
    w[2, :] = 1e-12
    w[2, 7] = 1.0
    w[3, 100:] = 0.0
    cdf = jnp.cumsum(jnp.asarray(w), axis=1)
    c = np.asarray(cdf)
    total = c[:, -1]
    row = rng.integers(0, 4, 20000)
    x = rng.random(20000) * total[row]
    x[:300] = c[row[:300], rng.integers(0, 300, 300)]                    # exactly on a cumulative weight
    x[300:600] = total[row[300:600]]
    x = np.minimum(x, np.nextafter(total[row], 0))                        # the largest value below the total
    plain = np.asarray(S._row_search(cdf, jnp.asarray(row), jnp.asarray(x)))
    guide = S.row_guide(cdf)
    guided = np.asarray(jax.jit(lambda c, r, v: S._row_search(c, r, v, guide))(cdf, jnp.asarray(row), jnp.asarray(x)))
    assert np.array_equal(plain, guided) and plain.dtype == row.dtype
    assert np.all(c[row, plain] > x) and np.all((plain == 0) | (c[row, np.maximum(plain - 1, 0)] <= x))
    assert 1 <= int(guide[1]) < S._levels(300) + 1


def test_words_are_splitmix64(x64):
    """The parent picks' words are the top halves of SplitMix64's outputs from the key's 64 bits (the reference
    vectors of ``splitmix64.c`` for seed 1234567), alone, under jit and under vmap; other key kinds fall back to
    jax.random's bits."""
    from jaxcollapse.core import rng
    key = jax.random.wrap_key_data(jnp.array([0, 1234567], jnp.uint32))
    reference = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                 16408922859458223821]
    assert np.asarray(rng.words(key, (5,))).tolist() == [r >> 32 for r in reference]
    keys = jax.random.split(jax.random.key(7), 4)
    batched = np.asarray(jax.jit(jax.vmap(lambda k: rng.words(k, (3, 5))))(keys))
    assert batched.shape == (4, 3, 5) and batched.dtype == np.uint32
    for i in range(4):
        assert np.array_equal(batched[i], np.asarray(rng.words(keys[i], (3, 5))))
    other = jax.random.key(3, impl="rbg")
    assert np.array_equal(np.asarray(rng.words(other, (64,))), np.asarray(jax.random.bits(other, (64,), jnp.uint32)))


def test_words_uniform_and_independent(x64):
    """2^20 words from 256 chain keys (``fold_in`` of one key, as the engine derives them), Pearson chi-square
    at FAIL_PROB each: the low byte of a word uniform; the top 4 bits of consecutive words of a stream
    independent, and of the same word under consecutive keys; and multiply-shift picks in [0, 1100) (the
    parent offsets of the resample kernel) uniform."""
    from scipy import stats as st

    from jaxcollapse.core import rng
    base = jax.random.key(2024)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(base, jnp.arange(256, dtype=jnp.uint32))
    w = np.asarray(jax.jit(jax.vmap(lambda k: rng.words(k, (4096,))))(keys)).astype(np.uint64)
    low = np.bincount((w & 0xFF).ravel().astype(np.int64), minlength=256)
    assert st.chisquare(low).pvalue > FAIL_PROB
    top = (w >> 28).astype(np.int64)
    serial = np.bincount((16 * top[:, 0:-1:2] + top[:, 1::2]).ravel(), minlength=256)
    assert st.chisquare(serial).pvalue > FAIL_PROB
    across = np.bincount((16 * top[0:-1:2] + top[1::2]).ravel(), minlength=256)
    assert st.chisquare(across).pvalue > FAIL_PROB
    picks = np.bincount(((w * np.uint64(1100)) >> np.uint64(32)).ravel().astype(np.int64), minlength=1100)
    assert picks.size == 1100 and st.chisquare(picks).pvalue > FAIL_PROB


def test_binomial_tree_marginals_uneven_tree(x64):
    """V = 1000 (not a power of two: leaves at two depths), Zipf weights with zeros: every token's mean count
    (Bonferroni over the tokens), the pmf of one token's count, exact row sums and no zero-weight draws;
    chains under vmap equal the chains drawn one key at a time."""
    from scipy import stats as st
    vocab, n, chains = 1000, 3000, 4000
    w = np.arange(1, vocab + 1, dtype=np.float64) ** -1.1
    w[[3, 500, 999]] = 0.0
    p = w / w.sum()
    f = jax.jit(jax.vmap(lambda k, w, s: samplers.multinomial_binomial(k, w, s), (0, None, None)))
    keys = jax.random.split(jax.random.key(5), chains)
    counts = np.asarray(f(keys, jnp.asarray(w)[None], jnp.asarray([n], jnp.int64)))[:, 0]
    assert counts.dtype == np.int64 and np.all(counts.sum(axis=1) == n)
    assert np.all(counts[:, [3, 500, 999]] == 0)
    live = p > 0
    assert_mean(counts[:, live].astype(np.float64), n * p[live], what="tree counts, V=1000")
    token = 6  # n p = 127: its count is Binomial(n, p_6)
    x = counts[:, token]
    edges = np.arange(st.binom.ppf(1e-3, n, p[token]), st.binom.ppf(1 - 1e-3, n, p[token]) + 1, 4).astype(np.int64)
    probs = np.diff(np.concatenate([[0.0], st.binom.cdf(edges - 1, n, p[token]), [1.0]]))
    observed = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(probs))
    assert st.chisquare(observed, probs * chains).pvalue > FAIL_PROB
    one = jax.jit(lambda k: samplers.multinomial_binomial(k, jnp.asarray(w)[None], jnp.asarray([n], jnp.int64)))
    for i in (0, 17):
        assert np.array_equal(np.asarray(one(keys[i]))[0], counts[i])
