"""Exact multinomial and multivariate-hypergeometric samplers for batches of categorical rows.

Every sampler draws, for each row ``r`` of an unnormalised non-negative weight table ``w`` of shape
``(rows, vocab)``, the counts of ``size[r]`` i.i.d. draws from ``w[r] / w[r].sum()``. Counts are int64 and
exact for sizes up to 2^53; tokens of zero weight are never drawn. All arithmetic on probabilities is in
float64 (the package runs its kernels with ``jax.enable_x64``).

Two algorithms:

* ``"tokens"``: every draw is a token found by inverse CDF (binary search in the row's float64 cumulative
  weights, 53-bit uniforms) and the tokens are counted by a scatter-add. Cost O(total draws · log vocab).
  Its buffer holds ``capacity`` tokens, a static bound on ``size.sum()``.
* ``"binomial"``: a balanced binary tree of conditional binomial splits, ``ceil(log2 vocab)`` levels,
  ``vocab - 1`` binomials per row whatever the size. Cost O(vocab), independent of the sizes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

SAMPLERS = ("auto", "resample", "tokens", "binomial")


def _levels(vocab: int) -> int:
    return max(1, math.ceil(math.log2(vocab))) if vocab > 1 else 0


def choose_sampler(sampler: str, rows: int, vocab: int, capacity: int) -> str:
    """Resolve ``"auto"``: tokens while the draws per row are at most a few times the vocabulary."""
    if sampler != "auto":
        return sampler
    if vocab == 1:
        return "tokens"
    return "tokens" if capacity <= 4 * rows * vocab and capacity <= 1 << 22 else "binomial"


def _row_search(cdf: jax.Array, row: jax.Array, x: jax.Array) -> jax.Array:
    """Smallest ``v`` with ``cdf[row, v] > x`` (per element of ``row``/``x``); ``cdf`` is ``(rows, V)``."""
    vocab = cdf.shape[1]
    flat = cdf.reshape(-1)
    base = row * vocab
    lo = jnp.zeros_like(row)
    hi = jnp.full_like(row, vocab - 1)

    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) // 2
        go_right = flat[base + mid] <= x
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)

    lo, _ = lax.fori_loop(0, _levels(vocab) + 1, body, (lo, hi))
    return lo


def _token_rows(sizes: jax.Array, capacity: int):
    """Row id of each of ``capacity`` token slots (rows filled in order) and whether the slot is used."""
    ends = jnp.cumsum(sizes)
    slot = jnp.arange(capacity, dtype=ends.dtype)
    row = jnp.searchsorted(ends, slot, side="right")
    valid = slot < ends[-1]
    return jnp.minimum(row, sizes.shape[0] - 1), valid


def multinomial_tokens(key: jax.Array, weights: jax.Array, sizes: jax.Array, capacity: int) -> jax.Array:
    """Counts ``(rows, vocab)`` int64 of ``sizes[r]`` draws from each row, by inverse CDF per token.

    Args:
      key: PRNG key.
      weights: ``(rows, vocab)`` non-negative float64 weights; a row of zero weight must have size 0.
      sizes: ``(rows,)`` int64 numbers of draws.
      capacity: static upper bound on ``sizes.sum()``; draws beyond it are silently dropped, so the
        caller guarantees it.
    """
    rows, vocab = weights.shape
    cdf = jnp.cumsum(weights, axis=1)
    total = cdf[:, -1]
    row, valid = _token_rows(sizes, capacity)
    u = jax.random.uniform(key, (capacity,), dtype=jnp.float64)
    t = total[row]
    # u * t can round up to t; the largest float below t keeps the draw on a token of positive weight.
    x = jnp.minimum(u * t, jnp.nextafter(t, jnp.zeros_like(t)))
    tok = _row_search(cdf, row, x)
    flat = jnp.zeros(rows * vocab, jnp.int64).at[row * vocab + tok].add(valid.astype(jnp.int64))
    return flat.reshape(rows, vocab)


def _binomial(key, n, p):
    """Exact Binomial(n, p) in float64 with the degenerate cases p in {0, 1} and n = 0 made exact."""
    safe_p = jnp.clip(p, 0.0, 1.0)
    draw = jax.random.binomial(key, n, jnp.where((safe_p > 0) & (safe_p < 1), safe_p, 0.5))
    return jnp.where(safe_p >= 1, n, jnp.where((safe_p <= 0) | (n <= 0), 0.0, draw))


def multinomial_binomial(key: jax.Array, weights: jax.Array, sizes: jax.Array) -> jax.Array:
    """Counts ``(rows, vocab)`` int64 by binomial splitting down a balanced tree of ``ceil(log2 vocab)`` levels."""
    rows, vocab = weights.shape
    levels = _levels(vocab)
    width = 1 << levels
    w = jnp.pad(weights, ((0, 0), (0, width - vocab)))
    pyramid = [w]
    for _ in range(levels):
        pyramid.append(pyramid[-1].reshape(rows, -1, 2).sum(axis=2))
    counts = sizes.astype(jnp.float64)[:, None]
    for level, k in zip(range(levels - 1, -1, -1), jax.random.split(key, max(levels, 1))):
        children = pyramid[level].reshape(rows, -1, 2)
        parent = children.sum(axis=2)
        p_left = jnp.where(parent > 0, children[..., 0] / jnp.where(parent > 0, parent, 1.0), 0.0)
        left = _binomial(k, counts, p_left)
        counts = jnp.stack([left, counts - left], axis=2).reshape(rows, -1)
    return counts[:, :vocab].astype(jnp.int64)


def multinomial(key: jax.Array, weights: jax.Array, sizes: jax.Array, *, method: str, capacity: int = 0) -> jax.Array:
    """Exact multinomial counts ``(rows, vocab)`` int64; ``method`` is ``"tokens"`` or ``"binomial"``."""
    sizes = jnp.asarray(sizes, jnp.int64)
    if method == "tokens":
        return multinomial_tokens(key, weights, sizes, capacity)
    if method == "binomial":
        return multinomial_binomial(key, weights, sizes)
    raise ValueError(f"sampler must be one of {SAMPLERS[2:]}, got {method!r}")


def hypergeometric_subsample(key: jax.Array, pool: jax.Array, draws: jax.Array, capacity: int) -> jax.Array:
    """Counts ``(rows, vocab)`` of ``draws[r]`` items drawn without replacement from row ``r``'s pool.

    Args:
      pool: ``(rows, vocab)`` int64 item counts of each row's pool.
      draws: ``(rows,)`` int64, at most the pool's size.
      capacity: static bound on the largest pool size of any row.

    Every pool item gets an independent uniform key; the ``draws[r]`` smallest keys of a row are taken
    (a uniformly random subset), and each taken item is mapped back to its token.
    """
    rows, vocab = pool.shape
    sizes = pool.sum(axis=1)
    slot = jnp.arange(capacity, dtype=jnp.int64)
    row = jnp.repeat(jnp.arange(rows, dtype=jnp.int64), capacity)
    pos = jnp.tile(slot, rows)
    valid = pos < sizes[row]
    u = jax.random.uniform(key, (rows * capacity,), dtype=jnp.float64)
    u = jnp.where(valid, u, 2.0)
    _, _, pos_sorted = lax.sort((row, u, pos), num_keys=2)
    rank = jnp.tile(slot, rows)
    take = rank < draws[row]
    cdf = jnp.cumsum(pool, axis=1).astype(jnp.float64)
    tok = _row_search(cdf, row, pos_sorted.astype(jnp.float64))
    flat = jnp.zeros(rows * vocab, jnp.int64).at[row * vocab + tok].add(take.astype(jnp.int64))
    return flat.reshape(rows, vocab)
