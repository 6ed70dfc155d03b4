"""Tests of jaxcollapse.analysis (NumPy/SciPy statistics; no JAX).

Coverage tests use fixed seeds, so they are deterministic; their acceptance bands are still chosen
so that a correct implementation would fail with probability at most ``FAIL_PROB`` (tests/stats.py) each
over random seeds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from jaxcollapse import analysis as A
from stats import FAIL_PROB, z_for


def _binomial_band(reps: int, p: float, false_failure: float = FAIL_PROB) -> tuple[int, int]:
    """Two-sided acceptance band for a Binomial(reps, p) count with total false-failure prob <= false_failure.

    For reps = 2000, p = 0.95 and false_failure = 1e-3 this is [1867, 1931], i.e. the observed coverage must
    lie in [0.9335, 0.9655] (about ±3.3 binomial sd of 0.0049 around 0.95); at FAIL_PROB (8.3e-5) it is
    [1860, 1936] (about ±3.9 sd).
    """
    lo = int(stats.binom.ppf(false_failure / 2, reps, p))  # P(X < lo) < false_failure / 2
    hi = int(stats.binom.isf(false_failure / 2, reps, p))  # P(X > hi) <= false_failure / 2
    return lo, hi


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------------------------
# mean_ci


def test_mean_ci_hand_values():
    # x = 1,2,3,4: mean 2.5, sd = sqrt(5/3) = 1.2909944, t_{0.975,3} = 3.1824463,
    # half-width = 3.1824463 * 1.2909944 / 2 = 2.0542603.
    r = A.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert r.n == 4
    assert r.mean == pytest.approx(2.5)
    assert r.sd == pytest.approx(1.2909944, rel=1e-7)
    assert r.ci_low == pytest.approx(2.5 - 2.0542603, rel=1e-7)
    assert r.ci_high == pytest.approx(2.5 + 2.0542603, rel=1e-7)
    assert not r.infinite
    # 90 % interval: t_{0.95,3} = 2.3533634
    r90 = A.mean_ci([1.0, 2.0, 3.0, 4.0], level=0.90)
    assert r90.ci_high == pytest.approx(2.5 + 2.3533634 * 1.2909944 / 2, rel=1e-7)


def test_mean_ci_columnwise_and_axis():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5))
    r = A.mean_ci(x)
    assert r.mean.shape == (5,)
    for j in range(5):
        rj = A.mean_ci(x[:, j])
        assert r.mean[j] == pytest.approx(rj.mean)
        assert r.ci_low[j] == pytest.approx(rj.ci_low)
        assert r.ci_high[j] == pytest.approx(rj.ci_high)
    rt = A.mean_ci(x.T, axis=1)
    np.testing.assert_allclose(rt.ci_high, r.ci_high)


def test_t_interval_coverage():
    # 2000 independent normal samples of size 5 (as 2000 columns); the t-interval must cover the
    # true mean in a number of columns inside the FAIL_PROB false-failure binomial band (see _binomial_band).
    reps, n, mu = 2000, 5, 1.7
    x = np.random.default_rng(11).normal(mu, 2.0, size=(n, reps))
    r = A.mean_ci(x, level=0.95)
    covered = int(np.sum((r.ci_low <= mu) & (mu <= r.ci_high)))
    lo, hi = _binomial_band(reps, 0.95)
    assert _binomial_band(reps, 0.95, 1e-3) == (1867, 1931)
    assert lo <= covered <= hi, covered
    # The band has power: a normal-quantile interval (true coverage 0.878 at n = 5) falls outside it.
    z_half = stats.norm.ppf(0.975) * r.sd / math.sqrt(n)
    z_covered = int(np.sum(np.abs(r.mean - mu) <= z_half))
    assert not lo <= z_covered <= hi


def test_mean_ci_infinite_columns(no_warnings):
    x = np.array([[1.0, 1.0, 1.0, np.nan],
                  [2.0, np.inf, -np.inf, np.inf],
                  [3.0, 2.0, 0.5, 1.0]])
    r = A.mean_ci(x)
    assert np.isfinite(r.mean[0]) and np.isfinite(r.ci_low[0]) and not r.infinite[0]
    # +inf column: everything +inf, flagged.
    assert r.infinite[1]
    assert r.mean[1] == np.inf and r.sd[1] == np.inf
    assert r.ci_low[1] == np.inf and r.ci_high[1] == np.inf
    # -inf column: mean and bounds -inf, sd +inf.
    assert r.infinite[2]
    assert r.mean[2] == -np.inf and r.sd[2] == np.inf
    assert r.ci_low[2] == -np.inf and r.ci_high[2] == -np.inf
    # NaN wins over inf: undefined, not flagged.
    assert np.isnan([r.mean[3], r.sd[3], r.ci_low[3], r.ci_high[3]]).all()
    assert not r.infinite[3]
    # Both signs of infinity: no mean.
    rb = A.mean_ci([np.inf, -np.inf, 1.0])
    assert np.isnan(rb.mean) and not rb.infinite


def test_mean_ci_nan_column_isolated(no_warnings):
    # Like l1_first: undefined (NaN) at generation 0 for every chain.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 4))
    x[:, 0] = np.nan
    x[3, 2] = np.nan  # one undefined value poisons only its own column
    r = A.mean_ci(x)
    assert np.isnan(r.mean[0]) and np.isnan(r.ci_low[0]) and np.isnan(r.ci_high[0]) and np.isnan(r.sd[0])
    assert np.isnan(r.mean[2])
    ref = A.mean_ci(x[:, [1, 3]])
    np.testing.assert_allclose(r.mean[[1, 3]], ref.mean)
    np.testing.assert_allclose(r.ci_high[[1, 3]], ref.ci_high)


def test_mean_ci_single_chain(no_warnings):
    r = A.mean_ci(np.array([[2.0, 3.0]]))
    np.testing.assert_array_equal(r.mean, [2.0, 3.0])
    assert np.isnan(r.sd).all() and np.isnan(r.ci_low).all() and np.isnan(r.ci_high).all()
    assert r.n == 1


def test_mean_ci_rejects_bad_level():
    with pytest.raises(ValueError):
        A.mean_ci([1.0, 2.0], level=1.0)


def test_summarize():
    rng = np.random.default_rng(0)
    traces = {"entropy": rng.normal(size=(6, 4)), "kl": np.abs(rng.normal(size=(6, 4)))}
    traces["kl"][2, 3] = np.inf
    s = A.summarize(traces, level=0.9)
    assert set(s) == {"entropy", "kl"}
    ref = A.mean_ci(traces["entropy"], level=0.9)
    np.testing.assert_allclose(s["entropy"].ci_low, ref.ci_low)
    assert s["kl"].infinite.tolist() == [False, False, False, True]


# ------------------------------------------------------------------------------------------------
# wilson_ci


def test_wilson_known_values():
    # z = 1.959964, z^2 = 3.841459.
    # 0/10: low 0, high = (z^2/10) / (1 + z^2/10) = 0.3841459 / 1.3841459 = 0.2775328.
    # 5/10: centre 0.5, half = z/1.3841459 * sqrt(0.025 + 3.841459/400) = 0.2634069.
    # 10/10: low = 1 - 0.2775328 = 0.7224672, high 1.
    est, low, high = A.wilson_ci([0, 5, 10], 10)
    np.testing.assert_allclose(est, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(low, [0.0, 0.2365931, 0.7224672], atol=1e-7)
    np.testing.assert_allclose(high, [0.2775328, 0.7634069, 1.0], atol=1e-7)
    assert low[0] == 0.0 and high[2] == 1.0


def test_wilson_formula_and_broadcast():
    s = np.array([[1], [7], [40]])
    n = np.array([50, 100])
    r = A.wilson_ci(s, n, level=0.9)
    assert r.low.shape == (3, 2)
    z = stats.norm.ppf(0.95)
    p = 7 / 100
    centre = (p + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(p * (1 - p) / 100 + z * z / 40000) / (1 + z * z / 100)
    assert r.low[1, 1] == pytest.approx(centre - half)
    assert r.high[1, 1] == pytest.approx(centre + half)
    scalar = A.wilson_ci(0, 0)
    assert np.isnan(scalar.estimate) and np.isnan(scalar.low)
    with pytest.raises(ValueError):
        A.wilson_ci(11, 10)


# ------------------------------------------------------------------------------------------------
# bootstrap_ci and quantile_ci


def test_bootstrap_deterministic_and_batch_invariant(monkeypatch):
    x = np.random.default_rng(2).exponential(size=(40, 3))
    r1 = A.bootstrap_ci(x, seed=7)
    r2 = A.bootstrap_ci(x, seed=7)
    np.testing.assert_array_equal(r1.low, r2.low)
    r3 = A.bootstrap_ci(x, seed=8)
    assert not np.array_equal(r1.low, r3.low)
    from jaxcollapse.stats import quantiles

    monkeypatch.setattr(quantiles, "_BOOTSTRAP_BATCH_ELEMENTS", 500)  # 4 resamples per batch
    r4 = A.bootstrap_ci(x, seed=7)
    np.testing.assert_array_equal(r1.low, r4.low)
    np.testing.assert_array_equal(r1.high, r4.high)
    # A column on its own gets the same resampled rows as inside the matrix.
    r5 = A.bootstrap_ci(x[:, 1], seed=7)
    assert r5.low == r1.low[1] and r5.high == r1.high[1]
    np.testing.assert_allclose(r1.estimate, np.median(x, axis=0))


def test_bootstrap_mean_matches_normal_interval():
    # For the mean of 400 normal values the percentile bootstrap ~ mean ± 1.96 sd/sqrt(n).
    x = np.random.default_rng(4).normal(3.0, 2.0, size=400)
    r = A.bootstrap_ci(x, statistic=np.mean, resamples=4000, seed=1)
    se = x.std(ddof=1) / math.sqrt(400)
    assert r.estimate == pytest.approx(x.mean())
    # Monte Carlo error of a 2.5 % quantile of 4000 resamples: sqrt(q (1 - q) / 4000) / phi(1.96) = 0.042 se;
    # allow z for FAIL_PROB over the two bounds (4.09), 0.17 se.
    tol = z_for(2, FAIL_PROB) * math.sqrt(0.025 * 0.975 / 4000) / stats.norm.pdf(1.96) * se
    assert r.low == pytest.approx(x.mean() - 1.96 * se, abs=tol)
    assert r.high == pytest.approx(x.mean() + 1.96 * se, abs=tol)


def test_bootstrap_nan_and_inf_columns(no_warnings):
    x = np.random.default_rng(9).normal(size=(30, 3))
    x[0, 0] = np.nan
    x[:5, 1] = np.inf  # the median stays finite with 5 of 30 infinite values
    x[:, 2] = np.inf
    r = A.bootstrap_ci(x, resamples=500)
    assert np.isnan([r.estimate[0], r.low[0], r.high[0]]).all()
    assert np.isfinite(r.estimate[1]) and np.isfinite(r.low[1])
    assert r.estimate[2] == np.inf and r.low[2] == np.inf and r.high[2] == np.inf


def test_bootstrap_resamples_rows_uniformly():
    # Data (0, 1), statistic mean: resample means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    # So the 20 %/80 % bootstrap quantiles are 0 and 1, and the 30 %/70 % ones are both 0.5
    # (4000 resamples: the empirical mass of 0 is 0.25 ± 0.007, far from 0.2 and 0.3).
    x = np.array([0.0, 1.0])
    r60 = A.bootstrap_ci(x, statistic=np.mean, level=0.6, resamples=4000, seed=3)
    assert (r60.low, r60.high) == (0.0, 1.0)
    r40 = A.bootstrap_ci(x, statistic=np.mean, level=0.4, resamples=4000, seed=3)
    assert (r40.low, r40.high) == (0.5, 0.5)


def _exact_ranks(n, q, level):
    # Independent re-derivation: l = max{r : P(B <= r-1) <= a/2}, u = min{r : P(B >= r) <= a/2}.
    a2 = (1 - level) / 2
    l = max([r for r in range(0, n + 1) if r == 0 or stats.binom.cdf(r - 1, n, q) <= a2])
    u = min([r for r in range(1, n + 2) if r == n + 1 or stats.binom.sf(r - 1, n, q) <= a2])
    return l, u


def test_quantile_ci_known_ranks():
    # n = 10, median: P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024, so [x_(2), x_(9)],
    # coverage 1 - 22/1024 = 0.9785 (the textbook table value).
    x = np.arange(10.0)[::-1] * 1.5
    r = A.quantile_ci(x, 0.5)
    assert r.low == 1.5 and r.high == 12.0  # sorted: 0, 1.5, ..., 13.5
    assert r.estimate == pytest.approx(np.median(x))
    # Too few observations for a bound: n = 5, q = 0.9 -> upper bound +inf.
    r2 = A.quantile_ci(np.arange(5.0), 0.9)
    assert r2.high == np.inf and np.isfinite(r2.low)


def test_quantile_ci_coverage():
    # Exact coverage of [x_(l), x_(u)] for continuous data is P(l <= B <= u-1); the simulated
    # coverage must sit within the FAIL_PROB binomial band around it, and that value is >= level.
    reps, n, level = 2000, 40, 0.95
    x = np.random.default_rng(21).exponential(size=(n, reps))
    for q in (0.5, 0.9):
        true_q = -math.log(1 - q)
        l, u = _exact_ranks(n, q, level)
        exact = stats.binom.cdf(u - 1, n, q) - stats.binom.cdf(l - 1, n, q)
        assert exact >= level
        r = A.quantile_ci(x, q, level=level)
        covered = int(np.sum((r.low <= true_q) & (true_q <= r.high)))
        lo, hi = _binomial_band(reps, exact)
        assert lo <= covered <= hi, (q, covered, exact)


# ------------------------------------------------------------------------------------------------
# kaplan_meier


# Hand example, 8 chains (time, observed):
#   (1,C) (2,C) (2,cens) (3,C) (3,C) (4,cens) (5,C) (6,cens)      C = collapsed
#   t  at risk  events  S(t)                      Greenwood v = sum d/(n(n-d))
#   0     8       0     1                         0
#   1     8       1     7/8          = 0.875      1/56
#   2     7       1     0.875*6/7    = 0.75       1/56 + 1/42 = 1/24
#   3     5       2     0.75*3/5     = 0.45       1/24 + 2/15 = 0.175
#   5     2       1     0.45*1/2     = 0.225      0.175 + 1/2 = 0.675
# (the chain censored at 2 is still at risk at 2). Log-log 95 % interval at t = 3:
#   w = 1.959964*sqrt(0.175)/ln(0.45) = -1.03157, [0.45^exp(-w), 0.45^exp(w)] = [0.1075781, 0.7512738]
# and at t = 5 (v = 0.675): [0.0123964, 0.6024194].
# Restricted mean to horizon 6 (= max time): 1 + 0.875 + 0.75 + 2*0.45 + 0.225 = 3.75.
# Its variance: A_i = area of S from t_i to 6: A_1 = 2.75, A_2 = 1.875, A_3 = 1.125, A_5 = 0.225;
#   2.75^2/56 + 1.875^2/42 + 1.125^2*2/15 + 0.225^2/2 = 0.41281250, se = 0.6425049.
# Median: first t with S <= 0.5 is 3.
KM_TIMES = [1, 2, 2, 3, 3, 4, 5, 6]
KM_OBS = [True, True, False, True, True, False, True, False]


def test_kaplan_meier_hand_example():
    km = A.kaplan_meier(KM_TIMES, KM_OBS)
    np.testing.assert_array_equal(km.time, [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(km.at_risk, [8, 8, 7, 5, 2])
    np.testing.assert_array_equal(km.events, [0, 1, 1, 2, 1])
    np.testing.assert_allclose(km.survival, [1.0, 0.875, 0.75, 0.45, 0.225])
    assert km.ci_low[0] == 1.0 and km.ci_high[0] == 1.0
    assert km.ci_low[3] == pytest.approx(0.1075781, abs=1e-7)
    assert km.ci_high[3] == pytest.approx(0.7512738, abs=1e-7)
    assert km.ci_low[4] == pytest.approx(0.0123964, abs=1e-7)
    assert km.ci_high[4] == pytest.approx(0.6024194, abs=1e-7)
    assert km.restricted_mean == pytest.approx(3.75)
    assert km.restricted_mean_se == pytest.approx(math.sqrt(0.4128125), rel=1e-10)
    assert km.median == 3.0
    assert km.horizon == 6.0 and km.max_time == 6


def test_kaplan_meier_horizon_and_survival_at():
    km = A.kaplan_meier(KM_TIMES, KM_OBS, horizon=4)
    # 1 + 0.875 + 0.75 + 0.45 = 3.075; A_1 = 2.075, A_2 = 1.2, A_3 = 0.45 (event at 5 is past 4).
    assert km.restricted_mean == pytest.approx(3.075)
    var = 2.075 ** 2 / 56 + 1.2 ** 2 / 42 + 0.45 ** 2 * 2 / 15
    assert km.restricted_mean_se == pytest.approx(math.sqrt(var))
    s = A.survival_at(km, [-1, 0, 0.5, 1, 2.5, 4, 5, 6, 7])
    np.testing.assert_allclose(s, [1, 1, 1, 0.875, 0.75, 0.45, 0.225, 0.225, np.nan])
    assert A.survival_at(km, 3) == pytest.approx(0.45)
    with pytest.raises(ValueError):
        A.kaplan_meier(KM_TIMES, KM_OBS, horizon=7)  # beyond follow-up while S > 0


def test_restricted_mean_equals_sample_mean_without_censoring():
    t = np.random.default_rng(6).geometric(0.07, size=300)
    km = A.kaplan_meier(t, np.ones_like(t, dtype=bool))
    assert km.survival[-1] == 0.0
    assert km.restricted_mean == pytest.approx(t.mean(), rel=1e-12)
    # With no censoring the standard formula reduces to sqrt(sum (t - mean)^2) / n.
    assert km.restricted_mean_se == pytest.approx(t.std(ddof=0) / math.sqrt(t.size), rel=1e-10)
    # A horizon past the last collapse adds nothing; S is known to be 0 there.
    km2 = A.kaplan_meier(t, np.ones_like(t, dtype=bool), horizon=t.max() + 10)
    assert km2.restricted_mean == pytest.approx(t.mean(), rel=1e-12)
    assert A.survival_at(km2, t.max() + 5) == 0.0
    # Without censoring the KM median (first t with S(t) <= 0.5) is the order statistic x_(ceil(n/2)).
    assert km.median == float(np.sort(t)[math.ceil(t.size / 2) - 1])


def test_kaplan_meier_median_not_reached_and_all_censored():
    # S(2) = 0.5 exactly for collapses at 1, 2, 3, 4: the median is 2 (S <= 0.5, not S < 0.5).
    assert A.kaplan_meier([1, 2, 3, 4], [True] * 4).median == 2.0
    km = A.kaplan_meier([3, 10, 10, 10], [True, False, False, False])
    assert math.isnan(km.median)
    np.testing.assert_allclose(km.survival, [1.0, 0.75])
    assert km.restricted_mean == pytest.approx(3 + 7 * 0.75)
    none = A.kaplan_meier([10, 10], [False, False])
    np.testing.assert_array_equal(none.time, [0])
    assert none.restricted_mean == 10.0 and none.restricted_mean_se == 0.0
    with pytest.raises(ValueError):
        A.kaplan_meier([1.5, 2], [True, True])


# ------------------------------------------------------------------------------------------------
# compare_to_theory


def _random_walk_traces(rng, chains, gens, drift):
    steps = rng.normal(size=(chains, gens))
    traces = np.concatenate([np.zeros((chains, 1)), np.cumsum(steps, axis=1)], axis=1)
    theory = np.arange(gens + 1) * drift
    return traces + theory, theory


def test_compare_to_theory_accepts_correct_and_detects_shift():
    rng = np.random.default_rng(12)
    traces, theory = _random_walk_traces(rng, 400, 30, 0.1)
    ok = A.compare_to_theory(traces, theory)
    # Generation 0 is deterministic and equal to theory: z = 0, not counted in the chi-square.
    assert ok.z[0] == 0.0 and ok.se[0] == 0.0
    assert ok.dof == 30
    assert ok.p_value_max > FAIL_PROB
    shifted = theory.copy()
    shifted[20] += 0.5 * math.sqrt(20)  # half a chain sd at generation 20
    bad = A.compare_to_theory(traces, shifted)
    assert bad.p_value_max < 1e-6
    assert np.argmax(np.abs(bad.z)) == 20
    # Deterministic generation that disagrees: z = -inf there, certain rejection.
    off = theory.copy()
    off[0] = 1.0
    r = A.compare_to_theory(traces, off)
    assert r.z[0] == -np.inf and r.max_abs_z == np.inf and r.p_value_max == 0.0


def test_compare_to_theory_bonferroni_is_valid_under_correlation():
    # 400 experiments with correct theory and strongly correlated generations: the max-|z|
    # rejection rate at 0.05 must not exceed 0.05 beyond binomial noise (upper FAIL_PROB quantile).
    rng = np.random.default_rng(13)
    reps = 400
    rejections = 0
    for _ in range(reps):
        traces, theory = _random_walk_traces(rng, 60, 20, 0.0)
        rejections += A.compare_to_theory(traces, theory).p_value_max < 0.05
    assert rejections <= stats.binom.isf(FAIL_PROB, reps, 0.05), rejections


def test_compare_to_theory_nan_inf_columns(no_warnings):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    x[:, 0] = np.nan
    x[3, 1] = np.inf
    r = A.compare_to_theory(x, np.zeros(4))
    assert np.isnan(r.z[0]) and np.isnan(r.z[1])
    assert r.dof == 2
    assert r.chi2 == pytest.approx(np.sum(r.z[2:] ** 2))
    assert r.p_value == pytest.approx(stats.chi2.sf(r.chi2, 2))
    with pytest.raises(ValueError):
        A.compare_to_theory(x, np.zeros(3))


# ------------------------------------------------------------------------------------------------
# planning


def test_chains_needed_formula_and_scaling():
    pilot = np.random.default_rng(8).normal(0.0, [1.0, 3.0, 0.5], size=(200, 3))
    sd = pilot.std(axis=0, ddof=1)
    z = stats.norm.ppf(0.975)
    r = A.chains_needed(pilot, 0.2)
    np.testing.assert_array_equal(r.per_column, np.ceil((z * sd / 0.2) ** 2))
    assert r.chains == int(r.per_column[1])  # the widest column decides
    r_half = A.chains_needed(pilot, 0.1)
    # Half the width needs 4x the chains (up to the rounding of the ceiling).
    assert np.all(r_half.per_column <= 4 * r.per_column)
    assert np.all(r_half.per_column > 4 * r.per_column - 4)
    assert r_half.chains / r.chains == pytest.approx(4.0, rel=1e-2)


def test_chains_needed_achieves_half_width():
    sd_true = 2.0
    pilot = np.random.default_rng(30).normal(0.0, sd_true, size=2000)
    plan = A.chains_needed(pilot, 0.25)
    big = np.random.default_rng(31).normal(0.0, sd_true, size=plan.chains)
    r = A.mean_ci(big)
    # The realised half-width varies by ~4.5 % (sd of a sample sd at ~250 chains); allow 20 %.
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(0.25, rel=0.2)


def test_chains_needed_nonfinite_and_proportion():
    x = np.random.default_rng(2).normal(size=(20, 3))
    x[:, 0] = np.nan
    x[0, 2] = np.inf
    r = A.chains_needed(x, 0.5)
    assert np.isnan(r.per_column[0]) and r.per_column[2] == np.inf
    assert r.chains == int(r.per_column[1])
    with pytest.raises(ValueError):
        A.chains_needed(x[:, [0]], 0.5)
    # Worst case p = 0.5, ±0.05 at 95 %: 1.959964^2 * 0.25 / 0.0025 = 384.15 -> 385 (textbook).
    assert A.chains_needed_proportion(None, 0.05) == 385
    assert A.chains_needed_proportion(0.1, 0.05) == math.ceil(stats.norm.ppf(0.975) ** 2 * 0.09 / 0.0025)
    np.testing.assert_array_equal(A.chains_needed_proportion(np.array([0.0, 0.5]), 0.05), [1, 385])


# ------------------------------------------------------------------------------------------------
# scipy as the oracle: the hand-written Kaplan–Meier and percentile bootstrap against scipy.stats


def _censored_times(seed, chains=300, p=0.04, follow_up=40):
    """Geometric collapse times censored at a common follow-up and at random earlier times: many ties, as the
    engine's integer generations have."""
    rng = np.random.default_rng(seed)
    t = rng.geometric(p, size=chains)
    c = np.where(rng.random(chains) < 0.3, rng.integers(1, follow_up + 1, size=chains), follow_up)
    return np.minimum(t, c), t <= c


def _scipy_ecdf(times, observed):
    times, observed = np.asarray(times), np.asarray(observed, bool)
    data = stats.CensoredData(uncensored=times[observed].astype(float), right=times[~observed].astype(float))
    return stats.ecdf(data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kaplan_meier_survival_matches_scipy(seed):
    times, observed = _censored_times(seed)
    km = A.kaplan_meier(times, observed)
    sf = _scipy_ecdf(times, observed).sf
    grid = np.arange(0, times.max() + 1)
    np.testing.assert_allclose(A.survival_at(km, grid), sf.evaluate(grid), rtol=1e-12, atol=1e-15)
    # scipy's steps are at every distinct time (censoring-only ones included, where S does not move); ours at
    # the collapse generations
    steps = sf.quantiles[np.diff(np.r_[1.0, sf.probabilities]) != 0]
    np.testing.assert_array_equal(km.time[1:], steps)


def test_kaplan_meier_hand_example_matches_scipy():
    km = A.kaplan_meier(KM_TIMES, KM_OBS)
    sf = _scipy_ecdf(KM_TIMES, KM_OBS).sf
    np.testing.assert_allclose(A.survival_at(km, km.time), sf.evaluate(km.time), rtol=1e-14)


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_kaplan_meier_greenwood_log_log_interval_matches_scipy(level):
    times, observed = _censored_times(3)
    km = A.kaplan_meier(times, observed, level=level)
    sf = _scipy_ecdf(times, observed).sf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns where S = 0 or 1
        ci = sf.confidence_interval(confidence_level=level, method="log-log")
    at = km.time[1:]
    # where 0 < S < 1 (scipy leaves NaN where the log-log transform is undefined)
    inside = (km.survival[1:] > 0) & (km.survival[1:] < 1)
    np.testing.assert_allclose(km.ci_low[1:][inside], ci.low.evaluate(at)[inside], rtol=1e-10)
    np.testing.assert_allclose(km.ci_high[1:][inside], ci.high.evaluate(at)[inside], rtol=1e-10)


def test_kaplan_meier_greenwood_variance_matches_scipy_linear_interval():
    # scipy's "linear" interval is S ± z sqrt(Greenwood variance of S) = S ± z S sqrt(v), v as in kaplan_meier
    times, observed = _censored_times(4)
    km = A.kaplan_meier(times, observed)
    sf = _scipy_ecdf(times, observed).sf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sf.confidence_interval(confidence_level=0.95, method="linear")
    at = km.time[1:]
    s = km.survival[1:]
    risk, ev = km.at_risk[1:], km.events[1:]
    v = np.cumsum(np.where(risk > ev, ev / (risk * (risk - ev).astype(float)), 0.0))
    z = stats.norm.ppf(0.975)
    inside = (s > 0) & (s < 1)
    np.testing.assert_allclose(np.clip(s - z * s * np.sqrt(v), 0, 1)[inside], ci.low.evaluate(at)[inside],
                               rtol=1e-10)
    np.testing.assert_allclose(np.clip(s + z * s * np.sqrt(v), 0, 1)[inside], ci.high.evaluate(at)[inside],
                               rtol=1e-10)


def _scipy_bootstrap(data, statistic, level, resamples, seed):
    """scipy.stats.bootstrap, percentile method, with the resamples of ``np.random.default_rng(seed)`` drawn in
    one batch of shape (resamples, chains): the indices bootstrap_ci draws."""
    import inspect

    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return stats.bootstrap((data,), statistic, confidence_level=level, n_resamples=resamples, method="percentile",
                           vectorized=True, axis=-1, **{key: np.random.default_rng(seed)})


@pytest.mark.parametrize("statistic", [np.mean, np.median, np.std])
def test_bootstrap_percentile_interval_matches_scipy(statistic):
    x = np.random.default_rng(11).exponential(2.0, size=150)
    ours = A.bootstrap_ci(x, statistic=statistic, level=0.9, resamples=999, seed=5)
    theirs = _scipy_bootstrap(x, statistic, 0.9, 999, 5)
    assert ours.low == pytest.approx(theirs.confidence_interval.low, rel=1e-12)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, rel=1e-12)


def test_bootstrap_columns_match_scipy_with_shared_resamples():
    # bootstrap_ci resamples whole rows (chains): scipy with the chains on the last axis does the same
    x = np.random.default_rng(12).normal(size=(80, 4)) * [1.0, 2.0, 0.5, 3.0]
    ours = A.bootstrap_ci(x, statistic=np.median, resamples=500, seed=9)
    theirs = _scipy_bootstrap(x.T, np.median, 0.95, 500, 9)
    np.testing.assert_allclose(ours.low, theirs.confidence_interval.low, rtol=1e-12)
    np.testing.assert_allclose(ours.high, theirs.confidence_interval.high, rtol=1e-12)
