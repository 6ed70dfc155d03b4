"""Per-generation measurements of a model ``p^(m)`` against the truth ``p^(0)`` and the first fit ``p^(1)``.

All functions act on one chain's ``(contexts, vocab)`` table and return ``(contexts,)`` values; the
engine averages them over contexts with the context weights. Sums are XLA reductions, whose summation order
may depend on the batch shape: a metric can differ in its last bits between chunk sizes, while the models
themselves (the trajectory) are bit-identical.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

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


def per_context(p: jnp.ndarray, p0: jnp.ndarray, p1: jnp.ndarray, log_p: jnp.ndarray | None = None) -> dict:
    """Every metric of ``METRICS`` for ``p``, ``p0``, ``p1`` of shape ``(contexts, vocab)``; each ``(contexts,)``.

    ``log_p``, if given, is ``log p`` where ``p > 0`` (any finite value elsewhere): a caller holding integer
    counts can look it up instead of evaluating a logarithm per cell, the dominant cost of this function.

    One pass over the table computes every sum (a variadic reduction); ``log p0`` is evaluated once, outside
    any batch over chains, and KL is ``sum p0 log p0 - sum p0 log p`` with both sums taken in the same order
    (so it is exactly 0 for ``p = p0``)."""
    alive = p > 0
    log_p = jnp.log(jnp.where(alive, p, 1.0)) if log_p is None else jnp.where(alive, log_p, 0.0)
    pos0 = p0 > 0
    p0_log_p0 = lax.optimization_barrier(jnp.where(pos0, p0 * jnp.log(jnp.where(pos0, p0, 1.0)), 0.0))
    zero = jnp.zeros((), p.dtype)
    sums = (p * p, jnp.abs(p - p0), jnp.abs(p - p1), p * log_p, alive.astype(p.dtype),
            jnp.where(alive, zero, p0), p0_log_p0, jnp.where(pos0, p0 * log_p, zero),
            (pos0 & ~alive).astype(p.dtype))
    maxima = (p,)
    k = len(sums)

    def combine(a, b):
        return tuple(a[i] + b[i] for i in range(k)) + tuple(jnp.maximum(a[i], b[i]) for i in range(k, len(a)))

    init = (zero,) * k + (jnp.array(-jnp.inf, p.dtype),)
    shape = jnp.broadcast_shapes(p.shape, p0.shape, p1.shape)
    operands = tuple(jnp.broadcast_to(x, shape) for x in sums + maxima)
    (collision, l1_0, l1_1, neg_entropy, support, missing, h, cross, lost,
     max_prob) = lax.reduce(operands, init, combine, (p.ndim - 1,))
    return {
        "collision": collision,
        "max_prob": max_prob,
        "l1_initial": l1_0,
        "l1_first": l1_1,
        "entropy": -neg_entropy,
        "support": support,
        "missing_mass": missing,
        "kl": jnp.where(lost > 0, jnp.inf, jnp.maximum(h - cross, 0.0)),
    }


def weighted(values: dict, weights: jnp.ndarray) -> dict:
    """Context-weighted averages of per-context metric values; an infinite KL in any weighted context stays inf."""
    out = {}
    for name, v in values.items():
        out[name] = jnp.sum(jnp.where(weights > 0, weights * v, 0.0))
    return out


def record_collapse(state, dirac, token, weights):
    """``state`` with its collapse records updated at generation ``state.generation``.

    ``dirac``: ``(C,)`` bool, which contexts are a Dirac mass now; ``token``: ``(C,)`` int32, the token each such
    context sits on; ``weights``: ``(C,)`` context weights (a context of weight 0 does not hold the chain back).
    A context's first Dirac generation and token are kept (``-1`` until then), and the chain's first generation
    at which every weighted context is a Dirac mass."""
    new = dirac & (state.collapse_time < 0)
    whole = jnp.all(dirac | (weights <= 0)) & (state.chain_collapse < 0)
    return state._replace(
        collapse_time=jnp.where(new, state.generation, state.collapse_time),
        collapse_token=jnp.where(new, token, state.collapse_token),
        chain_collapse=jnp.where(whole, state.generation, state.chain_collapse))
