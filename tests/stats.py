"""Monte Carlo assertions with a stated false-failure probability, and the suite's false-failure budget.

The budget. When the code is right, the whole suite fails a statistical assertion, for a random choice of its
keys and seeds, with probability at most ``SUITE_FALSE_FAILURE`` = 1%: the suite makes ``ASSERTIONS`` = 121
statistical assertions (``STATISTICAL`` below lists them by test, each parametrisation and loop pass counted
once), and each is made at level ``FAIL_PROB = SUITE_FALSE_FAILURE / ASSERTIONS`` (about 8.3e-5), so by the
union bound their false failures add up to at most 1%. An assertion that checks several columns at once
(several generations, tokens or cases) splits its ``FAIL_PROB`` over them (Bonferroni). Every statistical test
runs at fixed keys and seeds, so its outcome is deterministic: a failure is reproducible, and a change that
alters the random streams (new keys, a new sampler) is a fresh draw with at most a 1% chance of a spurious
failure somewhere in the suite. Margins of seven or more standard errors (false-failure probability below
1e-6) are not counted. ``tests/test_stats_budget.py`` checks that the table still matches the tests.

The assertions here use the normal approximation to the sample mean with the sample's own standard error
(``assert_mean``) or an exact binomial test (``assert_proportion``); other modules compare against
``FAIL_PROB`` directly (chi-square and Bonferroni p-values, binomial bands).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

SUITE_FALSE_FAILURE = 0.01

# The statistical assertions of the suite: "module::test" -> (assertions per run of the test, runs: its
# parametrisations). Keep it current when a statistical assertion is added or removed.
STATISTICAL = {
    "test_engine.py::test_fully_synthetic_exact_moments": (5, 2),
    "test_engine.py::test_collapse_token_is_drawn_with_initial_probability": (2, 2),
    "test_engine.py::test_partially_synthetic_corrected_theorem2": (2, 2),
    "test_engine.py::test_fresh_real_exact_deviation": (2, 2),
    "test_engine.py::test_accumulate_exact_diversity": (1, 2),
    "test_engine.py::test_accumulate_subsample_exact_collision": (1, 2),
    "test_engine.py::test_unbiased_regimes_keep_the_mean": (1, 3),
    "test_engine.py::test_most_recent_window_one_is_fully_synthetic": (1, 1),
    "test_engine.py::test_ngram_contexts_follow_their_own_sample_sizes": (4, 1),    # 3 contexts + the mixture
    "test_engine.py::test_both_samplers_give_the_same_law": (2, 1),                  # 2 samplers
    "test_engine.py::test_resample_ngram_per_context": (3, 1),                       # 3 contexts
    "test_engine.py::test_random_history_weighs_every_earlier_model_equally_under_decoding": (1, 1),
    "test_samplers.py::test_multinomial_first_and_second_moments": (2, 2),
    "test_samplers.py::test_rows_with_own_sizes_and_weights": (1, 2),
    "test_samplers.py::test_tail_probability_1e7_unbiased": (2, 1),
    "test_samplers.py::test_counts_exact_beyond_2_31": (1, 1),
    "test_samplers.py::test_hypergeometric_subsample_moments": (2, 2),
    "test_samplers.py::test_hypergeometric_subsample_pmf_chi_square": (1, 4),
    "test_samplers.py::test_binomial_mean_and_variance": (2, 1),                     # each split over 12 cases
    "test_samplers.py::test_binomial_pmf_chi_square": (1, 1),                        # split over 12 cases
    "test_samplers.py::test_binomial_tree_marginals_uneven_tree": (2, 1),
    "test_samplers.py::test_words_uniform_and_independent": (4, 1),
    "test_trained.py::test_minibatches_are_token_subsamples": (1, 1),
    "test_trained.py::test_order_one_autoregressive_is_fully_synthetic_in_distribution": (2, 1),
    "test_theory.py::test_mc_fully_synthetic_collapse_alive_collision": (9, 1),
    "test_theory.py::test_mc_partially_synthetic": (16, 1),
    "test_theory.py::test_mc_fresh_real": (4, 1),
    "test_theory.py::test_mc_accumulate": (5, 1),
    "test_theory.py::test_mc_missing_mass": (3, 1),
    "test_analysis.py::test_t_interval_coverage": (1, 1),
    "test_analysis.py::test_quantile_ci_coverage": (2, 1),                           # 2 quantiles
    "test_analysis.py::test_bootstrap_mean_matches_normal_interval": (2, 1),         # 2 bounds
    "test_analysis.py::test_compare_to_theory_accepts_correct_and_detects_shift": (1, 1),
    "test_analysis.py::test_compare_to_theory_bonferroni_is_valid_under_correlation": (1, 1),
    "test_analysis.py::test_chains_needed_achieves_half_width": (1, 1),              # a 4-sd margin: < FAIL_PROB
    "test_reproduce.py::test_fig3_agrees_with_exact_theory": (4, 1),                 # max |z| and p-value, 2 series
    "test_reproduce.py::test_fig1_share_collapsed_agrees_with_wright_fisher": (2, 1),
    "test_reproduce.py::test_collapse_times_run_every_chain_to_collapse": (1, 1),
}
ASSERTIONS = sum(per_run * runs for per_run, runs in STATISTICAL.values())      # 121
FAIL_PROB = SUITE_FALSE_FAILURE / ASSERTIONS                                      # 8.3e-5 per assertion


def z_for(columns: int = 1, fail_prob: float = FAIL_PROB) -> float:
    """Two-sided critical value for ``columns`` simultaneous tests at total false-failure ``fail_prob``."""
    return float(stats.norm.ppf(1 - fail_prob / (2 * columns)))


def assert_mean(samples, expected, *, fail_prob: float = FAIL_PROB, what: str = "mean") -> np.ndarray:
    """Assert the column means of ``samples`` ``(draws, k)`` equal ``expected`` ``(k,)`` within z·SE.

    Columns with zero sample variance must match exactly (to 1e-12 relative). Returns the z-scores.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), x.shape[1:])
    mean = x.mean(axis=0)
    se = x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    z_crit = z_for(x.shape[1], fail_prob)
    exact = se == 0
    assert np.allclose(mean[exact], expected[exact], rtol=1e-12, atol=1e-15), (
        f"{what}: zero-variance columns {np.flatnonzero(exact)} differ: {mean[exact]} vs {expected[exact]}")
    z = np.where(exact, 0.0, (mean - expected) / np.where(exact, 1.0, se))
    worst = int(np.argmax(np.abs(z)))
    assert np.all(np.abs(z) <= z_crit), (
        f"{what}: column {worst} mean {mean[worst]:.6g} vs expected {expected[worst]:.6g}, "
        f"z = {z[worst]:.2f} beyond ±{z_crit:.2f} (false-failure probability {fail_prob:g})")
    return z


def assert_proportion(hits, expected, *, fail_prob: float = FAIL_PROB, what: str = "proportion") -> None:
    """Assert each column of the 0/1 array ``hits`` ``(draws, k)`` has success probability ``expected``
    by an exact two-sided binomial test at level ``fail_prob / k`` (Bonferroni)."""
    x = np.asarray(hits, dtype=bool)
    if x.ndim == 1:
        x = x[:, None]
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), x.shape[1:])
    trials = x.shape[0]
    for col, (k, p) in enumerate(zip(x.sum(axis=0), expected)):
        pval = stats.binomtest(int(k), trials, float(np.clip(p, 0, 1))).pvalue
        assert pval > fail_prob / x.shape[1], (
            f"{what}: column {col}: {k}/{trials} = {k / trials:.6g} vs expected {p:.6g} "
            f"(binomial p-value {pval:.2e}, false-failure probability {fail_prob:g})")
