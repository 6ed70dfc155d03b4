"""Exact multinomial and multivariate-hypergeometric samplers for batches of categorical rows.

Every sampler draws, for each row ``r`` of an unnormalised non-negative weight table ``w`` of shape
``(rows, vocab)``, the counts of ``size[r]`` i.i.d. draws from ``w[r] / w[r].sum()``. Counts are int64 and
exact for sizes up to 2^53; tokens of zero weight are never drawn. All arithmetic on probabilities is in
float64 (the package runs its kernels with ``jax.enable_x64``).

Two algorithms:

* ``"tokens"``: every draw is a token found by inverse CDF (binary search in the row's float64 cumulative
  weights, 53-bit uniforms) and the tokens are counted by a scatter-add. Cost O(total draws · log vocab).
  Its buffer holds ``capacity`` tokens, a static bound on ``size.sum()``.
* ``"binomial"``: a binary tree of conditional binomial splits (the implicit tree of a segment tree on
  ``vocab`` leaves), ``vocab - 1`` binomials per row whatever the size. Cost O(vocab), independent of the
  sizes; nodes with count 0 (collapsed subtrees) draw nothing. The tree is walked ``K`` nodes at a time in
  one ``fori_loop``, so it compiles once whatever ``vocab``. The binomials (:func:`binomial`, in
  :mod:`jaxcollapse.core.binomial`) are exact: inversion below mean 10, BTRS above, with counter-based
  Threefry uniforms, so a row's counts depend only on its key, weights and size, not on the chains it is
  batched with.

Without replacement (the accumulate-subsample regime): :func:`hypergeometric_subsample` draws ``draws[r]``
items of row ``r``'s pool of int64 item counts ``(rows, vocab)``, by ``"sequential"`` or ``"sort"``
(:func:`choose_subsampler`).

:func:`binomial` and :data:`INVERSION_MAX_MEAN` are re-exported from :mod:`jaxcollapse.core.binomial`,
:func:`threefry2x32` from :mod:`jaxcollapse.core.rng` (whose :func:`~jaxcollapse.core.rng.uniform` gives
``jax.random.uniform``'s values, computed faster).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import rng
from .binomial import (INVERSION_MAX_MEAN, _ZERO, _binomial_flat, _flattening_vmap, _key_words,  # noqa: F401
                       binomial)
from .rng import threefry2x32  # noqa: F401

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


def row_guide(cdf: jax.Array, buckets: int = 4) -> tuple[jax.Array, jax.Array]:
    """A guide for :func:`_row_search` on ``cdf`` ``(rows, V)`` float64 (nondecreasing rows), worth its cost when
    many searches use one table: ``(table, levels)``, ``table`` ``(rows, K + 1)`` int32 the smallest ``v`` with
    ``cdf[r, v] > k * total_r / K`` for ``K = buckets * V`` equal slices of each row's total, and ``levels`` the
    bisection steps that any window of three slices needs (int32 scalar)."""
    rows, vocab = cdf.shape
    k = buckets * vocab
    grid = jnp.arange(k + 1, dtype=cdf.dtype) * (cdf[:, -1:] / k)
    table = jax.vmap(lambda c, g: jnp.searchsorted(c, g, side="right"))(cdf, grid)
    table = jnp.minimum(table, vocab - 1).astype(jnp.int32)
    width = jnp.max(table[:, 3:] - table[:, :-3])
    return table, (32 - lax.clz(width)).astype(jnp.int32)


def _row_search(cdf: jax.Array, row: jax.Array, x: jax.Array, guide=None) -> jax.Array:
    """Smallest ``v`` with ``cdf[row, v] > x`` (per element of ``row``/``x``, ``x`` below the row's total);
    ``cdf`` is ``(rows, V)``; the result has ``row``'s dtype. Bisection over the whole row, or, with ``guide``
    (:func:`row_guide` of ``cdf``), over the window of three guide slices around ``x``: the same result in
    fewer steps (Zipf on 600 tokens: 4 instead of 11)."""
    rows, vocab = cdf.shape
    index = jnp.int32 if rows * vocab < 1 << 31 else jnp.int64
    at = row.astype(index)
    flat = cdf.reshape(-1)
    base = at * vocab
    if guide is None:
        lo, hi = jnp.zeros_like(at), jnp.full_like(at, vocab - 1)
        levels = _levels(vocab) + 1
    else:
        table, levels = guide
        k = table.shape[1] - 1
        total = cdf[:, -1][at]
        # x's slice, up to one off by rounding: the window of its neighbours holds the answer
        i = jnp.clip(jnp.where(total > 0, jnp.floor(x * (k / total)), 0.0), 0, k - 1).astype(index)
        steps = table.reshape(-1)
        lo = steps[at * (k + 1) + jnp.maximum(i - 1, 0)].astype(index)
        hi = steps[at * (k + 1) + jnp.minimum(i + 2, k)].astype(index)

    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) // 2
        go_right = flat[base + mid] <= x
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)

    lo, _ = lax.fori_loop(0, levels, body, (lo, hi))
    return lo.astype(row.dtype)


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
    u = rng.uniform(key, (capacity,))
    t = total[row]
    # u * t can round up to t; the largest float below t keeps the draw on a token of positive weight.
    x = jnp.minimum(u * t, jnp.nextafter(t, jnp.zeros_like(t)))
    tok = _row_search(cdf, row, x)
    flat = jnp.zeros(rows * vocab, jnp.int64).at[row * vocab + tok].add(valid.astype(jnp.int64))
    return flat.reshape(rows, vocab)


# ----------------------------------------------------------------------------------------------------------
# Multinomial counts by a binary tree of binomial splits
# ----------------------------------------------------------------------------------------------------------
#
# The tree is the implicit one of a segment tree on ``V`` leaves: node ``i`` in ``1..V-1`` has children
# ``2i`` and ``2i + 1``, leaf ``V + j`` is token ``j``; every row needs exactly ``V - 1`` binomials. Nodes
# are processed in heap order, ``K`` nodes per step: first the windows ``[2^t, 2^t + K)`` masked to level
# ``t`` (t < log2 K), then the chunks ``[K, 2K), [2K, 3K), ...``, whose parents all lie in earlier steps.
# Every step has the same shapes, so the steps are one ``fori_loop`` and compile once, whatever ``V``.


def _tree_steps(vocab: int, rows: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Window size ``K`` (a power of two) and the start and end (exclusive) of the nodes of each step."""
    width = 1
    while width < vocab:
        width *= 2
    # The top levels' windows are mostly masked nodes (about K log2 K slots per row): K at most V/8. Each step
    # costs a fixed overhead, and a step larger than the caches costs more per slot: about 2^14 slots per
    # step over all rows, and K at least 4. Measured on one core: W2's tree on 8,192 rows took 80 ms per
    # generation with K = 4, 104 with K = 8; W4's on 32 rows 194 ms with K = 512, 217 with K = 1,024 and 214
    # with K = 256; on two cores with 16,384 rows, K = 2 was no faster than 4.
    k = max(2, min(width // 8, max(4, 1 << round(math.log2(max(1, (1 << 14) // rows))))))
    starts, ends = [], []
    t = 1
    while t < k and t < vocab:
        starts.append(t)
        ends.append(min(2 * t, vocab))
        t *= 2
    a = k
    while a < vocab:
        starts.append(a)
        ends.append(min(a + k, vocab))
        a += k
    return k, np.asarray(starts, np.int32), np.asarray(ends, np.int32)


def _tree_core(words, weights, sizes):
    """Counts ``(B, R, V)`` int64 for key words ``(B, 2)``, weights ``(B, R, V)`` and sizes ``(B, R)``."""
    batch, rows, vocab = weights.shape
    e = batch * rows
    n0 = sizes.reshape(e).astype(jnp.int64)
    if vocab == 1:
        return n0.reshape(batch, rows, 1)
    if rows * vocab >= 1 << 32:
        raise ValueError(f"rows x vocab must be below 2^32 for the binomial sampler, got {rows} x {vocab}")
    k, starts, ends = _tree_steps(vocab, e)
    starts, ends = jnp.asarray(starts), jnp.asarray(ends)
    length = 2 * vocab + 2 * k
    # Node-major layout (node, row): a window of nodes is a contiguous block.
    w = jnp.maximum(weights.reshape(e, vocab).astype(jnp.float64), 0.0).T
    tree = jnp.zeros((length, e), jnp.float64).at[vocab:2 * vocab].set(w)
    lane = jnp.arange(k, dtype=jnp.int32)[:, None]

    def up(j, tree):
        a = starts[starts.shape[0] - 1 - j]
        end = ends[starts.shape[0] - 1 - j]
        child = lax.dynamic_slice(tree, (2 * a, _ZERO), (2 * k, e)).reshape(k, 2, e).sum(axis=1)
        cur = lax.dynamic_slice(tree, (a, _ZERO), (k, e))
        return lax.dynamic_update_slice(tree, jnp.where(a + lane < end, child, cur), (a, _ZERO))

    tree = lax.fori_loop(0, starts.shape[0], up, tree)
    k1 = jnp.broadcast_to(jnp.repeat(words[:, 0], rows)[None, :], (k, e)).reshape(-1)
    k2 = jnp.broadcast_to(jnp.repeat(words[:, 1], rows)[None, :], (k, e)).reshape(-1)
    row_base = (jnp.arange(e, dtype=jnp.uint32) % jnp.uint32(rows)) * jnp.uint32(vocab)
    counts = jnp.zeros((length, e), jnp.int64).at[1].set(n0)

    def down(j, counts):
        a, end = starts[j], ends[j]
        valid = a + lane < end
        n = jnp.where(valid, lax.dynamic_slice(counts, (a, _ZERO), (k, e)), 0)
        total = lax.dynamic_slice(tree, (a, _ZERO), (k, e))
        left_w = lax.dynamic_slice(tree, (2 * a, _ZERO), (2 * k, e)).reshape(k, 2, e)[:, 0]
        p = jnp.where(total > 0, left_w / jnp.where(total > 0, total, 1.0), 0.0)
        ids = (row_base[None, :] + (a + lane).astype(jnp.uint32)).reshape(-1)
        left = _binomial_flat(k1, k2, ids, n.reshape(-1), p.reshape(-1)).reshape(k, e)
        # A lane past the step's nodes (count 0) writes zeros to its node's children: they are written again,
        # with their true counts, when that node's own step comes, or they lie in the padding past the leaves.
        # a select on the parity, not a stack: XLA's CPU loop over a concatenation does not vectorize
        even = lax.broadcasted_iota(jnp.int32, (k, 2, e), 1) == 0
        children = jnp.where(even, left[:, None, :], (n - left)[:, None, :]).reshape(2 * k, e)
        return lax.dynamic_update_slice(counts, children, (2 * a, _ZERO))

    counts = lax.fori_loop(0, starts.shape[0], down, counts)
    return counts[vocab:2 * vocab].T.reshape(batch, rows, vocab)


_tree_batched = _flattening_vmap(_tree_core)


def multinomial_binomial(key: jax.Array, weights: jax.Array, sizes: jax.Array) -> jax.Array:
    """Counts ``(rows, vocab)`` int64 by binomial splitting down a binary tree with ``vocab - 1`` nodes.

    Node ``i`` of row ``r`` draws its split from the counters ``(r vocab + i, .)`` of the key's hash, so a
    row's counts depend only on the key, its weights and its size (not on the chunk of chains it runs in).
    Under ``vmap`` the mapped axis joins the batch (one tree walk for all chains). Subtrees with count 0 cost
    no binomial: only the non-trivial nodes (count > 0 and both children of positive weight) are gathered
    into the sampler's blocks.
    """
    rows, vocab = weights.shape
    return _tree_batched(_key_words(key)[None], weights[None], jnp.asarray(sizes, jnp.int64)[None])[0]


def multinomial(key: jax.Array, weights: jax.Array, sizes: jax.Array, *, method: str, capacity: int = 0) -> jax.Array:
    """Exact multinomial counts ``(rows, vocab)`` int64; ``method`` is ``"tokens"`` or ``"binomial"``."""
    sizes = jnp.asarray(sizes, jnp.int64)
    if method == "tokens":
        return multinomial_tokens(key, weights, sizes, capacity)
    if method == "binomial":
        return multinomial_binomial(key, weights, sizes)
    raise ValueError(f"sampler must be one of {SAMPLERS[2:]}, got {method!r}")


SUBSAMPLERS = ("sequential", "sort")


def choose_subsampler(contexts: int, vocab: int, train: int, pool: int) -> str:
    """Pick the subsampling algorithm of the accumulate-subsample regime from static sizes: ``"sequential"``
    costs about ``min(train, pool - train) · vocab`` per row, ``"sort"`` about ``pool · log2(pool)`` and a
    buffer of ``contexts · pool`` items."""
    steps = min(train, max(pool - train, 0))
    sort_cost = 4 * pool * max(1, math.ceil(math.log2(max(pool, 2))))
    if steps * max(vocab, 1) <= sort_cost or contexts * pool > 1 << 28:
        return "sequential"
    return "sort"


def hypergeometric_sequential(key: jax.Array, pool: jax.Array, draws: jax.Array) -> jax.Array:
    """Counts ``(rows, vocab)`` of ``draws[r]`` items drawn without replacement from row ``r``'s pool.

    Args:
      pool: ``(rows, vocab)`` int64 item counts of each row's pool.
      draws: ``(rows,)`` int64, at most the pool's size.

    Items are taken one at a time, each uniformly among the items left (inverse CDF on the integer
    cumulative counts of what is left; the only rounding is the 2^-52 grid of the float64 uniform, a relative
    bias below ``pool / 2^52``). When ``draws[r]`` is more than half the pool, the ``pool - draws`` items left
    out are drawn instead. Step ``t`` uses the uniforms of ``fold_in(key, t)``, so under ``vmap`` a chain's
    counts do not depend on the chains it is batched with; the loop runs ``max_r min(draws[r], pool[r] -
    draws[r])`` steps, each O(vocab) per row.
    """
    pool = jnp.asarray(pool, jnp.int64)
    draws = jnp.asarray(draws, jnp.int64)
    rows, vocab = pool.shape
    cdf = jnp.cumsum(pool, axis=1)
    size = cdf[:, -1]
    complement = 2 * draws > size
    steps = jnp.where(complement, size - draws, draws)
    iota = jnp.arange(vocab, dtype=jnp.int64)

    def body(state):
        t, cdf = state
        u = rng.uniform(rng.fold_in(key, t), (rows,))
        left = size - t
        pos = jnp.minimum(jnp.floor(u * left.astype(jnp.float64)).astype(jnp.int64), left - 1)
        tok = jnp.sum(cdf <= pos[:, None], axis=1)
        take = (iota[None, :] >= tok[:, None]) & (t < steps)[:, None]
        return t + 1, cdf - take.astype(jnp.int64)

    _, cdf = lax.while_loop(lambda s: s[0] < jnp.max(steps, initial=0), body, (jnp.int64(0), cdf))
    left = jnp.diff(cdf, axis=1, prepend=jnp.zeros((rows, 1), jnp.int64))
    return jnp.where(complement[:, None], left, pool - left)


def hypergeometric_sort(key: jax.Array, pool: jax.Array, draws: jax.Array, capacity: int) -> jax.Array:
    """Counts ``(rows, vocab)`` of ``draws[r]`` items drawn without replacement from row ``r``'s pool.

    Args:
      pool: ``(rows, vocab)`` int64 item counts of each row's pool.
      draws: ``(rows,)`` int64, at most the pool's size.
      capacity: static bound on the largest pool size of any row.

    Every pool item gets an independent uniform key; the ``draws[r]`` smallest keys of a row are taken
    (a uniformly random subset), and each taken item is mapped back to its token. Cost O(capacity · log
    capacity) per row whatever ``draws``.
    """
    rows, vocab = pool.shape
    sizes = pool.sum(axis=1)
    slot = jnp.arange(capacity, dtype=jnp.int64)
    row = jnp.repeat(jnp.arange(rows, dtype=jnp.int64), capacity)
    pos = jnp.tile(slot, rows)
    valid = pos < sizes[row]
    u = rng.uniform(key, (rows * capacity,))
    u = jnp.where(valid, u, 2.0)
    _, _, pos_sorted = lax.sort((row, u, pos), num_keys=2)
    rank = jnp.tile(slot, rows)
    take = rank < draws[row]
    cdf = jnp.cumsum(pool, axis=1).astype(jnp.float64)
    tok = _row_search(cdf, row, pos_sorted.astype(jnp.float64))
    flat = jnp.zeros(rows * vocab, jnp.int64).at[row * vocab + tok].add(take.astype(jnp.int64))
    return flat.reshape(rows, vocab)


def hypergeometric_subsample(key: jax.Array, pool: jax.Array, draws: jax.Array, *, method: str,
                             capacity: int = 0) -> jax.Array:
    """Multivariate hypergeometric counts by ``method`` (``"sequential"`` or ``"sort"``, see
    :func:`choose_subsampler`); ``capacity`` bounds the pool size for ``"sort"``."""
    if method == "sequential":
        return hypergeometric_sequential(key, pool, draws)
    if method == "sort":
        return hypergeometric_sort(key, pool, draws, capacity)
    raise ValueError(f"subsampler must be one of {SUBSAMPLERS}, got {method!r}")
