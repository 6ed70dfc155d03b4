"""Exact (E) and asymptotic (A) results for recursive training on a categorical distribution.

This module collects, in NumPy float64, the closed forms of the reference ``model.md`` §4 (Seddik, Chen,
Hayou, Youssef, Debbah, "How Bad is Training on Synthetic Data?", arXiv 2404.05090, plus a few standard
results) so that the Monte Carlo engine can be checked against them.  Conventions match the engine:
every trajectory function returns an array of length ``generations + 1`` indexed by generation
``m = 0..G``, and generation 0 is the initial distribution ``p`` itself.  The regimes are: fully synthetic,
``p^(1) = Mult(n, p)/n`` and ``p^(m) = Mult(n, p^(m-1))/n``; partially synthetic, ``R ~ Mult(N, p)``,
``p^(1) = R/N`` and ``p^(m) = (R + Mult(n, p^(m-1)))/(N + n)`` for ``m >= 2``; fresh real,
``p^(1) = Mult(M, p)/M`` and ``p^(m) = (Mult(M - S, p) + Mult(S, p^(m-1)))/M`` with ``S = rint(λ M)``;
accumulate, ``p^(1) = R/N`` and ``p^(m) = (R + Σ_{j<m} Mult(n, p^(j)))/(N + (m-1) n)``.  The exact
Wright–Fisher computations of the fully synthetic chain (``alive_probability``, ``expected_alive``,
``collapsed_probability``, ``alive_and_collapsed``, ``expected_collapse_time``) live in
:mod:`jaxcollapse.stats.wright_fisher` and are re-exported here; :mod:`jaxcollapse.stats.lookup` picks the
results that apply to a regime.

Sign correction of the paper's Theorem 2.  As printed, Theorem 2 gives, with ``α = n/(N+n)``,
``β = α²(1-1/n)`` and ``D = 1 + (1+1/N)α``, ``S_{m+1} = {(1/N)[1 + 2α - (1-1/N)αβ^m] + (1-1/N)S_0[1 + α
- (α/N)β^m]}/D``; the ``-(α/N)β^m`` in the second bracket must be ``+(α/N)β^m``.  With ``+`` the value at
``m = 0`` is exactly ``E σ_1 = 1/N + (1-1/N)S_0`` (the numerator becomes ``D/N + (1-1/N)S_0 D``), the
limit ``n ≫ N`` at fixed ``m`` (``α, β → 1``) gives ``S_1`` as it must (``n`` samples from ``p^(m-1)``
then reproduce it exactly, so ``p^(m) = p^(1)``), and the formula coincides with the exact
``S_{m+1} = S_1 + (α²/n)(1-1/N)(1-S_0)(1-β^m)/(1-β)`` obtained from the martingale
``E[p^(m) | p^(1)] = p^(1)``; with the printed sign none of these hold.  ``theorem2_collision`` uses the
corrected sign by default and offers the printed one with ``corrected=False``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import special as _special

from ..errors import ConfigError, check_float
from .checks import check_generations, check_p, check_size, powers, support
# The Wright–Fisher computations live in their own module; their names stay reachable here.
from .wright_fisher import (MAX_WRIGHT_FISHER_N, alive_and_collapsed, alive_probability, collapsed_probability,
                            expected_alive, expected_collapse_time)

__all__ = [
    "collision",
    "diversity",
    "fully_synthetic_collision",
    "fully_synthetic_diversity",
    "fully_synthetic_sq_deviation",
    "collapse_token_probability",
    "alive_probability",
    "expected_alive",
    "collapsed_probability",
    "theorem1_collapse_probability_bounds",
    "theorem1_collapse_time_bounds",
    "littler_collapse_time",
    "expected_collapse_time",
    "partial_sq_deviation_from_first",
    "partial_sq_deviation",
    "partial_deviation_limit",
    "theorem2_collision",
    "fresh_real_sq_deviation",
    "fresh_real_sq_deviation_limit",
    "accumulate_diversity",
    "accumulate_diversity_limit",
    "partial_l1_bound",
    "accumulate_subsample_collision",
    "missing_mass",
    "alive_and_collapsed",
    "MAX_WRIGHT_FISHER_N",
]

# ----------------------------------------------------------------------------------------------------------
# basic statistics
# ----------------------------------------------------------------------------------------------------------

def collision(p) -> float:
    """Collision probability ``S_0 = Σ_i p_i²`` of the 1-D probability vector ``p`` (shape ``(s,)``), a
    float; it is the paper's statistic ``σ`` evaluated at ``p`` (exact, definition; arXiv 2404.05090 §3)."""
    p = check_p(p)
    return float(np.dot(p, p))


def diversity(p) -> float:
    """Diversity ``u = 1 - Σ_i p_i²`` (the Gini–Simpson index, ``H_0`` of model.md §4) of the 1-D probability
    vector ``p`` (shape ``(s,)``), a float (exact, definition; arXiv 2404.05090 §3)."""
    p = check_p(p)
    return float(1.0 - np.dot(p, p))


# ----------------------------------------------------------------------------------------------------------
# fully synthetic: neutral Wright–Fisher drift with population n
# ----------------------------------------------------------------------------------------------------------

def fully_synthetic_collision(p, n, generations) -> np.ndarray:
    """Expected collision probability in the fully synthetic regime, ``S_m = E σ_m = 1 - (1-1/n)^m u`` with
    ``u = 1 - Σ p_i²``, for ``m = 0..G`` (array of shape ``(G+1,)``, ``S_0 = Σ p_i²``); exact (E), paper
    Theorem 1 eq. (6) (arXiv 2404.05090 §3.1), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    return 1.0 - powers(1.0 - 1.0 / n, g) * u


def fully_synthetic_diversity(p, n, generations) -> np.ndarray:
    """Expected diversity in the fully synthetic regime, ``H_m = E[1 - σ_m] = (1-1/n)^m u`` with
    ``u = 1 - Σ p_i²``, for ``m = 0..G`` (array of shape ``(G+1,)``); exact (E), the complement of paper
    Theorem 1 eq. (6) (arXiv 2404.05090 §3.1), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    return powers(1.0 - 1.0 / n, g) * u


def fully_synthetic_sq_deviation(p, n, generations) -> np.ndarray:
    """Expected squared L2 drift in the fully synthetic regime, ``E‖p^(m) - p‖² = (1 - (1-1/n)^m) u`` with
    ``u = 1 - Σ p_i²``, for ``m = 0..G`` (array of shape ``(G+1,)``, 0 at ``m = 0``); exact (E), from the
    martingale ``E p^(m) = p`` and Theorem 1 eq. (6) (arXiv 2404.05090 §3.1), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    return (1.0 - powers(1.0 - 1.0 / n, g)) * u


def collapse_token_probability(p) -> np.ndarray:
    """Probability that the fully synthetic chain eventually collapses onto token ``i``, which is ``p_i``
    (a copy of ``p``, shape ``(s,)``), for any ``n >= 1``; exact (E), paper Proposition 1
    (arXiv 2404.05090 §3.1): each token's mass is a bounded martingale absorbed at 0 or 1."""
    return check_p(p).copy()


def theorem1_collapse_probability_bounds(p, n, generations) -> tuple[np.ndarray, np.ndarray]:
    """Paper Theorem 1 bounds on ``P(collapsed by m)`` in the fully synthetic regime, returned as
    ``(lower, upper)``, each of shape ``(G+1,)``: ``1 - n(1-S_0)(1-1/n)^m <= P(T <= m) <= 1 - (1-S_0)
    (1-1/n)^m / (1 - 1/s̃)`` with ``S_0 = Σ p_i²`` and ``s̃`` the support size of ``p``, clipped to [0, 1];
    both are 1 when ``s̃ = 1``.  The lower bound rests on ``1[not collapsed] <= n(1 - σ_m)``, true only once
    ``p^(m)`` is an ``n``-sample frequency (``m >= 1``); at ``m = 0`` the lower bound is therefore set to 0
    (the formula can exceed the true value 0 there when ``1 - S_0 < 1/n``).  Exact bounds (E), paper Theorem
    1 (arXiv 2404.05090 §3.1), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    g = check_generations(generations)
    s_tilde = support(p)
    if s_tilde == 1:
        ones = np.ones(g + 1)
        return ones, ones.copy()
    u = 1.0 - float(np.dot(p, p))
    h = u * powers(1.0 - 1.0 / n, g)
    lower = np.clip(1.0 - n * h, 0.0, 1.0)
    lower[0] = 0.0
    upper = np.clip(1.0 - h / (1.0 - 1.0 / s_tilde), 0.0, 1.0)
    return lower, upper


def theorem1_collapse_time_bounds(p, n) -> tuple[float, float]:
    """Paper Theorem 1 bounds on the expected collapse time of the fully synthetic chain, returned as floats
    ``(lower, upper)``: ``1 + (n-1)(1-S_0)/(1-1/s̃) <= E[T] <= 1 + (1-S_0) n (n-1)`` with ``S_0 = Σ p_i²``
    and ``s̃`` the support size of ``p`` (both obtained by summing the probability bounds of
    ``theorem1_collapse_probability_bounds`` over ``m >= 1``, plus ``P(T > 0) = 1``); for a Dirac ``p``
    (``T = 0``) both are 0.  Exact bounds (E), paper Theorem 1 (arXiv 2404.05090 §3.1), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    s_tilde = support(p)
    if s_tilde == 1:
        return 0.0, 0.0
    u = 1.0 - float(np.dot(p, p))
    return 1.0 + (n - 1) * u / (1.0 - 1.0 / s_tilde), 1.0 + u * n * (n - 1)


def littler_collapse_time(p, n) -> float:
    """Diffusion approximation of the expected fully synthetic collapse time (time until one token holds all
    mass), ``E[T] ≈ -2n Σ_i (1-p_i) ln(1-p_i)`` (terms with ``p_i`` = 0 or 1 contribute 0), a float;
    asymptotic (A) for large ``n`` (within a few percent for ``n >= 20``), Littler (1975), Theor. Pop. Biol.
    7:101 (the K-allele neutral Wright–Fisher absorption time), model.md §4."""
    p = check_p(p)
    n = check_size("n", n)
    q = 1.0 - p
    return float(-2.0 * n * np.sum(_special.xlogy(q, q)))


# ----------------------------------------------------------------------------------------------------------
# partially synthetic (paper §3.2): N real samples reused, n synthetic per generation
# ----------------------------------------------------------------------------------------------------------

def _alpha_beta(N: int, n: int) -> tuple[float, float]:
    alpha = n / (N + n)
    return alpha, alpha * alpha * (1.0 - 1.0 / n)


def partial_sq_deviation_from_first(p, N, n, generations) -> np.ndarray:
    """Expected squared L2 distance to the first model in the partially synthetic regime, for ``m = 0..G``
    (array ``(G+1,)``): ``E‖p^(m) - p^(1)‖² = (α²/n)(1-1/N) u (1-β^(m-1))/(1-β)`` for ``m >= 1`` (0 at
    ``m = 1``), with ``α = n/(N+n)``, ``β = α²(1-1/n)``, ``u = 1 - Σ p_i²``; at ``m = 0``, where ``p^(0) = p``,
    the value is ``E‖p - p^(1)‖² = u/N``.  Exact (E), paper §3.2 (arXiv 2404.05090, Theorem 2's derivation),
    model.md §4; it converges to ``partial_deviation_limit``."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    alpha, beta = _alpha_beta(N, n)
    out = np.empty(g + 1)
    out[0] = u / N
    if g >= 1:
        bm1 = powers(beta, g - 1)                                        # β^(m-1), m = 1..G
        out[1:] = (alpha * alpha / n) * (1.0 - 1.0 / N) * u * (1.0 - bm1) / (1.0 - beta)
    return out


def partial_sq_deviation(p, N, n, generations) -> np.ndarray:
    """Expected squared L2 drift from the truth in the partially synthetic regime, for ``m = 0..G`` (array
    ``(G+1,)``): 0 at ``m = 0`` and ``E‖p^(m) - p‖² = u/N + (α²/n)(1-1/N) u (1-β^(m-1))/(1-β)`` for
    ``m >= 1``, with ``α = n/(N+n)``, ``β = α²(1-1/n)``, ``u = 1 - Σ p_i²`` (the two terms are orthogonal
    since ``E[p^(m) | p^(1)] = p^(1)``).  Exact (E), paper §3.2 (arXiv 2404.05090), model.md §4."""
    out = partial_sq_deviation_from_first(p, N, n, generations)
    p = check_p(p)
    u = 1.0 - float(np.dot(p, p))
    out[1:] += u / int(N)
    out[0] = 0.0
    return out


def partial_deviation_limit(p, N, n) -> float:
    """Limit ``m → ∞`` of ``E‖p^(m) - p^(1)‖²`` in the partially synthetic regime,
    ``n(1-1/N)u / (N² + 2Nn + n)`` with ``u = 1 - Σ p_i²``, a float (finite: no collapse); exact (E), paper
    §3.2 (arXiv 2404.05090), model.md §4."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    u = 1.0 - float(np.dot(p, p))
    return n * (1.0 - 1.0 / N) * u / (N * N + 2.0 * N * n + n)


def partial_l1_bound(p, N, n) -> float:
    """A bound on ``E‖p^(m) - p^(1)‖₁`` valid for every ``m`` in the partially synthetic regime without
    smoothing or decoding, ``√(n (k - 1)) / N`` with ``k = min(|support of p|, N)``, a float (B, bound).

    ``p^(m) - p^(1) = α(q_m - p^(m-1)) + α(p^(m-1) - p^(1))`` with ``q_m`` the frequencies of the ``n`` synthetic
    samples and ``α = n/(N+n)``; ``E[q_m | p^(m-1)] = p^(m-1)``, whose support lies within that of ``p^(1)``
    (at most ``k`` tokens), so ``E‖q_m - p^(m-1)‖₁ ≤ Σ_i √(p_i(1-p_i)/n) ≤ √((k-1)/n)`` (Jensen,
    Cauchy–Schwarz, ``Σ p_i² ≥ 1/k``) and the drift is at most ``(α/(1-α)) √((k-1)/n)``. It needs no exact
    result, and is looser than ``√(s̃ · E‖p^(m) - p^(1)‖₂²)`` computed from the exact L2 deviation."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    return math.sqrt(n * (min(support(p), N) - 1)) / N


def theorem2_collision(p, N, n, generations, corrected: bool = True) -> np.ndarray:
    """Expected collision probability ``S_m = E σ_m`` in the partially synthetic regime for ``m = 0..G``
    (array ``(G+1,)``): ``S_0 = Σ p_i²`` and, for ``m >= 0``, ``S_{m+1} = {(1/N)[1 + 2α - (1-1/N)αβ^m] +
    (1-1/N)S_0[1 + α ± (α/N)β^m]}/D`` with ``α = n/(N+n)``, ``β = α²(1-1/n)``, ``D = 1 + (1+1/N)α``; ``+``
    (``corrected=True``, default) is exact (E) and equals ``S_1 + (α²/n)(1-1/N)(1-S_0)(1-β^m)/(1-β)``, ``−``
    (``corrected=False``) is the sign printed in the paper, which is wrong (see the module docstring).
    Source: paper Theorem 2 (arXiv 2404.05090 §3.2), corrected in model.md §4."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    g = check_generations(generations)
    if not isinstance(corrected, (bool, np.bool_)):
        raise ConfigError(f"corrected must be True or False, got {corrected!r}")
    s0 = float(np.dot(p, p))
    alpha, beta = _alpha_beta(N, n)
    d = 1.0 + (1.0 + 1.0 / N) * alpha
    sign = 1.0 if corrected else -1.0
    out = np.empty(g + 1)
    out[0] = s0
    if g >= 1:
        bm = powers(beta, g - 1)                                         # β^m for S_{m+1}, m = 0..G-1
        first = (1.0 / N) * (1.0 + 2.0 * alpha - (1.0 - 1.0 / N) * alpha * bm)
        second = (1.0 - 1.0 / N) * s0 * (1.0 + alpha + sign * (alpha / N) * bm)
        out[1:] = (first + second) / d
    return out


# ----------------------------------------------------------------------------------------------------------
# fresh real data with a fixed synthetic share
# ----------------------------------------------------------------------------------------------------------

def _fresh_split(M, fraction) -> tuple[int, float]:
    M = check_size("M", M)
    fraction = check_float("fraction", fraction, low=0.0, high=1.0)
    s = int(np.rint(fraction * M))                                        # the engine's integer split
    return M, s / M


def fresh_real_sq_deviation(p, M, fraction, generations) -> np.ndarray:
    """Expected squared L2 drift ``d_m = E‖p^(m) - p‖²`` in the fresh-real regime (``M`` samples per
    generation, ``S = rint(fraction·M)`` of them synthetic from ``p^(m-1)``, the rest fresh from ``p``), for
    ``m = 0..G`` (array ``(G+1,)``): ``d_0 = 0``, ``d_1 = u/M``, ``d_m = u/M + λ(λ - 1/M) d_{m-1}`` with
    ``λ = S/M`` the realised share and ``u = 1 - Σ p_i²``.  Exact (E), model.md §4 (common variant; not in
    arXiv 2404.05090)."""
    p = check_p(p)
    M, lam = _fresh_split(M, fraction)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    rho = lam * (lam - 1.0 / M)
    out = np.zeros(g + 1)
    for m in range(1, g + 1):
        out[m] = u / M + (rho * out[m - 1] if m >= 2 else 0.0)
    return out


def fresh_real_sq_deviation_limit(p, M, fraction) -> float:
    """Stationary value ``u / (M(1-λ²) + λ)`` of ``fresh_real_sq_deviation`` (``λ = rint(fraction·M)/M``,
    ``u = 1 - Σ p_i²``), a float; equals ``u`` when ``λ = 1`` (fully synthetic collapse).  Exact (E),
    model.md §4."""
    p = check_p(p)
    M, lam = _fresh_split(M, fraction)
    u = 1.0 - float(np.dot(p, p))
    return u / (M * (1.0 - lam * lam) + lam)


# ----------------------------------------------------------------------------------------------------------
# accumulate (Gerstgrasser et al.): N real, n synthetic appended per generation
# ----------------------------------------------------------------------------------------------------------

def accumulate_diversity(p, N, n, generations) -> np.ndarray:
    """Expected diversity ``H_m = E[1 - σ_m]`` in the accumulate regime for ``m = 0..G`` (array ``(G+1,)``):
    ``H_0 = u``, ``H_1 = (1-1/N)u``, ``H_m = (1-1/N) u Π_{j=2..m} (1 - n/(N+(j-1)n)²)`` with
    ``u = 1 - Σ p_i²`` (the pool frequency is a martingale whose step ``m → m+1`` adds variance
    ``n H_m/(N+mn)²``).  Exact (E), model.md §4 (Gerstgrasser et al., arXiv 2404.01413); it converges to
    ``accumulate_diversity_limit`` > 0 (no collapse)."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    g = check_generations(generations)
    u = 1.0 - float(np.dot(p, p))
    out = np.empty(g + 1)
    out[0] = u
    if g >= 1:
        j = np.arange(2, g + 1, dtype=np.float64)
        factors = 1.0 - n / (N + (j - 1.0) * n) ** 2
        out[1] = (1.0 - 1.0 / N) * u
        out[2:] = out[1] * np.cumprod(factors)
    return out


def accumulate_diversity_limit(p, N, n) -> float:
    """Limit ``m → ∞`` of ``accumulate_diversity``, ``(1-1/N) u Π_{k>=1} (1 - a²/(k+b)²)`` with ``a = 1/√n``,
    ``b = N/n``, ``u = 1 - Σ p_i²``, evaluated in closed form by the Euler product
    ``Π_{k>=1}(1 - a²/(k+b)²) = Γ(1+b)² / (Γ(1+b-a) Γ(1+b+a))`` (equal to the product taken to convergence),
    a float, positive whenever ``N >= 2`` and ``u > 0``.  Exact (E), model.md §4."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    u = 1.0 - float(np.dot(p, p))
    a = 1.0 / math.sqrt(n)
    c = 1.0 + N / n
    log_prod = 2.0 * _special.gammaln(c) - _special.gammaln(c - a) - _special.gammaln(c + a)
    return float((1.0 - 1.0 / N) * u * math.exp(log_prod))


def accumulate_subsample_collision(p, N, n, train, generations) -> np.ndarray:
    """Expected collision ``S_m = E σ_m`` in the accumulate-subsample regime for ``m = 0..G`` (array ``(G+1,)``):
    the pool holds ``N`` real samples plus ``n`` synthetic samples appended per generation, and model ``m`` is
    fitted on ``train`` samples drawn without replacement from the pool of size ``P_m = N + (m-1)n``.

    Exact (E): with ``a_m = E[Σ_i A_i² / P_m²]`` for the pool counts ``A``, ``a_1 = 1/N + (1 - 1/N) S_0`` and
    ``S_m = a_m + c_m (1 - a_m)``, ``c_m = (P_m - train) / (train (P_m - 1))`` (the hypergeometric variance),
    and appending ``Y ~ Mult(n, p^(m))`` gives ``P_{m+1}² a_{m+1} = (P_m² + 2n P_m) a_m + n + n(n-1) S_m``.
    Every step is linear in ``a_m``, so the expectation closes. Without the subsampling term (``c_m = 0``)
    the recursion is the accumulate regime's (``1 - accumulate_diversity``)."""
    p = check_p(p)
    N = check_size("N", N)
    n = check_size("n", n)
    k = check_size("train", train)
    if k > N:
        raise ValueError(f"train must be at most N ({N}), got {k}")
    g = check_generations(generations)
    s0 = float(np.dot(p, p))
    out = np.empty(g + 1)
    out[0] = s0
    a, size = 1.0 / N + (1.0 - 1.0 / N) * s0, float(N)
    for m in range(1, g + 1):
        c = (size - k) / (k * (size - 1.0)) if size > 1 else 0.0
        out[m] = a + c * (1.0 - a)
        a = ((size * size + 2.0 * n * size) * a + n + n * (n - 1.0) * out[m]) / (size + n) ** 2
        size += n
    return out


# ----------------------------------------------------------------------------------------------------------
# missing mass
# ----------------------------------------------------------------------------------------------------------

def missing_mass(p, draws):
    """Expected mass of ``p`` on tokens not seen in ``T`` i.i.d. draws from ``p``, ``E = Σ_i p_i (1-p_i)^T``,
    vectorised over ``draws`` (an int or array of non-negative ints; returns a float or an array of the same
    shape); exact (E), model.md §4 (Good–Turing / Dohmatob et al.)."""
    p = check_p(p)
    t = np.asarray(draws)
    if t.dtype == bool or t.size == 0 or not (np.issubdtype(t.dtype, np.integer) or (
            np.issubdtype(t.dtype, np.floating) and np.all(np.isfinite(t)) and np.all(t == np.round(t)))) \
            or np.any(t < 0):
        raise ConfigError(f"draws must be a non-negative integer or array of them, got {draws!r}")
    tf = t.astype(np.float64)
    out = np.power(1.0 - p, tf[..., None]) @ p
    if np.ndim(draws) == 0 and isinstance(draws, numbers.Number):
        return float(out)
    return out
