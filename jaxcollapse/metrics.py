"""Per-generation measurements of a model ``p^(m)`` against the truth ``p^(0)`` and the first fit ``p^(1)``.

All functions act on one chain's ``(contexts, vocab)`` table and return ``(contexts,)`` values; the
engine averages them over contexts with the context weights. Sums are XLA reductions, whose summation order
may depend on the batch shape: a metric can differ in its last bits between chunk sizes, while the models
themselves (the trajectory) are bit-identical.
"""

from __future__ import annotations

import jax.numpy as jnp

#: Metric names, in the order the engine reports them, with their units.
METRICS = {
    "collision": "sum_i p_i^2 (probability that two draws agree)",
    "max_prob": "max_i p_i",
    "l1_initial": "sum_i |p_i - p0_i| (= 2 x total variation) to the initial distribution",
    "l1_first": "sum_i |p_i - p1_i| to the first-generation model; NaN at generation 0",
    "entropy": "-sum_i p_i ln p_i, nats",
    "support": "number of tokens with p_i > 0",
    "missing_mass": "initial probability of the tokens with p_i = 0",
    "kl": "KL(p0 || p) in nats; +inf once a token of p0 is lost",
}


def per_context(p: jnp.ndarray, p0: jnp.ndarray, p1: jnp.ndarray) -> dict:
    """Every metric of ``METRICS`` for ``p``, ``p0``, ``p1`` of shape ``(contexts, vocab)``; each ``(contexts,)``."""
    alive = p > 0
    safe = jnp.where(alive, p, 1.0)
    lost = (p0 > 0) & ~alive
    kl_terms = jnp.where(p0 > 0, p0 * (jnp.log(jnp.where(p0 > 0, p0, 1.0)) - jnp.log(safe)), 0.0)
    kl = jnp.where(lost.any(axis=1), jnp.inf, jnp.sum(kl_terms, axis=1))
    return {
        "collision": jnp.sum(p * p, axis=1),
        "max_prob": jnp.max(p, axis=1),
        "l1_initial": jnp.sum(jnp.abs(p - p0), axis=1),
        "l1_first": jnp.sum(jnp.abs(p - p1), axis=1),
        "entropy": -jnp.sum(jnp.where(alive, p * jnp.log(safe), 0.0), axis=1),
        "support": jnp.sum(alive, axis=1).astype(p.dtype),
        "missing_mass": jnp.sum(jnp.where(alive, 0.0, p0), axis=1),
        "kl": kl,
    }


def weighted(values: dict, weights: jnp.ndarray) -> dict:
    """Context-weighted averages of per-context metric values; an infinite KL in any weighted context stays inf."""
    out = {}
    for name, v in values.items():
        out[name] = jnp.sum(jnp.where(weights > 0, weights * v, 0.0))
    return out
