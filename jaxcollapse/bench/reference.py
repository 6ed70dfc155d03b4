"""The reference implementations the engine is compared with: what a researcher would otherwise write.

Everything here is plain NumPy (float64) or plain ``jax.random`` / ``jax.numpy``, independent of the engine,
so the benchmark and the tests check the engine against the same code:

* :func:`np_metrics` / :func:`metrics_dict`: the 8 metrics of :data:`METRIC_ORDER` in vectorised NumPy.
* :func:`numpy_multinomial`: reference (a), ``Generator.multinomial(n, pvals_2d)`` for all chains at once in
  a Python loop over generations.
* :func:`numpy_per_chain`: reference (b), per chain and generation ``rng.choice`` + ``np.bincount``.
* :func:`make_jax_multinomial`: reference (c), ``jax.random.multinomial`` under ``jit`` + ``vmap`` in a
  ``lax.scan``, float64; :func:`check_jax_multinomial` checks its counts for exactness.
* :func:`np_decode`: temperature, top-k and top-p decoding of one row.

Shapes: ``V`` vocabulary, ``C`` chains, ``G`` generations; traces are ``(C, G + 1, 8)`` float64 with
generation 0 the truth ``p0``. The recursion is fully synthetic (``p^(m) = counts / n``) or, with
``real = N``, partially synthetic: ``p^(1)`` fits ``N`` real samples that are reused, ``p^(m) = (real +
counts) / (N + n)``. JAX is imported only inside the functions that use it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: The metrics every implementation records, in this order (as :data:`jaxcollapse.METRICS`).
METRIC_ORDER = ("collision", "max_prob", "l1_initial", "l1_first", "entropy", "support", "missing_mass", "kl")
#: Exponent of the Zipf truth of the benchmark's workloads.
ZIPF_EXPONENT = 1.1


def zipf_probs(vocab: int, exponent: float = ZIPF_EXPONENT) -> np.ndarray:
    """``p^(0)`` ``(vocab,)`` float64: Zipf over the whole vocabulary, as ``jaxcollapse.zipf(vocab, 1.1)``."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    return p / p.sum()


def _log_truth(p0: np.ndarray) -> np.ndarray:
    """``log p0`` where ``p0 > 0``, else 0 (float64, ``p0``'s shape)."""
    return np.log(np.where(p0 > 0, p0, 1.0))


# ----------------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------------

def np_metrics(p: np.ndarray, p0: np.ndarray, p1: np.ndarray | None, out: np.ndarray, logp0: np.ndarray) -> None:
    """The 8 metrics of ``p`` into ``out``, in :data:`METRIC_ORDER`.

    Args:
      p: ``(..., V)`` float64 probabilities (the model of each chain / context).
      p0: the truth, broadcastable to ``p``; ``logp0`` its log where positive (else 0), same shape.
      p1: the first generation's model, broadcastable to ``p``, or None (``l1_first`` is then NaN).
      out: ``(..., 8)`` float64, written in place. ``support`` is a count stored as float; ``kl`` is
        ``KL(p0 || p)`` in nats, ``inf`` once a token of positive ``p0`` is lost; ``entropy`` is in nats.
    """
    alive = p > 0
    logp = np.log(p, where=alive, out=np.zeros(p.shape))
    out[..., 0] = (p * p).sum(-1)
    out[..., 1] = p.max(-1)
    out[..., 2] = np.abs(p - p0).sum(-1)
    out[..., 3] = np.nan if p1 is None else np.abs(p - p1).sum(-1)
    out[..., 4] = -(p * logp).sum(-1)
    out[..., 5] = alive.sum(-1)
    out[..., 6] = np.where(alive, 0.0, p0).sum(-1)
    pos = p0 > 0
    kl = np.where(pos, p0 * (logp0 - logp), 0.0).sum(-1)
    out[..., 7] = np.where((pos & ~alive).any(-1), np.inf, kl)


def metrics_dict(p: np.ndarray, p0: np.ndarray, p1: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The 8 metrics of ``p`` ``(..., V)`` as ``{name: (...,) float64}`` (see :func:`np_metrics`); ``p0`` and
    ``p1`` broadcast against ``p``."""
    p = np.asarray(p, np.float64)
    p0 = np.asarray(p0, np.float64)
    out = np.empty(p.shape[:-1] + (len(METRIC_ORDER),))
    np_metrics(p, p0, None if p1 is None else np.asarray(p1, np.float64), out, _log_truth(p0))
    return {name: out[..., i] for i, name in enumerate(METRIC_ORDER)}


def jnp_metrics(p, p0, p1, logp0):
    """:func:`np_metrics` in ``jax.numpy`` for reference (c): ``p``, ``p1`` ``(C, V)``, ``p0``, ``logp0``
    ``(V,)`` -> ``(C, 8)`` (``p1`` all NaN gives a NaN ``l1_first``)."""
    import jax.numpy as jnp
    alive = p > 0
    logp = jnp.log(jnp.where(alive, p, 1.0))
    pos = p0 > 0
    kl = jnp.sum(jnp.where(pos, p0 * (logp0 - logp), 0.0), -1)
    return jnp.stack([
        jnp.sum(p * p, -1), jnp.max(p, -1), jnp.sum(jnp.abs(p - p0), -1), jnp.sum(jnp.abs(p - p1), -1),
        -jnp.sum(jnp.where(alive, p * logp, 0.0), -1), jnp.sum(alive, -1).astype(p.dtype),
        jnp.sum(jnp.where(alive, 0.0, p0), -1), jnp.where(jnp.any(pos & ~alive, -1), jnp.inf, kl)], -1)


# ----------------------------------------------------------------------------------------------------------
# the recursion: references (a), (b), (c)
# ----------------------------------------------------------------------------------------------------------

def numpy_multinomial(p0: np.ndarray, n: int, chains: int, gens: int, seed: int, *,
                      real: int | None = None) -> np.ndarray:
    """Reference (a): traces ``(chains, gens + 1, 8)`` from truth ``p0`` ``(V,)`` with ``n`` synthetic samples
    per generation (``real = N`` reused real samples if given); one ``rng.multinomial(n, pvals_2d)`` for all
    chains per generation, ``rng = np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    logp0 = _log_truth(p0)
    out = np.empty((chains, gens + 1, len(METRIC_ORDER)))
    start = np.broadcast_to(p0, (chains, p0.size))
    np_metrics(start, p0, None, out[:, 0], logp0)
    if real is not None:
        counts_real = rng.multinomial(real, start)
        p = counts_real / real
        total = real + n
    else:
        p = rng.multinomial(n, start) / n
    p1 = p
    np_metrics(p, p0, p1, out[:, 1], logp0)
    for g in range(2, gens + 1):
        counts = rng.multinomial(n, p)
        p = (counts_real + counts) / total if real is not None else counts / n
        np_metrics(p, p0, p1, out[:, g], logp0)
    return out


def numpy_per_chain(p0: np.ndarray, n: int, chains: int, gens: int, seed: int, *,
                    real: int | None = None) -> np.ndarray:
    """Reference (b): traces ``(chains, gens + 1, 8)`` as :func:`numpy_multinomial`, chain after chain, each
    generation by ``rng.choice(V, size=n, p=p)`` + ``np.bincount(minlength=V)``."""
    rng = np.random.default_rng(seed)
    vocab = p0.size
    logp0 = _log_truth(p0)
    out = np.empty((chains, gens + 1, len(METRIC_ORDER)))
    for c in range(chains):
        row = out[c]
        np_metrics(p0, p0, None, row[0], logp0)
        if real is not None:
            counts_real = np.bincount(rng.choice(vocab, size=real, p=p0), minlength=vocab)
            p = counts_real / real
            total = real + n
        else:
            p = np.bincount(rng.choice(vocab, size=n, p=p0), minlength=vocab) / n
        p1 = p
        np_metrics(p, p0, p1, row[1], logp0)
        for g in range(2, gens + 1):
            counts = np.bincount(rng.choice(vocab, size=n, p=p), minlength=vocab)
            p = (counts_real + counts) / total if real is not None else counts / n
            np_metrics(p, p0, p1, row[g], logp0)
    return out


def make_jax_multinomial(p0: np.ndarray, n: int, chains: int, gens: int, *, real: int | None = None) -> Callable:
    """Reference (c): a jitted ``run(key) -> traces (chains, gens + 1, 8)`` of the recursion of
    :func:`numpy_multinomial` with ``jax.random.multinomial`` (``vmap`` over chains, ``lax.scan`` over
    generations); call it under ``jax.enable_x64``."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    vocab, nf = p0.size, float(n)
    p0_np = np.asarray(p0, np.float64)

    def draw(keys, size, p):
        return jax.vmap(lambda k, q: jax.random.multinomial(k, size, q))(keys, p)

    @jax.jit
    def run(key):
        p0 = jnp.asarray(p0_np)
        logp0 = jnp.log(jnp.where(p0 > 0, p0, 1.0))
        start = jnp.broadcast_to(p0, (chains, vocab))
        k_first, k_rest = jax.random.split(key)
        first_keys = jax.random.split(k_first, chains)
        if real is not None:
            counts_real = draw(first_keys, float(real), start)
            p1 = counts_real / real
        else:
            p1 = draw(first_keys, nf, start) / nf
        m0 = jnp_metrics(start, p0, jnp.full_like(start, jnp.nan), logp0)
        m1 = jnp_metrics(p1, p0, p1, logp0)

        def body(p, k):
            counts = draw(jax.random.split(k, chains), nf, p)
            p = (counts_real + counts) / (real + nf) if real is not None else counts / nf
            return p, jnp_metrics(p, p0, p1, logp0)

        _, rest = lax.scan(body, p1, jax.random.split(k_rest, gens - 1))
        return jnp.concatenate([m0[:, None], m1[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)

    return run


def check_counts(counts: np.ndarray, p0: np.ndarray, n: int) -> dict:
    """Check multinomial counts ``(chains, V)`` of ``n`` draws from ``p0`` ``(V,)``: integral, non-negative,
    every row summing exactly to ``n``; calibration: mean over tokens with ``n p_i >= 100`` of ``z_i^2``,
    ``z_i`` the standardised mean count over chains (about 1; ``exact`` needs it below 1 + 6 s.d.)."""
    chains = counts.shape[0]
    integral = bool(np.all(counts == np.round(counts)))
    nonneg = bool(np.all(counts >= 0))
    sums = counts.sum(axis=1)
    exact_sum = bool(np.all(sums == n))
    mean_n = n * p0
    use = mean_n >= 100
    z = (counts[:, use].mean(0) - mean_n[use]) / np.sqrt(mean_n[use] * (1 - p0[use]) / chains)
    z2 = float(np.mean(z ** 2)) if use.any() else float("nan")
    ok = integral and nonneg and exact_sum and (not use.any() or z2 < 1 + 6 * math.sqrt(2 / use.sum()))
    return {"chains": chains, "n": n, "dtype": str(counts.dtype), "integral": integral, "non_negative": nonneg,
            "rows_sum_to_n": exact_sum, "max_abs_sum_error": float(np.max(np.abs(sums - n))),
            "z2_mean": z2, "z2_tokens": int(use.sum()), "exact": ok}


def check_jax_multinomial(p0: np.ndarray, n: int, chains: int, seed: int) -> dict:
    """:func:`check_counts` of ``chains`` rows of ``n`` samples from ``p0`` ``(V,)`` drawn with
    ``jax.random.multinomial`` (float64)."""
    import jax
    import jax.numpy as jnp
    with jax.enable_x64(True):
        f = jax.jit(lambda k: jax.vmap(lambda kk: jax.random.multinomial(kk, float(n), jnp.asarray(p0)))(
            jax.random.split(k, chains)))
        counts = np.asarray(f(jax.random.key(seed)))
    return check_counts(counts, p0, n)


def check_engine_multinomial(p0: np.ndarray, n: int, chains: int, seed: int) -> dict:
    """:func:`check_counts` of the engine's binomial-tree sampler (``samplers.multinomial``, the sampler of the
    large-sample workloads) drawing ``chains`` rows of ``n`` samples from ``p0`` ``(V,)``, with its time."""
    import time

    import jax
    import jax.numpy as jnp

    from ..core import samplers
    with jax.enable_x64(True):
        w = jnp.broadcast_to(jnp.asarray(p0, jnp.float64), (chains, p0.size))
        f = jax.jit(lambda k: samplers.multinomial(k, w, jnp.full(chains, n, jnp.int64), method="binomial"))
        np.asarray(f(jax.random.key(seed + 1)))
        t = time.perf_counter()
        counts = np.asarray(f(jax.random.key(seed)))
        seconds = time.perf_counter() - t
    return dict(check_counts(counts, p0, n), vocab=int(p0.size), seconds=seconds)


# ----------------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------------

def np_decode(p: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
              top_p: float | None = None) -> np.ndarray:
    """Sampling weights ``(V,)`` float64 (unnormalised) of one row ``p`` ``(V,)`` after temperature
    (``p^(1/T)`` on the positive tokens), top-k (the ``top_k`` largest, ties in token order) and top-p (the
    largest tokens whose mass before them is below ``top_p`` of the total after top-k)."""
    vocab = p.size
    ref = np.where(p > 0, p ** (1 / temperature), 0)
    order = np.argsort(-ref, kind="stable")
    keep = np.zeros(vocab, bool)
    keep[order[:top_k or vocab]] = True
    ref = np.where(keep, ref, 0)
    if top_p is not None:
        srt = ref[order]
        before = np.cumsum(srt) - srt
        keep2 = np.zeros(vocab, bool)
        keep2[order[before < top_p * srt.sum()]] = True
        ref = np.where(keep2, ref, 0)
    return ref
