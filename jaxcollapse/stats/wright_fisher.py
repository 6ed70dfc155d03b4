"""The exact Wright–Fisher computations of the fully synthetic chain: per-token survival, expected support,
P(collapsed by m) and the exact expected collapse time (model.md §4; arXiv 2404.05090 §3.1).

In the fully synthetic regime, ``p^(m) = Mult(n, p^(m-1))/n``, the count ``X_m`` of one token is a two-type
neutral Wright–Fisher chain on ``{0..n}``: ``X_1 ~ Binom(n, p_i)`` and ``P[j, k] = Binom(k; n, j/n)``. Every
function here propagates that distribution by the (n+1)x(n+1) binomial matrix in NumPy float64 (``n <=
MAX_WRIGHT_FISHER_N``; the cost is ``O(G k n²)`` for ``k`` distinct token probabilities). Trajectories are
arrays of shape ``(G+1,)`` indexed by generation ``m = 0..G``, generation 0 being ``p`` itself; times are in
generations. :mod:`jaxcollapse.theory` re-exports every public name.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import linalg as _linalg
from scipy import stats as _stats

from ..errors import ConfigError
from .checks import (MAX_WRIGHT_FISHER_N, check_generations, check_p, check_prob, check_wf_n, is_dirac)

__all__ = ["MAX_WRIGHT_FISHER_N", "alive_probability", "expected_alive", "collapsed_probability",
           "alive_and_collapsed", "expected_collapse_time"]

_CACHE_MAX_N = 1000


#: Probabilities below this are set to 0 in the Wright–Fisher propagation: subnormal numbers make the
#: matrix products orders of magnitude slower, and mass this small cannot change any reported digit.
_TINY = 1e-280


def _wf_matrix(n: int) -> np.ndarray:
    """Read-only (n+1)x(n+1) two-type Wright–Fisher matrix ``P[j, k] = Binom(k; n, j/n)`` (cached for
    ``n <= 1000``; larger ones, up to 200 MB, are rebuilt on each call rather than kept alive)."""
    return _wf_matrix_cached(n) if n <= _CACHE_MAX_N else _build_wf_matrix(n)


@functools.lru_cache(maxsize=8)
def _wf_matrix_cached(n: int) -> np.ndarray:
    return _build_wf_matrix(n)


def _build_wf_matrix(n: int) -> np.ndarray:
    j = np.arange(n + 1, dtype=np.float64)
    mat = _stats.binom.pmf(j[None, :], n, j[:, None] / n)
    mat[mat < _TINY] = 0.0
    mat = np.ascontiguousarray(mat, dtype=np.float64)
    mat.setflags(write=False)
    return mat


def _wf_marginals(values: np.ndarray, n: int, generations: int) -> tuple[np.ndarray, np.ndarray]:
    """For token probabilities ``values`` (shape ``(k,)``), return ``(alive, fixed)``, each ``(G+1, k)``:
    ``P(X_m > 0)`` and ``P(X_m = n)`` for the token's count ``X_m`` (``m >= 1``); row 0 is the start
    ``(p_i > 0, p_i == 1)``.  The count distribution is propagated row-vector by matrix, ``O(G k n²)``."""
    k = values.size
    alive = np.empty((generations + 1, k))
    fixed = np.empty((generations + 1, k))
    alive[0] = values > 0
    fixed[0] = values == 1.0
    if generations == 0:
        return alive, fixed
    counts = np.arange(n + 1, dtype=np.float64)
    dist = _stats.binom.pmf(counts[None, :], n, values[:, None])      # (k, n+1): X_1 ~ Binom(n, p_i)
    mat = _wf_matrix(n)
    for m in range(1, generations + 1):
        if m > 1:
            dist = dist @ mat
            dist[dist < _TINY] = 0.0
        alive[m] = dist[:, 1:].sum(axis=1)                               # sum, not 1 - P(0): keeps tiny tails
        fixed[m] = dist[:, n]
    np.clip(alive, 0.0, 1.0, out=alive)
    np.clip(fixed, 0.0, 1.0, out=fixed)
    return alive, fixed


def alive_probability(p_i, n, generations) -> np.ndarray:
    """Exact probability that a token of initial probability ``p_i`` (a float in [0, 1]) still has a
    positive count at generation ``m`` of the fully synthetic chain, for ``m = 0..G`` (array ``(G+1,)``;
    1 at ``m = 0`` if ``p_i > 0`` else 0).  The token's count is the two-type Wright–Fisher chain on
    ``{0..n}`` with ``X_1 ~ Binom(n, p_i)`` and ``P[j, k] = Binom(k; n, j/n)``; its distribution is
    propagated by the (n+1)x(n+1) matrix (``n <= 5000``), giving ``P(alive at m) = P(X_m > 0)``; exact (E),
    model.md §4 (Wright–Fisher, cf. arXiv 2404.05090 §3.1); it tends to ``p_i`` as ``m → ∞``."""
    value = check_prob("p_i", p_i)
    n = check_wf_n(n)
    g = check_generations(generations)
    alive, _ = _wf_marginals(np.array([value]), n, g)
    return alive[:, 0].copy()


def _grouped(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, mult = np.unique(p, return_counts=True)
    return values, mult.astype(np.float64)


def expected_alive(p, n, generations) -> np.ndarray:
    """Expected number of tokens with positive count (support size) of the fully synthetic chain,
    ``E[#alive at m] = Σ_i P(X_{i,m} > 0)`` for ``m = 0..G`` (array ``(G+1,)``, the support size of ``p`` at
    ``m = 0``), each term from ``alive_probability`` (identical ``p_i`` grouped, ``n <= 5000``); exact (E),
    model.md §4; it decreases to 1."""
    p = check_p(p)
    n = check_wf_n(n)
    g = check_generations(generations)
    values, mult = _grouped(p)
    alive, _ = _wf_marginals(values, n, g)
    return alive @ mult


def collapsed_probability(p, n, generations) -> np.ndarray:
    """Exact probability that the fully synthetic chain has totally collapsed (``p^(m)`` is a Dirac mass,
    model.md Definition 1) by generation ``m``, for ``m = 0..G`` (array ``(G+1,)``).  Since collapse is
    absorbing and, for ``m >= 1``, at most one token can hold all ``n`` samples, ``P(T <= m) =
    Σ_i P(X_{i,m} = n)`` with ``X_{i,m}`` token ``i``'s two-type Wright–Fisher count, propagated by the
    (n+1)x(n+1) binomial matrix (``n <= 5000``); at ``m = 0`` it is 1 if ``p`` is a Dirac mass else 0.  Exact
    (E); it is the quantity bounded by paper Theorem 1 (arXiv 2404.05090 §3.1) and tends to 1."""
    return alive_and_collapsed(p, n, generations)[1]


def alive_and_collapsed(p, n, generations) -> tuple[np.ndarray, np.ndarray]:
    """``(expected_alive(p, n, G), collapsed_probability(p, n, G))``, each float64 ``(G+1,)``, from one
    propagation of the Wright–Fisher counts (half the cost of calling both); exact (E), model.md §4."""
    p = check_p(p)
    n = check_wf_n(n)
    g = check_generations(generations)
    values, mult = _grouped(p)
    alive, fixed = _wf_marginals(values, n, g)
    out = fixed @ mult
    out[0] = 1.0 if is_dirac(p) else 0.0
    return alive @ mult, np.clip(out, 0.0, 1.0)


def expected_collapse_time(p, n, max_generations=None, *, method: str = "solve") -> float:
    """Exact expected collapse time ``E[T] = Σ_{m>=0} P(T > m)`` of the fully synthetic chain, a float
    (0 if ``p`` is a Dirac mass; ``n <= 5000``).  With ``P(T > m) = Σ_i (p_i - P(X_{i,m} = n))`` (Proposition
    1 and ``collapsed_probability``), ``method="solve"`` (default) sums the series in closed form: with
    ``g = (I - Q)^{-1} (x/n)_{x=1..n-1}`` (``Q`` the transient block of the Wright–Fisher matrix, ``g(x) =
    Σ_m (x/n - P_x(X_m = n))``), ``E[T] = Σ_i [p_i - 1(p_i = 1) + E g(Binom(n, p_i))]``, one dense solve of
    size ``n-1``.  ``method="sum"`` sums ``1 - collapsed_probability`` over ``m = 0..G`` with ``G`` chosen so
    that the remaining tail, bounded by ``n² u (1-1/n)^{G+1}`` (``u = 1 - Σ p_i²``), is below 1e-12, and
    raises ConfigError (a ValueError) naming ``max_generations`` (default 10^6) if ``G`` would exceed it
    (``G ≈ n ln(1e12 n² u)``, so ``"sum"`` is only practical for ``n`` up to a few hundred); the two agree to
    ~1e-9 relative.  Exact (E), the quantity bounded by paper Theorem 1 (arXiv 2404.05090
    §3.1), approximated by ``littler_collapse_time``."""
    p = check_p(p)
    n = check_wf_n(n)
    if method not in ("solve", "sum"):
        raise ConfigError(f"method must be 'solve' or 'sum', got {method!r}")
    max_g = 10**6 if max_generations is None else check_generations(max_generations, "max_generations")
    if is_dirac(p):
        return 0.0
    if method == "solve":
        values, mult = _grouped(p)
        if n == 1:
            return float(np.sum(p))                                       # one sample: T = 1 surely
        mat = _wf_matrix(n)
        x = np.arange(1, n, dtype=np.float64)
        a = np.eye(n - 1) - mat[1:n, 1:n]
        g = _linalg.solve(a, x / n, check_finite=False)
        first = _stats.binom.pmf(x[None, :], n, values[:, None])          # P(X_1 = x), x = 1..n-1
        per_value = values - (values == 1.0) + first @ g
        return float(per_value @ mult)
    u = 1.0 - float(np.dot(p, p))
    if n == 1:
        g_needed = 1
    else:
        # smallest G with n² u (1-1/n)^(G+1) < 1e-12
        g_needed = max(1, int(math.ceil(math.log(1e-12 / (n * n * u)) / math.log1p(-1.0 / n))))
    if g_needed > max_g:
        raise ConfigError(f"max_generations must be >= {g_needed} to sum E[T] to 1e-12 for n={n}, "
                          f"got {max_g}")
    prob = collapsed_probability(p, n, g_needed)
    return float(np.sum(1.0 - prob))
