"""Tests of jaxcollapse.theory: algebraic identities, Theorem 1 bounds, and small NumPy Monte Carlo checks.

Monte Carlo tolerance: every Monte Carlo assertion compares a sample mean with the exact formula within
``Z * SE``, ``SE`` the standard error of the mean estimated from the samples and ``Z`` the two-sided normal
quantile of ``FAIL_PROB`` (tests/stats.py: the suite's 1% false-failure budget over its statistical
assertions, about 8.3e-5 each; normal approximation, 20000 chains). The file makes 37 such comparisons
(``N_MC_ASSERTIONS``), counted in that budget; the seeds are fixed, so the outcome is deterministic.
(One further check asserts the printed Theorem 2 is *rejected*; its value is ~17 SE away.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxcollapse import theory as th
from stats import FAIL_PROB, z_for

Z = z_for(1, FAIL_PROB)   # two-sided normal quantile for the false-failure probability of one assertion
CHAINS = 20_000
P4 = np.array([0.4, 0.3, 0.2, 0.1])
P6 = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
P8 = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.07, 0.0])      # one token absent


def assert_mc(samples, expected, what=""):
    """Assert |mean(samples) - expected| <= Z * SE (+1e-12 for zero-variance samples); P(false fail) ~ FAIL_PROB."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean()
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(mean - expected) <= Z * se + 1e-12, (
        f"{what}: Monte Carlo mean {mean:.6g} vs theory {expected:.6g}, |diff| = {abs(mean - expected):.3g} "
        f"> {Z:.2f} * SE = {Z * se:.3g}")


def rows(p, chains=CHAINS):
    return np.broadcast_to(p, (chains, p.size))


def sq(x):
    return np.sum(x * x, axis=-1)


# ----------------------------------------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    [0.5, 0.6], [1.2, -0.2], [0.5, np.nan, 0.5], [[0.5, 0.5]], [], [0.5, np.inf], "abc",
])
def test_bad_p_raises_naming_p(bad):
    with pytest.raises(ValueError, match=r"^p must"):
        th.collision(bad)
    with pytest.raises(ValueError, match=r"^p must"):
        th.fully_synthetic_collision(bad, 10, 3)


def test_p_sum_tolerance():
    p = np.array([0.5, 0.5 + 5e-10])
    assert th.collision(p) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"^p must sum to 1"):
        th.collision([0.5, 0.5 + 1e-8])


@pytest.mark.parametrize("call, name", [
    (lambda: th.fully_synthetic_collision(P4, 0, 3), "n"),
    (lambda: th.fully_synthetic_diversity(P4, -2, 3), "n"),
    (lambda: th.fully_synthetic_sq_deviation(P4, 2.5, 3), "n"),
    (lambda: th.fully_synthetic_sq_deviation(P4, 3, -1), "generations"),
    (lambda: th.fully_synthetic_sq_deviation(P4, 3, 1.5), "generations"),
    (lambda: th.alive_probability(1.2, 5, 3), "p_i"),
    (lambda: th.alive_probability(0.2, 5001, 3), "n"),
    (lambda: th.alive_probability(0.2, 0, 3), "n"),
    (lambda: th.expected_alive(P4, 6000, 3), "n"),
    (lambda: th.collapsed_probability(P4, 5, -1), "generations"),
    (lambda: th.expected_collapse_time(P4, 10001), "n"),
    (lambda: th.expected_collapse_time(P4, 50, 10, method="sum"), "max_generations"),
    (lambda: th.expected_collapse_time(P4, 50, method="guess"), "method"),
    (lambda: th.theorem1_collapse_probability_bounds(P4, 0, 3), "n"),
    (lambda: th.theorem1_collapse_time_bounds(P4, 0), "n"),
    (lambda: th.littler_collapse_time(P4, 0), "n"),
    (lambda: th.partial_sq_deviation_from_first(P4, 0, 10, 3), "N"),
    (lambda: th.partial_sq_deviation(P4, 10, 0, 3), "n"),
    (lambda: th.partial_deviation_limit(P4, -1, 10), "N"),
    (lambda: th.theorem2_collision(P4, 10, 10, -3), "generations"),
    (lambda: th.theorem2_collision(P4, 10, 10, 3, corrected="yes"), "corrected"),
    (lambda: th.fresh_real_sq_deviation(P4, 0, 0.5, 3), "M"),
    (lambda: th.fresh_real_sq_deviation(P4, 10, 1.5, 3), "fraction"),
    (lambda: th.fresh_real_sq_deviation_limit(P4, 10, -0.1), "fraction"),
    (lambda: th.accumulate_diversity(P4, 0, 5, 3), "N"),
    (lambda: th.accumulate_diversity_limit(P4, 10, 0), "n"),
    (lambda: th.missing_mass(P4, -1), "draws"),
    (lambda: th.missing_mass(P4, [1, 2.5]), "draws"),
])
def test_bad_sizes_raise_naming_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        call()


# ----------------------------------------------------------------------------------------------------------
# fully synthetic: algebra
# ----------------------------------------------------------------------------------------------------------

def test_basic_statistics():
    assert th.collision(P4) == pytest.approx(0.30)
    assert th.diversity(P4) == pytest.approx(0.70)
    np.testing.assert_array_equal(th.collapse_token_probability(P4), P4)


def test_fully_synthetic_closed_forms_consistent():
    g = 12
    s = th.fully_synthetic_collision(P6, 7, g)
    h = th.fully_synthetic_diversity(P6, 7, g)
    d = th.fully_synthetic_sq_deviation(P6, 7, g)
    assert s.shape == h.shape == d.shape == (g + 1,)
    assert s[0] == pytest.approx(th.collision(P6)) and d[0] == 0.0
    np.testing.assert_allclose(s + h, 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(d, s - s[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(h[1:] / h[:-1], 1 - 1 / 7)
    # n = 1: one sample, collapse at generation 1
    np.testing.assert_allclose(th.fully_synthetic_collision(P6, 1, 3)[1:], 1.0)


def test_alive_probability_special_cases():
    np.testing.assert_array_equal(th.alive_probability(1.0, 9, 20), np.ones(21))
    np.testing.assert_array_equal(th.alive_probability(0.0, 9, 20), np.zeros(21))
    for p_i in (0.05, 0.3, 0.77):
        a = th.alive_probability(p_i, 1, 6)             # n = 1: the single sample is token i w.p. p_i
        np.testing.assert_allclose(a, [1.0] + [p_i] * 6, rtol=1e-14)
        b = th.alive_probability(p_i, 12, 3000)
        assert b[0] == 1.0 and np.all(np.diff(b) <= 1e-15)
        assert b[1] == pytest.approx(1 - (1 - p_i) ** 12, rel=1e-12)
        assert b[-1] == pytest.approx(p_i, abs=1e-10)  # alive forever iff fixed: Proposition 1
    assert th.alive_probability(0.3, 10, 0).shape == (1,)


def test_expected_alive_and_collapsed_probability_algebra():
    g = 400
    alive = th.expected_alive(P8, 6, g)
    assert alive[0] == 7 and np.all(np.diff(alive) <= 1e-12) and alive[-1] == pytest.approx(1.0, abs=1e-9)
    direct = sum(th.alive_probability(x, 6, g) for x in P8)
    np.testing.assert_allclose(alive, direct, rtol=1e-12)
    col = th.collapsed_probability(P8, 6, g)
    assert col[0] == 0.0 and np.all(np.diff(col) >= -1e-15) and col[-1] == pytest.approx(1.0, abs=1e-9)
    assert col[1] == pytest.approx(np.sum(P8 ** 6), rel=1e-12)
    # alive count is >= 1 and == 1 exactly when collapsed: E[#alive] >= 1 + (1 - P(collapsed)) for m >= 1
    assert np.all(alive[1:] >= 2 - col[1:] - 1e-12)
    np.testing.assert_array_equal(th.collapsed_probability([0, 1.0, 0], 6, 5), np.ones(6))


@pytest.mark.parametrize("p, n", [(P4, 2), (P4, 5), (P6, 10), (P8, 30), (np.array([0.999, 0.001]), 8)])
def test_collapsed_probability_within_theorem1_bounds(p, n):
    g = 60 * n
    col = th.collapsed_probability(p, n, g)
    lo, hi = th.theorem1_collapse_probability_bounds(p, n, g)
    assert lo.shape == hi.shape == (g + 1,)
    assert np.all(lo <= col + 1e-12) and np.all(col <= hi + 1e-12)
    assert np.all((0 <= lo) & (hi <= 1))


def test_theorem1_bounds_dirac_and_m0():
    lo, hi = th.theorem1_collapse_probability_bounds([0.0, 1.0], 10, 4)
    np.testing.assert_array_equal(lo, 1.0)
    np.testing.assert_array_equal(hi, 1.0)
    # the raw lower-bound formula 1 - n u exceeds the true P(collapsed by 0) = 0 when u < 1/n
    lo, _ = th.theorem1_collapse_probability_bounds([0.99, 0.01], 10, 3)
    assert lo[0] == 0.0
    assert th.theorem1_collapse_time_bounds([1.0], 10) == (0.0, 0.0)


def test_expected_collapse_time_exact_cases():
    assert th.expected_collapse_time([0.5, 0.5], 2) == pytest.approx(2.0, rel=1e-12)  # geometric(1/2)
    # n = 2: P(T > 1) = 1 - S0, then an uncollapsed pair stays uncollapsed w.p. 1/2
    assert th.expected_collapse_time(P4, 2) == pytest.approx(1 + (1 - 0.3) * 2, rel=1e-12)
    assert th.expected_collapse_time(P4, 1) == pytest.approx(1.0)
    assert th.expected_collapse_time([0, 1.0], 7) == 0.0


@pytest.mark.parametrize("p, n", [(P4, 3), (P6, 20), (P8, 50)])
def test_expected_collapse_time_solve_sum_and_bounds(p, n):
    solve = th.expected_collapse_time(p, n)
    summed = th.expected_collapse_time(p, n, method="sum")
    assert solve == pytest.approx(summed, rel=1e-9)
    lo, hi = th.theorem1_collapse_time_bounds(p, n)
    assert lo <= solve <= hi


def test_expected_collapse_time_close_to_littler():
    for p in (P4, P6, P8):
        exact = th.expected_collapse_time(p, 50)
        assert exact == pytest.approx(th.littler_collapse_time(p, 50), rel=0.04)
    assert th.littler_collapse_time([1.0, 0.0], 50) == 0.0
    assert th.littler_collapse_time([0.5, 0.5], 10) == pytest.approx(20 * math.log(2))


def test_missing_mass():
    assert th.missing_mass(P4, 0) == pytest.approx(1.0)
    t = np.array([[0, 1], [5, 40]])
    out = th.missing_mass(P4, t)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[np.sum(P4 * (1 - P4) ** k) for k in r] for r in t])
    assert isinstance(th.missing_mass(P4, 3), float)


# ----------------------------------------------------------------------------------------------------------
# partially synthetic, fresh real, accumulate: algebra
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("N, n", [(2, 1), (10, 10), (100, 10), (20, 300), (7, 3)])
def test_theorem2_corrected_m0_and_printed_differs(N, n):
    s0 = th.collision(P6)
    s1 = 1 / N + (1 - 1 / N) * s0
    corrected = th.theorem2_collision(P6, N, n, 30)
    printed = th.theorem2_collision(P6, N, n, 30, corrected=False)
    assert corrected[0] == printed[0] == s0
    assert corrected[1] == pytest.approx(s1, rel=1e-13)
    assert abs(printed[1] - s1) > 1e-4
    # corrected formula equals S_1 + E||p^(m) - p^(1)||^2 (orthogonality of the martingale increments)
    np.testing.assert_allclose(corrected[1:], s1 + th.partial_sq_deviation_from_first(P6, N, n, 30)[1:],
                               rtol=1e-12)


def test_theorem2_limit_large_n():
    N = 10
    s1 = 1 / N + (1 - 1 / N) * th.collision(P6)
    corrected = th.theorem2_collision(P6, N, 10**9, 4)
    printed = th.theorem2_collision(P6, N, 10**9, 4, corrected=False)
    np.testing.assert_allclose(corrected[1:], s1, rtol=1e-7)
    assert np.all(np.abs(printed[1:] - s1) > 1e-3)


def test_partial_deviation_algebra():
    N, n, g = 20, 10, 400
    u = th.diversity(P6)
    first = th.partial_sq_deviation_from_first(P6, N, n, g)
    dev = th.partial_sq_deviation(P6, N, n, g)
    assert first[0] == pytest.approx(u / N) and first[1] == 0.0
    assert dev[0] == 0.0 and dev[1] == pytest.approx(u / N)
    np.testing.assert_allclose(dev[1:], u / N + first[1:], rtol=1e-14)
    assert first[-1] == pytest.approx(th.partial_deviation_limit(P6, N, n), rel=1e-12)
    assert np.all(np.diff(first[1:]) >= 0)


def test_fresh_real_algebra():
    u = th.diversity(P6)
    d = th.fresh_real_sq_deviation(P6, 20, 0.33, 500)               # S = rint(6.6) = 7, lambda = 0.35
    lam = 7 / 20
    assert d[0] == 0.0 and d[1] == pytest.approx(u / 20)
    assert d[2] == pytest.approx(u / 20 + lam * (lam - 1 / 20) * u / 20)
    assert d[-1] == pytest.approx(th.fresh_real_sq_deviation_limit(P6, 20, 0.33), rel=1e-12)
    assert th.fresh_real_sq_deviation_limit(P6, 20, 0.33) == pytest.approx(u / (20 * (1 - lam**2) + lam))
    # fraction 0: fresh data every time; fraction 1: fully synthetic with n = M
    np.testing.assert_allclose(th.fresh_real_sq_deviation(P6, 20, 0.0, 5)[1:], u / 20)
    np.testing.assert_allclose(th.fresh_real_sq_deviation(P6, 20, 1.0, 30),
                               th.fully_synthetic_sq_deviation(P6, 20, 30), rtol=1e-13, atol=1e-16)
    assert th.fresh_real_sq_deviation_limit(P6, 20, 1.0) == pytest.approx(u)


def test_accumulate_algebra():
    u = th.diversity(P6)
    h = th.accumulate_diversity(P6, 10, 5, 4)
    assert h[0] == pytest.approx(u) and h[1] == pytest.approx(0.9 * u)
    assert h[3] == pytest.approx(0.9 * u * (1 - 5 / 15**2) * (1 - 5 / 20**2))
    for N, n in ((10, 5), (2, 1), (100, 1000), (1, 3)):
        lim = th.accumulate_diversity_limit(P6, N, n)
        long = th.accumulate_diversity(P6, N, n, 200_000)[-1]
        assert lim == pytest.approx(long, rel=1e-5, abs=1e-15)
        assert (lim > 0) == (N > 1)
        assert lim <= th.accumulate_diversity(P6, N, n, 50)[-1]


# ----------------------------------------------------------------------------------------------------------
# Monte Carlo checks (NumPy multinomial with 2-D pvals; see the module docstring for the error rates)
# ----------------------------------------------------------------------------------------------------------

N_MC_ASSERTIONS = 37      # assert_mc calls below: 9 + 16 + 4 + 5 + 3, each at FAIL_PROB (tests/stats.py)


def test_mc_fully_synthetic_collapse_alive_collision():
    rng = np.random.default_rng(20240405)
    n, g, check = 5, 10, (1, 3, 10)
    col = th.collapsed_probability(P4, n, g)
    alive = th.expected_alive(P4, n, g)
    s = th.fully_synthetic_collision(P4, n, g)
    pm = rows(P4)
    for m in range(1, g + 1):
        pm = rng.multinomial(n, pm) / n
        if m in check:
            assert_mc(pm.max(axis=1) == 1.0, col[m], f"P(collapsed by {m})")
            assert_mc(np.count_nonzero(pm, axis=1), alive[m], f"E #alive at {m}")
            assert_mc(sq(pm), s[m], f"E sigma_{m}")                                     # 9 assertions


def test_mc_partially_synthetic():
    rng = np.random.default_rng(12345)
    N, n, g = 20, 10, 5
    first = th.partial_sq_deviation_from_first(P6, N, n, g)
    dev = th.partial_sq_deviation(P6, N, n, g)
    s = th.theorem2_collision(P6, N, n, g)
    printed = th.theorem2_collision(P6, N, n, g, corrected=False)
    real = rng.multinomial(N, rows(P6))
    p1 = real / N
    pm = p1
    assert_mc(sq(p1 - P6), first[0], "E||p - p^(1)||^2")
    for m in range(1, g + 1):
        if m >= 2:
            pm = (real + rng.multinomial(n, pm)) / (N + n)
        assert_mc(sq(pm - p1), first[m], f"E||p^({m}) - p^(1)||^2")
        assert_mc(sq(pm - P6), dev[m], f"E||p^({m}) - p||^2")
        assert_mc(sq(pm), s[m], f"corrected Theorem 2 S_{m}")                           # 1 + 15 assertions
        if m == 1:
            sig = sq(pm)
            se = sig.std(ddof=1) / math.sqrt(sig.size)
            assert abs(sig.mean() - printed[m]) > Z * se, "printed Theorem 2 should be rejected"


def test_mc_fresh_real():
    rng = np.random.default_rng(777)
    M, fraction, g = 20, 0.33, 6                   # S = rint(6.6) = 7 synthetic, 13 fresh real
    S = 7
    d = th.fresh_real_sq_deviation(P6, M, fraction, g)
    pm = rng.multinomial(M, rows(P6)) / M
    assert_mc(sq(pm - P6), d[1], "fresh real d_1")
    for m in range(2, g + 1):
        pm = (rng.multinomial(M - S, rows(P6)) + rng.multinomial(S, pm)) / M
        if m in (2, 3, 6):
            assert_mc(sq(pm - P6), d[m], f"fresh real d_{m}")                           # 4 assertions


def test_mc_accumulate():
    rng = np.random.default_rng(4242)
    N, n, g = 10, 5, 8
    h = th.accumulate_diversity(P8, N, n, g)
    pool = rng.multinomial(N, rows(P8)).astype(np.float64)
    total = N
    for m in range(1, g + 1):
        if m >= 2:
            pool += rng.multinomial(n, pool / total)
            total += n
        pm = pool / total
        if m in (1, 2, 3, 5, 8):
            assert_mc(1.0 - sq(pm), h[m], f"accumulate H_{m}")                          # 5 assertions
    assert total == N + (g - 1) * n


def test_mc_missing_mass():
    rng = np.random.default_rng(99)
    draws = np.array([1, 4, 10])
    expected = th.missing_mass(P8, draws)
    for t, e in zip(draws, expected):
        seen = rng.multinomial(t, rows(P8)) > 0
        assert_mc(np.sum(np.where(seen, 0.0, P8), axis=1), e, f"missing mass after {t}")  # 3 assertions



@pytest.mark.parametrize("N, n, k", [(4, 3, 2), (5, 2, 5), (3, 4, 1)])
def test_accumulate_subsample_collision_matches_exact_markov_chain(N, n, k):
    """Two tokens: the pool's count of token 0 is a Markov chain (hypergeometric training set of k, then
    Binomial(n, X/k) appended); propagating its exact law gives E sigma_m, which the closed recursion must equal."""
    from scipy import stats

    p = np.array([0.3, 0.7])
    g = 6
    law = {a: stats.binom.pmf(a, N, p[0]) for a in range(N + 1)}
    size, expected = N, [float(p @ p)]
    for _ in range(g):
        sigma, nxt = 0.0, {}
        for a, w in law.items():
            for x in range(k + 1):
                wx = w * stats.hypergeom.pmf(x, size, a, k)
                if wx == 0:
                    continue
                q = x / k
                sigma += wx * (q * q + (1 - q) * (1 - q))
                for y in range(n + 1):
                    nxt[a + y] = nxt.get(a + y, 0.0) + wx * stats.binom.pmf(y, n, q)
        expected.append(sigma)
        law, size = nxt, size + n
    assert np.allclose(th.accumulate_subsample_collision(p, N, n, k, g), expected, rtol=1e-12, atol=1e-14)


def test_accumulate_subsample_collision_checks_train():
    assert th.accumulate_subsample_collision([0.5, 0.5], 4, 2, 4, 1)[1] == pytest.approx(1 / 4 + 0.75 * 0.5)
    with pytest.raises(ValueError, match="train"):
        th.accumulate_subsample_collision([0.5, 0.5], 4, 2, 5, 3)


def test_partial_l1_bound():
    assert th.partial_l1_bound(np.r_[np.full(4, 0.25), np.zeros(3)], 10, 12) == pytest.approx(0.6)
    assert th.partial_l1_bound(np.full(50, 0.02), 5, 20) == pytest.approx(math.sqrt(20 * 4) / 5)
    with pytest.raises(ValueError, match="N"):
        th.partial_l1_bound([0.5, 0.5], 0, 3)


# ------------------------------------------------------------------------------------------------
# the one theory lookup (jaxcollapse.stats.lookup) and its adapters


def _exact(kind, p=P6, g=7, **sizes):
    from jaxcollapse.stats.lookup import exact_theory

    return exact_theory(kind, p, g, **sizes)


def _labels(t, metric):
    return [c.label for c in t.curves.get(metric, [])]


def _assert_fully_synthetic(t, p, n, g):
    np.testing.assert_array_equal(t.values("collision"), th.fully_synthetic_collision(p, n, g))
    np.testing.assert_allclose(t.values("support"), th.expected_alive(p, n, g), rtol=1e-12)
    np.testing.assert_allclose(t.values("collapsed"), th.collapsed_probability(p, n, g), rtol=1e-12, atol=1e-300)
    assert t.collapse["expected"] == pytest.approx(th.expected_collapse_time(p, n), rel=1e-12)
    assert t.collapse["littler"] == pytest.approx(th.littler_collapse_time(p, n))
    assert (t.collapse["bound_low"], t.collapse["bound_high"]) == pytest.approx(th.theorem1_collapse_time_bounds(p, n))
    low, high = th.theorem1_collapse_probability_bounds(p, n, g)
    np.testing.assert_array_equal(t.collapse["prob_low"], low)
    np.testing.assert_array_equal(t.collapse["prob_high"], high)
    assert t.note == ""


def test_lookup_fully_synthetic_and_its_equivalents():
    g = 7
    t = _exact("fully_synthetic", synthetic=12, g=g)
    assert _labels(t, "collision") == ["exact (Theorem 1)"] and _labels(t, "collapsed") == ["exact (Wright–Fisher)"]
    _assert_fully_synthetic(t, P6, 12, g)
    # fresh real with no real sample left, and most-recent with window 1, are the fully synthetic chain
    _assert_fully_synthetic(_exact("fresh_real", real=12, fraction=1.0, g=g), P6, 12, g)
    _assert_fully_synthetic(_exact("fresh_real", real=12, fraction=0.99, g=g), P6, 12, g)      # rint(11.88) = 12
    _assert_fully_synthetic(_exact("most_recent", synthetic=12, window=1, g=g), P6, 12, g)
    # budgets: no Wright–Fisher curves beyond the budget, no exact E[T] when not asked
    small = _exact("fully_synthetic", synthetic=12, g=g, wf_budget=10, expected_time=False)
    assert set(small.curves) == {"collision"} and "expected" not in small.collapse and "littler" in small.collapse
    assert "budget" in small.note
    # a Dirac mass: E σ_m = 1, no collapse-time results
    dirac = _exact("fully_synthetic", p=[0.0, 1.0, 0.0], synthetic=5)
    np.testing.assert_array_equal(dirac.values("collision"), np.ones(8))
    assert dirac.collapse == {}


def test_lookup_other_regimes_match_the_direct_theory():
    g, s0 = 9, th.collision(P8)
    t = _exact("partially_synthetic", p=P8, g=g, real=30, synthetic=20)
    assert _labels(t, "collision") == ["exact (Theorem 2, corrected)", "Theorem 2 as printed"]
    np.testing.assert_array_equal(t.curves["collision"][0].values, th.theorem2_collision(P8, 30, 20, g))
    np.testing.assert_array_equal(t.curves["collision"][1].values, th.theorem2_collision(P8, 30, 20, g, False))
    assert t.collapse == {}
    t = _exact("fresh_real", p=P8, g=g, real=100, fraction=0.5)
    assert _labels(t, "collision") == ["exact (fresh real, S_0 + d_m)"] and t.collapse == {}
    np.testing.assert_array_equal(t.values("collision"), s0 + th.fresh_real_sq_deviation(P8, 100, 0.5, g))
    t = _exact("accumulate", p=P8, g=g, real=30, synthetic=20)
    np.testing.assert_array_equal(t.values("collision"), 1.0 - th.accumulate_diversity(P8, 30, 20, g))
    t = _exact("accumulate_subsample", p=P8, g=g, real=30, synthetic=20, train=10)
    np.testing.assert_array_equal(t.values("collision"), th.accumulate_subsample_collision(P8, 30, 20, 10, g))
    t = _exact("accumulate_subsample", p=P8, g=g, real=30, synthetic=20)              # train defaults to real
    np.testing.assert_array_equal(t.values("collision"), th.accumulate_subsample_collision(P8, 30, 20, 30, g))
    assert t.values("collision").shape == (g + 1,) and t.values("collision").dtype == np.float64


def test_regime_theory_reads_a_regime():
    from jaxcollapse import Decoding, accumulate_subsample, fresh_real, most_recent
    from jaxcollapse.stats.lookup import regime_theory

    g = 5
    t = regime_theory(fresh_real(40, 0.25), P6, g)
    np.testing.assert_array_equal(t.values("collision"), _exact("fresh_real", g=g, real=40, fraction=0.25)
                                  .values("collision"))
    t = regime_theory(accumulate_subsample([30], [20], [10]), P6, g)
    np.testing.assert_array_equal(t.values("collision"), th.accumulate_subsample_collision(P6, 30, 20, 10, g))
    _assert_fully_synthetic(regime_theory(most_recent(12, 1), P6, g), P6, 12, g)
    assert regime_theory(most_recent(12, 1), P6, g, decoding=Decoding(temperature=0.5)).curves == {}
    assert regime_theory(most_recent(12, 1), P6, g, decoding=Decoding()).curves != {}
    with pytest.raises(ValueError, match="one context"):
        regime_theory(most_recent([6, 6], 1), P6, g)


def test_lookup_says_why_nothing_applies():
    for t, why in [(_exact("most_recent", synthetic=10, window=3), "window 3"),
                   (_exact("random_history", synthetic=10), "random_history"),
                   (_exact("fully_synthetic", synthetic=10, decoding=True), "decoding"),
                   (_exact("partially_synthetic", real=5, synthetic=10, smoothing=True), "smoothing")]:
        assert t.curves == {} and t.collapse == {} and why in t.note and t.values("collision") is None
    with pytest.raises(ValueError, match="synthetic"):
        _exact("fully_synthetic")
    with pytest.raises(ValueError, match="regime"):
        _exact("nonsense", synthetic=3)
    with pytest.raises(ValueError, match="sum to 1"):
        _exact("fully_synthetic", p=[0.5, 0.6], synthetic=3)


def test_lookup_is_what_the_run_report_and_the_phase_diagram_use():
    from jaxcollapse import table
    from jaxcollapse.io import report
    from jaxcollapse.sweeps.phase import theory_point

    g = 6
    # a fresh-real run as the engine records it: real = M - S fresh samples, synthetic = S, first = M
    run = {"kind": "fresh_real", "regime": "fresh_real(real=100, fraction=0.5)", "smoothing": 0.0,
           "decoding": None, "sizes": {"first": [100], "real": [50], "synthetic": [50], "train": [0]}}
    t = report.theory_for(run, table(P6), g)
    np.testing.assert_allclose(t.values("collision"), th.collision(P6) + th.fresh_real_sq_deviation(P6, 100, 0.5, g))
    point = {"regime": "fresh_real", "real": 100, "fraction": 0.5, "temperature": 1.0, "top_k": None,
             "top_p": None, "smoothing": 0.0}
    assert theory_point(point, table(P6).probs, g) == {"collision": pytest.approx(t.values("collision")[g])}
    # fraction 1: fully synthetic with n = M, collapse results included in both
    run["sizes"] = {"first": [20], "real": [0], "synthetic": [20], "train": [0]}
    t = report.theory_for(run, table(P6), g)
    _assert_fully_synthetic(t, P6, 20, g)
    th_point = theory_point({**point, "real": 20, "fraction": 1.0}, table(P6).probs, g)
    assert th_point["collapse"] == pytest.approx(th.collapsed_probability(P6, 20, g)[g])
    assert th_point["collapse_low"] <= th_point["collapse"] <= th_point["collapse_high"]
    # most-recent: the window is read from the regime's description
    run = {"kind": "most_recent", "regime": "most_recent(synthetic=20, window=1)", "smoothing": 0.0,
           "decoding": None, "sizes": {"first": [20], "real": [0], "synthetic": [20], "train": [0]}}
    _assert_fully_synthetic(report.theory_for(run, table(P6), g), P6, 20, g)
    assert report.theory_for({**run, "regime": "most_recent(synthetic=20, window=2)"}, table(P6), g).curves == {}


def test_cli_run_prints_the_fresh_real_theory(tmp_path, capsys):
    try:
        from jaxcollapse.cli import main
        assert callable(main)
    except (ImportError, AssertionError):
        from jaxcollapse.cli.main import main

    code = main(["run", "--regime", "fresh_real", "--real", "100", "--fraction", "0.5", "--chains", "50", "-g", "5",
                 "--no-plots", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code in (0, None)
    assert "theory, exact (fresh real, S_0 + d_m): E[collision] at generation 5" in out


def test_every_regime_with_a_theory_in_the_table_has_one_in_the_lookup():
    """The regime table names the exact theory of each regime; the lookup serves exactly those regimes."""
    from jaxcollapse.core.regime_table import TABLE
    from jaxcollapse.stats.lookup import THEORIES

    assert {k for k, spec in TABLE.items() if spec.theory} == set(THEORIES)
