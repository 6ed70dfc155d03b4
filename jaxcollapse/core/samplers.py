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
  one ``fori_loop``, so it compiles once whatever ``vocab``. The binomials (:func:`binomial`) are exact:
  inversion below mean 10, BTRS above, with counter-based Threefry uniforms, so a row's counts depend only on
  its key, weights and size, not on the chains it is batched with.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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


# ----------------------------------------------------------------------------------------------------------
# Exact binomial variates for batches
# ----------------------------------------------------------------------------------------------------------
#
# Random numbers are counter based: the uniforms of an element are Threefry-2x32 hashes of (element id,
# stream word) under the element's key words, so every element's variate depends only on its own key, id,
# ``n`` and ``p``, never on which other elements share the batch, on the block they are processed in or on
# how many rounds the others needed.

#: Elements with ``n * min(p, 1 - p)`` below this are drawn by inversion, the others by BTRS.
INVERSION_MAX_MEAN = 10.0
#: Elements per sub-block of the binomial sampler's first pass over its list of non-trivial elements, and
#: of the later passes (about a fifth of the elements, those the squeeze of BTRS did not accept, then fewer).
SUB = 1 << 12
SUB_SMALL = 1 << 9
_ZERO = np.int32(0)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
# log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2], k = 0..9 (the Stirling-series tail of BTRS).
_STIRLING_TAIL = (0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
                  0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
                  0.00925546218271273, 0.00833056343336287)


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (the hash of ``jax.random``'s default generator), unrolled so that XLA
    fuses it. All arguments uint32, broadcast against each other; returns two uint32 arrays."""
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1 = x1 + ks[0]
    x2 = x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << jnp.uint32(r)) | (x2 >> jnp.uint32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def _uniform(k1, k2, ids, stream):
    """float64 uniforms on the open interval (0, 1), 52 random bits, of counters ``(ids, stream)``."""
    h1, h2 = threefry2x32(k1, k2, ids, jnp.asarray(stream, jnp.uint32))
    bits = (h1.astype(jnp.uint64) << jnp.uint64(20)) | (h2 >> jnp.uint32(12)).astype(jnp.uint64)
    return (bits.astype(jnp.float64) + 0.5) * (2.0 ** -52)


def _stirling_tail(k):
    """``log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2]`` for float64 ``k >= 0`` (error < 1e-12)."""
    table = jnp.asarray(_STIRLING_TAIL, jnp.float64)
    small = table[jnp.clip(k, 0, 9).astype(jnp.int32)]
    k1 = k + 1.0
    s = 1.0 / (k1 * k1)
    series = (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - s / 1680) * s) * s) / k1
    return jnp.where(k <= 9, small, series)


class _Btrs(NamedTuple):
    """Per-element constants of BTRS for ``Binomial(n, q)``, ``q <= 1/2``, ``n q >= 10`` (all float64)."""

    n: jax.Array
    q: jax.Array
    a: jax.Array
    b: jax.Array
    c: jax.Array
    alpha: jax.Array
    vr: jax.Array
    m: jax.Array
    qn2: jax.Array
    hm: jax.Array


def _log_ratio_term(j, con):
    """``(j + 1/2) log((j + 1) (1 - q) / (q (n - j + 1)))`` written with ``log1p`` of a difference that is
    computed exactly, so that the large terms of the acceptance bound cancel to full precision at huge ``n``."""
    return (j + 0.5) * jnp.log1p(((j + 1.0) - con.qn2) / (con.q * (con.n - j + 1.0)))


def _btrs_constants(n, q) -> _Btrs:
    spq = jnp.sqrt(n * q * (1.0 - q))
    b = 1.15 + 2.53 * spq
    m = jnp.floor((n + 1.0) * q)
    con = _Btrs(n=n, q=q, a=-0.0873 + 0.0248 * b + 0.01 * q, b=b, c=n * q + 0.5,
                alpha=(2.83 + 5.1 / b) * spq, vr=0.92 - 4.2 / b, m=m, qn2=q * (n + 2.0), hm=jnp.zeros_like(n))
    return con._replace(hm=_log_ratio_term(m, con) + _stirling_tail(m) + _stirling_tail(n - m))


def _btrs_try(con: _Btrs, u, v):
    """One round of BTRS (Hörmann 1993) from uniforms ``u, v`` in (0, 1): the candidate and whether it is
    accepted."""
    u = u - 0.5
    us = 0.5 - jnp.abs(u)
    k = jnp.floor((2.0 * con.a / us + con.b) * u + con.c)
    in_range = (k >= 0) & (k <= con.n)
    k = jnp.clip(k, 0.0, con.n)
    squeeze = (us >= 0.07) & (v <= con.vr)
    lv = jnp.log(v * con.alpha / (con.a / (us * us) + con.b))
    bound = (con.hm - _log_ratio_term(k, con) + (con.n + 1.0) * jnp.log1p((k - con.m) / (con.n - k + 1.0))
             - _stirling_tail(k) - _stirling_tail(con.n - k))
    return k, in_range & (squeeze | (lv <= bound))


def _inversion_block(k1, k2, ids, n, q, valid):
    """Sequential-search inversion from 0 for ``n q < INVERSION_MAX_MEAN``, one uniform per element (counter
    ``(id, 0)``). The search stops where the next term no longer changes the float64 CDF (mass < 1e-16)."""
    u = _uniform(k1, k2, ids, 0)
    f = jnp.exp(n * jnp.log1p(-q))
    ratio = q / (1.0 - q)
    k = jnp.zeros_like(n)
    done = ~valid | (u < f)

    def body(state):
        k, f, cdf, done = state
        f_next = f * ((n - k) / (k + 1.0)) * ratio
        cdf_next = cdf + f_next
        stop = (u < cdf_next) | (cdf_next == cdf) | (k + 1.0 >= n)
        go = ~done
        return (jnp.where(go, k + 1.0, k), jnp.where(go, f_next, f), jnp.where(go, cdf_next, cdf), done | stop)

    k, _, _, _ = lax.while_loop(lambda s: jnp.any(~s[3]), body, (k, f, f, done))
    return k


def _btrs_round(con, k1, k2, ids, rnd):
    """Round ``rnd`` (per element) of BTRS: its uniforms are the counters ``(id, 2 rnd)`` and ``(id, 2 rnd + 1)``."""
    s = rnd.astype(jnp.uint32) * jnp.uint32(2)
    return _btrs_try(con, _uniform(k1, k2, ids, s), _uniform(k1, k2, ids, s + jnp.uint32(1)))


def _squeeze_round(n, q, k1, k2, ids):
    """Round 0 of BTRS decided by the squeeze alone (no logarithms): the candidate and whether the squeeze
    accepts it. Where it does not, the full round 0 (same uniforms) decides later."""
    spq = jnp.sqrt(n * q * (1.0 - q))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * q
    u = _uniform(k1, k2, ids, 0) - 0.5
    v = _uniform(k1, k2, ids, 1)
    us = 0.5 - jnp.abs(u)
    k = jnp.floor((2.0 * a / us + b) * u + n * q + 0.5)
    return k, (us >= 0.07) & (v <= 0.92 - 4.2 / b) & (k >= 0) & (k <= n)


def _prefix_count(mask):
    """Inclusive prefix sums (int32) of a 1-D boolean or integer array (entries and total below 2^24).

    Rows of 128 are summed by a product with a triangular matrix (exact in float32), the row totals
    recursively: XLA's own cumulative sum on CPU costs about 15 ns per element at 2^18 elements."""
    size = mask.shape[0]
    width = 128
    rows = -(-size // width)
    x = jnp.pad(mask.astype(jnp.float32), (0, rows * width - size)).reshape(rows, width)
    local = x @ jnp.triu(jnp.ones((width, width), jnp.float32))
    if rows > 1:
        totals = _prefix_count(local[:, -1])
        local = local + (totals - local[:, -1].astype(jnp.int32)).astype(jnp.float32)[:, None]
    return local.reshape(-1)[:size].astype(jnp.int32)


def _compact(mask, size):
    """Indices of the first ``size`` true entries of the 1-D ``mask`` (padding: ``mask.size``) and their count."""
    pos = _prefix_count(mask) - 1
    total = mask.size
    target = jnp.where(mask & (pos < size), pos, size)
    idx = jnp.full((size,), total, jnp.int32).at[target].set(jnp.arange(total, dtype=jnp.int32), mode="drop")
    return idx, jnp.sum(mask, dtype=jnp.int32)


def _list_pass(step, todo, count, carry, sub):
    """Run ``step(sel, valid, carry) -> (carry, keep)`` on the first ``count`` entries of the index list
    ``todo`` in sub-blocks of ``sub``; the entries it keeps are packed in place at the front of ``todo``.
    The cost is proportional to ``count``. Returns the list, the number kept and the carry."""

    def body(b, state):
        todo, kept, carry = state
        sel = lax.dynamic_slice(todo, (b * sub,), (sub,))
        valid = b * sub + jnp.arange(sub, dtype=jnp.int32) < count
        carry, keep = step(sel, valid, carry)
        keep = keep & valid
        pos = _prefix_count(keep) - 1
        packed = jnp.zeros(sub, jnp.int32).at[jnp.where(keep, pos, sub)].set(sel, mode="drop")
        todo = lax.dynamic_update_slice(todo, packed, (kept,))
        return todo, kept + jnp.sum(keep, dtype=jnp.int32), carry

    return lax.fori_loop(0, (count + sub - 1) // sub, body, (todo, jnp.int32(0), carry))


def _binomial_flat(k1, k2, ids, n, p):
    """Exact ``Binomial(n, p)`` of 1-D arrays: uint32 keys and ids, int64 ``n``, float64 ``p``; int64 out.

    The non-trivial elements are listed once; a first pass over the list draws the inversion elements and
    BTRS round 0 where the squeeze accepts; later passes run full BTRS rounds on the elements still
    rejected, whose list shrinks pass by pass. Work is proportional to the non-trivial elements."""
    total = n.shape[0]
    n = jnp.maximum(n, 0)
    p = jnp.clip(p, 0.0, 1.0)
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    nf = n.astype(jnp.float64)
    active = (n > 0) & (q > 0)
    inversion = nf * q < INVERSION_MAX_MEAN
    big = min(SUB, -(-total // 128) * 128)
    small = min(SUB_SMALL, big)
    padded = -(-total // big) * big
    pick = lambda x, i: x[jnp.minimum(i, total - 1)]
    drop = lambda sel, ok: jnp.where(ok, sel, total)

    def first(sel, valid, out):
        nn, qq, a1, a2, ii = (pick(x, sel) for x in (nf, q, k1, k2, ids))
        inv = valid & pick(inversion, sel)
        bt = valid & ~pick(inversion, sel)
        kinv = lax.cond(jnp.any(inv), lambda: _inversion_block(a1, a2, ii, nn, jnp.where(inv, qq, 0.25), inv),
                        lambda: jnp.zeros_like(nn))
        kb, acc = lax.cond(jnp.any(bt), lambda: _squeeze_round(nn, jnp.where(bt, qq, 0.25), a1, a2, ii),
                           lambda: (jnp.zeros_like(nn), jnp.zeros(nn.shape, bool)))
        acc = acc & bt
        out = out.at[drop(sel, inv | acc)].set(jnp.where(inv, kinv, kb), mode="drop")
        return out, bt & ~acc

    def full(sel, valid, carry):
        out, rnd = carry
        nn, qq, a1, a2, ii, rr = (pick(x, sel) for x in (nf, q, k1, k2, ids, rnd))
        kb, acc = _btrs_round(_btrs_constants(nn, jnp.where(valid, qq, 0.25)), a1, a2, ii, rr)
        acc = acc & valid
        out = out.at[drop(sel, acc)].set(kb, mode="drop")
        rnd = rnd.at[drop(sel, valid & ~acc)].add(jnp.uint32(1), mode="drop")
        return (out, rnd), ~acc

    def again(state):
        todo, count, carry = state
        return _list_pass(full, todo, count, carry, small)

    def work():
        todo, count = _compact(jnp.pad(active, (0, padded - total)), padded)
        todo, count, out = _list_pass(first, todo, count, jnp.zeros(total, jnp.float64), big)
        carry = (out, jnp.zeros(total, jnp.uint32))
        return lax.while_loop(lambda s: s[1] > 0, again, (todo, count, carry))[2][0]

    # Steps of the tree whose nodes all have count 0 (collapsed subtrees) skip even the gathering.
    out = lax.cond(jnp.any(active), work, lambda: jnp.zeros(total, jnp.float64))
    k = out.astype(jnp.int64)
    return jnp.where(flip, n - k, k)


def _key_words(key: jax.Array) -> jax.Array:
    """Two uint32 words derived from a PRNG key (any implementation): the keys of the counter hash."""
    return jax.random.bits(key, (2,), jnp.uint32)


def _flattening_vmap(core):
    """``core(words (B, 2), *arrays (B, ...))`` under ``vmap``: the mapped axis is merged into ``B`` and the
    same function runs once on the larger batch, so its gating on "any element needs this branch" and its
    loops see the whole batch instead of turning into selects over every branch."""
    wrapped = jax.custom_batching.custom_vmap(core)

    def rule(axis_size, in_batched, *args):
        full = [x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(args, in_batched)]
        out = wrapped(*[x.reshape((-1,) + x.shape[2:]) for x in full])
        return out.reshape((axis_size, -1) + out.shape[1:]), True

    wrapped.def_vmap(rule)
    return wrapped


def _binomial_core(words, n, p):
    batch, size = n.shape
    k1 = jnp.broadcast_to(words[:, :1], (batch, size)).reshape(-1)
    k2 = jnp.broadcast_to(words[:, 1:], (batch, size)).reshape(-1)
    ids = jnp.broadcast_to(jnp.arange(size, dtype=jnp.uint32), (batch, size)).reshape(-1)
    return _binomial_flat(k1, k2, ids, n.reshape(-1), p.reshape(-1)).reshape(batch, size)


_binomial_batched = _flattening_vmap(_binomial_core)


def binomial(key: jax.Array, n, p, shape: tuple[int, ...] | None = None) -> jax.Array:
    """Exact ``Binomial(n, p)`` variates, int64, of the broadcast shape of ``n`` and ``p`` (or ``shape``).

    ``n`` (integers, exact up to 2^53) and ``p`` (float64) may differ per element; ``n <= 0`` gives 0,
    ``p <= 0`` gives 0, ``p >= 1`` gives ``n``. Elements with ``n min(p, 1-p) < INVERSION_MAX_MEAN`` are drawn
    by inversion, the others by BTRS (Hörmann 1993, transformed rejection with squeeze). Element ``i`` (in
    row-major order) uses only the counters ``(i, .)`` of the key's hash: its value does not depend on the
    other elements. Needs 64-bit types (``jax.enable_x64``). Works under ``jit`` and ``vmap``.
    """
    n = jnp.asarray(n, jnp.int64)
    p = jnp.asarray(p, jnp.float64)
    shape = jnp.broadcast_shapes(n.shape, p.shape) if shape is None else tuple(shape)
    size = math.prod(shape)
    n = jnp.broadcast_to(n, shape).reshape(1, size)
    p = jnp.broadcast_to(p, shape).reshape(1, size)
    return _binomial_batched(_key_words(key)[None], n, p).reshape(shape)


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
    # The top levels' windows are mostly masked nodes (about K log2 K slots per row): K at most V/8; the
    # chunks cost a fixed overhead per step: about 2^16 slots per step over all rows.
    k = max(2, min(width // 8, 1 << max(1, round(math.log2(max(1, (1 << 16) // rows))))))
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
    w = jnp.maximum(weights.reshape(e, vocab).astype(jnp.float64), 0.0)
    tree = jnp.zeros((e, length), jnp.float64).at[:, vocab:2 * vocab].set(w)
    lane = jnp.arange(k, dtype=jnp.int32)

    def up(j, tree):
        a = starts[starts.shape[0] - 1 - j]
        end = ends[starts.shape[0] - 1 - j]
        child = lax.dynamic_slice(tree, (_ZERO, 2 * a), (e, 2 * k)).reshape(e, k, 2).sum(axis=2)
        cur = lax.dynamic_slice(tree, (_ZERO, a), (e, k))
        return lax.dynamic_update_slice(tree, jnp.where(a + lane < end, child, cur), (_ZERO, a))

    tree = lax.fori_loop(0, starts.shape[0], up, tree)
    k1 = jnp.broadcast_to(jnp.repeat(words[:, 0], rows)[:, None], (e, k)).reshape(-1)
    k2 = jnp.broadcast_to(jnp.repeat(words[:, 1], rows)[:, None], (e, k)).reshape(-1)
    row_base = (jnp.arange(e, dtype=jnp.uint32) % jnp.uint32(rows)) * jnp.uint32(vocab)
    counts = jnp.zeros((e, length), jnp.int64).at[:, 1].set(n0)

    def down(j, counts):
        a, end = starts[j], ends[j]
        valid = a + lane < end
        n = jnp.where(valid, lax.dynamic_slice(counts, (_ZERO, a), (e, k)), 0)
        total = lax.dynamic_slice(tree, (_ZERO, a), (e, k))
        left_w = lax.dynamic_slice(tree, (_ZERO, 2 * a), (e, 2 * k))[:, 0::2]
        p = jnp.where(total > 0, left_w / jnp.where(total > 0, total, 1.0), 0.0)
        ids = (row_base[:, None] + (a + lane).astype(jnp.uint32)[None, :]).reshape(-1)
        left = _binomial_flat(k1, k2, ids, n.reshape(-1), p.reshape(-1)).reshape(e, k)
        old = lax.dynamic_slice(counts, (_ZERO, 2 * a), (e, 2 * k)).reshape(e, k, 2)
        new = jnp.where(valid[:, None], jnp.stack([left, n - left], axis=2), old)
        return lax.dynamic_update_slice(counts, new.reshape(e, 2 * k), (_ZERO, 2 * a))

    counts = lax.fori_loop(0, starts.shape[0], down, counts)
    return counts[:, vocab:2 * vocab].reshape(batch, rows, vocab)


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
        u = jax.random.uniform(jax.random.fold_in(key, t), (rows,), dtype=jnp.float64)
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
    u = jax.random.uniform(key, (rows * capacity,), dtype=jnp.float64)
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
