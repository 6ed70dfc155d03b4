"""Monte Carlo assertions with a stated false-failure probability.

Every assertion here fails, when the code is right, with probability at most ``FAIL_PROB`` (two-sided,
Bonferroni-corrected over the columns it checks at once), using the normal approximation to the sample mean
with the sample's own standard error.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

FAIL_PROB = 1e-3


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
