"""Exact binomial variates for batches: ``Binomial(n, p)`` per element, ``n`` int64 (exact up to 2^53) and
``p`` float64 differing per element, int64 out.

Inversion (sequential search from 0) where ``n min(p, 1 - p) < INVERSION_MAX_MEAN``, BTRS (Hörmann 1993,
transformed rejection with squeeze) above. Random numbers are counter based: the uniforms of an element are
Threefry-2x32 hashes of (element id, stream word) under the element's key words, so every element's variate
depends only on its own key, id, ``n`` and ``p``, never on which other elements share the batch, on the
block they are processed in or on how many rounds the others needed. Needs 64-bit types
(``jax.enable_x64``). :mod:`jaxcollapse.core.samplers` builds its binomial-tree multinomial sampler on
:func:`_binomial_flat` and :func:`_flattening_vmap`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import rng
from .rng import threefry2x32

#: Elements with ``n * min(p, 1 - p)`` below this are drawn by inversion, the others by BTRS.
INVERSION_MAX_MEAN = 10.0
#: Elements per sub-block of the binomial sampler's passes over its list of the elements the dense squeeze
#: left (about a fifth of the BTRS elements, then fewer each pass).
SUB = 1 << 9
_ZERO = np.int32(0)
# log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2], k = 0..9 (the Stirling-series tail of BTRS).
_STIRLING_TAIL = (0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
                  0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
                  0.00925546218271273, 0.00833056343336287)


def _uniform(k1, k2, ids, stream):
    """float64 uniforms on the open interval (0, 1), 52 random bits, of counters ``(ids, stream)``, computed
    once (:func:`~jaxcollapse.core.rng.stored`)."""
    h1, h2 = threefry2x32(k1, k2, ids, jnp.asarray(stream, jnp.uint32))
    bits = (h1.astype(jnp.uint64) << jnp.uint64(20)) | (h2 >> jnp.uint32(12)).astype(jnp.uint64)
    u = (bits.astype(jnp.float64) + 0.5) * (2.0 ** -52)
    return rng.stored(u, ids)


def _stirling_tail(k):
    """``log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2]`` for float64 ``k >= 0`` (error < 1e-12)."""
    small = jnp.full_like(k, _STIRLING_TAIL[9])
    for i in range(8, -1, -1):          # selects, not a table lookup, which would end XLA's fusion here
        small = jnp.where(k <= i, _STIRLING_TAIL[i], small)
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


def _btrs_candidate(con: _Btrs, u, v):
    """The candidate of a BTRS round from uniforms ``u, v`` in (0, 1), clipped to ``[0, n]``; whether it lies in
    ``[0, n]``; whether the squeeze accepts it; and ``us = 0.5 - |u - 0.5|``."""
    u = u - 0.5
    us = 0.5 - jnp.abs(u)
    k = jnp.floor((2.0 * con.a / us + con.b) * u + con.c)
    return jnp.clip(k, 0.0, con.n), (k >= 0) & (k <= con.n), (us >= 0.07) & (v <= con.vr), us


def _btrs_try(con: _Btrs, u, v):
    """One round of BTRS (Hörmann 1993) from uniforms ``u, v`` in (0, 1): the candidate and whether it is
    accepted."""
    k, in_range, squeeze, us = _btrs_candidate(con, u, v)
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


def _round_uniforms(k1, k2, ids, rnd):
    """The uniforms ``u, v`` of BTRS round ``rnd`` (per element): the counters ``(id, 2 rnd)``, ``(id, 2 rnd + 1)``."""
    s = rnd.astype(jnp.uint32) * jnp.uint32(2)
    return _uniform(k1, k2, ids, s), _uniform(k1, k2, ids, s + jnp.uint32(1))


def _btrs_round(con, k1, k2, ids, rnd):
    """Round ``rnd`` (per element) of BTRS: the candidate and whether it is accepted."""
    return _btrs_try(con, *_round_uniforms(k1, k2, ids, rnd))


def _btrs_squeeze(con, k1, k2, ids, rnd):
    """Round ``rnd`` of BTRS decided by its squeeze alone: the candidate (as :func:`_btrs_try` computes it) and
    whether the squeeze accepts it; where it does not, the full round (same uniforms) decides."""
    k, in_range, squeeze, _ = _btrs_candidate(con, *_round_uniforms(k1, k2, ids, rnd))
    return k, in_range & squeeze


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
    """Run ``step(lanes, carry) -> (carry, keep)`` on the first ``count`` entries of the index list ``todo`` in
    blocks of ``sub`` lanes; the entries it keeps are packed in place at the front of ``todo``. The cost is
    proportional to ``count``. Returns the list, the number kept and the carry.

    A list that fits a block 2, 4 or 8 times gives each entry as many lanes (``_Lanes``): ``step`` may try that
    many rounds of one entry at once (the last few entries of a rejection sampler, which would otherwise take a
    pass each). ``keep`` is read at each entry's first lane."""
    shift = jnp.where(count * 8 <= sub, 3, jnp.where(count * 4 <= sub, 2, jnp.where(count * 2 <= sub, 1, 0)))
    shift = shift.astype(jnp.int32)
    slots = sub >> shift
    lane = jnp.arange(sub, dtype=jnp.int32)
    slot = lane >> shift
    extra = (lane & ((1 << shift) - 1)).astype(jnp.uint32)
    first = extra == 0

    def body(b, state):
        todo, kept, carry = state
        at = b * slots + slot
        valid = at < count
        sel = todo[jnp.minimum(at, todo.shape[0] - 1)]
        carry, keep = step(_Lanes(sel, valid, slot, extra, shift), carry)
        keep = keep & valid & first
        pos = _prefix_count(keep) - 1
        packed = jnp.zeros(sub, jnp.int32).at[jnp.where(keep, pos, sub)].set(sel, mode="drop")
        todo = lax.dynamic_update_slice(todo, packed, (kept,))
        return todo, kept + jnp.sum(keep, dtype=jnp.int32), carry

    return lax.fori_loop(0, (count + slots - 1) // slots, body, (todo, jnp.int32(0), carry))


class _Lanes(NamedTuple):
    """The lanes of one block of :func:`_list_pass` (all ``(sub,)`` but ``shift``): the listed index ``sel``,
    whether the lane holds an entry, the entry's slot in the block, the lane's number ``extra`` among the
    ``2^shift`` lanes of its entry (uint32), and ``shift`` (int32 scalar)."""

    sel: jax.Array
    valid: jax.Array
    slot: jax.Array
    extra: jax.Array
    shift: jax.Array


def _binomial_flat(k1, k2, ids, n, p):
    """Exact ``Binomial(n, p)`` of 1-D arrays: uint32 keys and ids, int64 ``n``, float64 ``p``; int64 out.

    The squeeze of BTRS round 0 runs on every element at once (dense arithmetic without logarithms or
    gathering; it accepts about 79% of the BTRS elements). The elements it leaves, the inversion ones and the
    rejected, are listed once; passes over the list draw the inversion elements and run full BTRS rounds on
    the others (round 0 first, with the squeeze's uniforms), deciding the next round by its squeeze where the
    full round rejects, and the list shrinks pass by pass to the still rejected (about 1.5% after two passes);
    a list that short tries up to 8 rounds of each element in one pass. Every element takes the first round
    that accepts it, as one round at a time would. A batch without BTRS elements (collapsed subtrees, small
    counts) skips the dense squeeze."""
    total = n.shape[0]
    n = jnp.maximum(n, 0)
    p = jnp.clip(p, 0.0, 1.0)
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    nf = n.astype(jnp.float64)
    active = (n > 0) & (q > 0)
    inversion = nf * q < INVERSION_MAX_MEAN
    bt = active & ~inversion
    sub = min(SUB, -(-total // 128) * 128)
    padded = -(-total // sub) * sub
    pick = lambda x, i: x[jnp.minimum(i, total - 1)]
    drop = lambda sel, ok: jnp.where(ok, sel, total)
    dummy = 4.0 * INVERSION_MAX_MEAN          # a harmless BTRS argument for the elements that are not BTRS

    def dense():
        k, acc = _squeeze_round(jnp.where(bt, nf, dummy), jnp.where(bt, q, 0.25), k1, k2, ids)
        return jnp.where(bt & acc, k, 0.0), bt & acc

    def step(lanes, carry):
        out, rnd = carry
        sel, valid, extra = lanes.sel, lanes.valid, lanes.extra
        nn, qq, a1, a2, ii, rr = (pick(x, sel) for x in (nf, q, k1, k2, ids, rnd))
        rr = rr + extra
        inv = valid & pick(inversion, sel)
        rest = valid & ~inv
        kinv = lax.cond(jnp.any(inv), lambda: _inversion_block(a1, a2, ii, nn, jnp.where(inv, qq, 0.25), inv),
                        lambda: jnp.zeros_like(nn))
        con = _btrs_constants(jnp.where(rest, nn, dummy), jnp.where(rest, qq, 0.25))
        kb, acc = _btrs_round(con, a1, a2, ii, rr)
        acc = acc & rest
        # rounds rr (full) and rr + 1 (squeeze only); where both lanes of a round decide, they agree
        kn, sq = _btrs_squeeze(con, a1, a2, ii, rr + jnp.uint32(1))
        kb = jnp.where(acc, kb, kn)
        late = jnp.uint32(16)
        when = jnp.where(acc, extra, jnp.where(sq & rest, extra + jnp.uint32(1), late))
        first = jnp.full(when.shape, late).at[lanes.slot].min(when)[lanes.slot]
        win = rest & (when == first) & (when < late)
        out = out.at[drop(sel, inv | win)].set(jnp.where(inv, kinv, kb), mode="drop")
        undecided = rest & (first == late) & (extra == 0)
        rnd = rnd.at[drop(sel, undecided)].add(jnp.uint32(1) << lanes.shift.astype(jnp.uint32), mode="drop")
        return (out, rnd), undecided

    def again(state):
        todo, count, carry = state
        return _list_pass(step, todo, count, carry, sub)

    out, done = lax.cond(jnp.any(bt), dense, lambda: (jnp.zeros(total, jnp.float64), jnp.zeros(total, bool)))
    left = active & ~done

    def listed():
        todo, count = _compact(jnp.pad(left, (0, padded - total)), padded)
        carry = (out, jnp.zeros(total, jnp.uint32))
        return lax.while_loop(lambda s: s[1] > 0, again, (todo, count, carry))[2][0]

    out = lax.cond(jnp.any(left), listed, lambda: out)
    k = out.astype(jnp.int64)
    return jnp.where(flip, n - k, k)


def _key_words(key: jax.Array) -> jax.Array:
    """Two uint32 words derived from a PRNG key (any implementation): the keys of the counter hash."""
    return rng.bits(key, (2,))


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
