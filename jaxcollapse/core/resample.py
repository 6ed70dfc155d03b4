"""The resampling kernel: a model held as its training set, sampled by picking training samples at random.

A fitted (unsmoothed, undecoded) model is the empirical distribution of its training samples, so a draw from it
is a uniformly chosen training sample: each new synthetic sample picks a *parent* among the previous model's
``T`` training samples. The state of a chain is then a flat list of token ids, ``(slots,)`` int32, in which
context ``r`` owns the slots ``[start_r, start_r + capacity_r)`` and uses the first ``T_r(m)`` of them.
The cost per generation is O(training samples), independent of the vocabulary; metrics come from the counts
of each sample's token, gathered per slot (each distinct token weighted by ``1 / count``). In the partially
synthetic regime they come from the ``n`` synthetic slots alone, added to sums over ``p^(1)``'s fixed ``N``
real samples taken once.

It serves the fully synthetic, partially synthetic, fresh-real and accumulate regimes without decoding or
smoothing (``Config.sampler == "resample"``); the count kernel (:mod:`jaxcollapse.core.count`) serves the rest.
In generation ``m`` the slots of context ``r`` are, in order: ``[0, fresh)`` fresh real samples from
``p^(0)``, ``[fresh, keep)`` kept from the previous list, ``[keep, size)`` synthetic samples whose parents are
uniform over the previous list's ``T_prev`` samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import count, rng, samplers
from .count import Config, Params
from .interface import Kernel
from .metrics import per_context as per_context_table
from .metrics import record_collapse
from .metrics import weighted



class ResampleState(NamedTuple):
    """One chain after generation ``generation``.

    Attributes:
      generation: int32 ``m``.
      tokens: ``(slots,)`` int32 training samples of ``p^(m)`` (token ids; slots past a context's size are unused).
      first: ``(contexts * vocab,)`` int32 token counts of ``p^(1)``'s training set (zeros before generation 1).
      first_support: ``(contexts,)`` int32 number of tokens of ``p^(1)`` with positive probability.
      first_sums: ``(contexts, 11)`` float64 sums over ``p^(1)``'s counts that the partially synthetic
        metrics start from (:func:`_first_sums`); ``(contexts, 0)`` in the other regimes.
      collapse_time, collapse_token, chain_collapse: as in :class:`jaxcollapse.State`.
    """

    generation: jax.Array
    tokens: jax.Array
    first: jax.Array
    first_support: jax.Array
    first_sums: jax.Array
    collapse_time: jax.Array
    collapse_token: jax.Array
    chain_collapse: jax.Array


def _layout(params: Params, config: Config):
    """Row of each slot and its offset inside the row, ``(slots,)`` each."""
    cap = params.slots
    start = jnp.cumsum(cap) - cap
    slot = jnp.arange(config.slots, dtype=jnp.int64)
    row = jnp.clip(jnp.searchsorted(jnp.cumsum(cap), slot, side="right"), 0, config.contexts - 1)
    return row, slot - start[row], start


def _regions(m, params: Params, config: Config):
    """Per-context ``(fresh, keep, size, previous size)`` of generation ``m >= 2``."""
    kind = config.kind
    n, big_n = params.synthetic, params.real
    zero = jnp.zeros_like(n)
    if kind == "fully_synthetic":
        return zero, zero, n, n
    if kind == "partially_synthetic":
        return zero, big_n, big_n + n, jnp.where(m == 2, big_n, big_n + n)
    if kind == "fresh_real":
        return big_n, big_n, big_n + n, big_n + n
    prev = big_n + (m - 2) * n                                    # accumulate
    return zero, prev, prev + n, prev


def _pick(key, size, config: Config):
    """Uniform parent offsets in ``[0, size)``, one per element of ``size`` (int64 >= 1, at most ``slots``)."""
    if config.slots <= 1 << 16:
        # 32-bit multiply-shift: each offset has probability within 2^-32 of 1/size.
        bits = rng.words(key, size.shape).astype(jnp.uint64)
        return ((bits * size.astype(jnp.uint64)) >> 32).astype(jnp.int64)
    u = rng.uniform(key, size.shape)
    return jnp.minimum(jnp.floor(u * size).astype(jnp.int64), size - 1)


def _fresh_real(key, row, params: Params, config: Config):
    """One token per element of ``row`` drawn from that context's row of ``p^(0)`` (float64 inverse CDF,
    53-bit uniforms; the search guided, as every chain searches the same table)."""
    cdf = jnp.cumsum(jnp.asarray(params.initial, jnp.float64), axis=1)
    total = cdf[row, -1]
    u = rng.uniform(key, row.shape)
    x = jnp.minimum(u * total, jnp.nextafter(total, jnp.zeros_like(total)))
    return samplers._row_search(cdf, row, x, samplers.row_guide(cdf)).astype(jnp.int32)


def init(key: jax.Array, params: Params, config: Config) -> ResampleState:
    """Generation 0. The list is empty; the model is ``p^(0)`` (measure it with :func:`jaxcollapse.measure`)."""
    del key
    c = config.contexts
    dirac = jnp.max(jnp.asarray(params.initial), axis=1) == 1.0
    whole = jnp.all(dirac | (params.weights <= 0))
    return ResampleState(
        generation=jnp.int32(0), tokens=jnp.zeros(config.slots, jnp.int32),
        first=jnp.zeros(c * config.vocab, jnp.int32), first_support=jnp.zeros(c, jnp.int32),
        first_sums=jnp.zeros((c, _FIRST_SUMS if config.kind == "partially_synthetic" else 0), jnp.float64),
        collapse_time=jnp.where(dirac, 0, -1).astype(jnp.int32),
        collapse_token=jnp.where(dirac, jnp.argmax(jnp.asarray(params.initial), axis=1), -1).astype(jnp.int32),
        chain_collapse=jnp.where(whole, 0, -1).astype(jnp.int32))


def _counts(tokens, size, params, config):
    row, offset, _ = _layout(params, config)
    valid = offset < size[row]
    flat = row * config.vocab + tokens
    counts = jnp.zeros(config.contexts * config.vocab, jnp.int32).at[flat].add(valid.astype(jnp.int32))
    return counts, row, valid, flat


def first_step(key: jax.Array, state: ResampleState, params: Params, config: Config) -> ResampleState:
    """Generation 1: ``first`` fresh real samples per context."""
    row, _, _ = _layout(params, config)
    tokens = _fresh_real(key, row, params, config)  # one per slot; slots past ``first`` are unused
    counts, *_ = _counts(tokens, params.first, params, config)
    support = jnp.sum(counts.reshape(config.contexts, config.vocab) > 0, axis=1).astype(jnp.int32)
    state = state._replace(first=counts, first_support=support)
    if config.kind == "partially_synthetic":
        state = state._replace(first_sums=_first_sums(counts, params, config))
    return _advance(state, tokens, params, config)


def next_step(key: jax.Array, state: ResampleState, params: Params, config: Config) -> ResampleState:
    """Generation ``m = state.generation + 1 >= 2``."""
    m = state.generation + 1
    k_real, k_pick = rng.split(key)
    _, _, start = _layout(params, config)
    fresh, keep, size, prev = _regions(m, params, config)
    # Only the ``draws`` new samples are drawn: per context, its fresh real ones then its synthetic ones.
    new = fresh + (size - keep)
    ends = jnp.cumsum(new)
    slot = jnp.arange(config.draws, dtype=jnp.int64)
    row = jnp.clip(jnp.searchsorted(ends, slot, side="right"), 0, config.contexts - 1)
    offset = slot - (ends - new)[row]
    is_fresh = offset < fresh[row]
    target = start[row] + jnp.where(is_fresh, offset, keep[row] + offset - fresh[row])
    parent = start[row] + _pick(k_pick, jnp.maximum(prev[row], 1), config)
    values = state.tokens[parent]
    if config.kind == "fresh_real":
        values = jnp.where(is_fresh, _fresh_real(k_real, row, params, config), values)
    if config.contexts == 1:
        # One context: the new samples fill slots keep - fresh .. keep - fresh + draws - 1 (fresh is 0 or keep).
        tokens = jax.lax.dynamic_update_slice(state.tokens, values, ((keep - fresh)[0].astype(jnp.int32),))
    else:
        tokens = state.tokens.at[target].set(values, unique_indices=True)
    if config.kind == "partially_synthetic":
        # The N real samples are p^(1)'s: all one token iff p^(1) has support 1; only the n synthetic ones move,
        # and they are ``values`` (in the order of :func:`_synthetic_slots`).
        return _advance(state, tokens, params, config, (row, values, state.first_support == 1))
    return _advance(state, tokens, params, config)


def size_at(m, params: Params, config: Config):
    """Training-set size ``(C,)`` of ``p^(m)``, ``m >= 1``."""
    return jnp.where(m == 1, params.first, _regions(jnp.maximum(m, 2), params, config)[2])


def _advance(state, tokens, params, config, moved=None):
    """``state`` at the next generation with ``tokens``, its collapse records updated. ``moved``, if given, is
    ``(row, tokens, single)``: the only slots that can differ from the context's first one are these, and
    ``single`` ``(C,)`` says whether all the others equal it."""
    m = state.generation + 1
    new = state._replace(generation=m, tokens=tokens)
    row, offset, start = _layout(params, config)
    head = tokens[jnp.clip(start, 0, config.slots - 1)]
    if moved is None:
        other = (offset < size_at(m, params, config)[row]) & (tokens != head[row])
        single = True
    else:
        row, moved_tokens, single = moved
        other = moved_tokens != head[row]
    if config.contexts == 1:
        dirac = ~jnp.any(other)[None]
    else:
        dirac = jnp.zeros(config.contexts, jnp.int32).at[row].add(other.astype(jnp.int32)) == 0
    return record_collapse(new, dirac & single, head, params.weights)


#: Largest training list whose per-slot counts and first-model counts are packed into one int32 (16 bits each).
_PACK_LIMIT = 1 << 15


def _slot_counts(state: ResampleState, size, params: Params, config: Config):
    """Per slot: the count of its token in ``p^(m)``'s list and in ``p^(1)``'s, ``(slots,)`` int32 each.

    Both come from one scatter-add and one gather when counts fit in 16 bits: the list's counts are added onto
    ``first << 16``, so a single lookup returns both (a gather per slot costs as much as the scatter)."""
    row, offset, _ = _layout(params, config)
    valid = offset < size[row]
    flat = row * config.vocab + state.tokens
    add = valid.astype(jnp.int32)
    if config.slots < _PACK_LIMIT:
        both = (state.first << 16).at[flat].add(add, mode="promise_in_bounds").at[flat].get(mode="promise_in_bounds")
        return both & 0xFFFF, both >> 16, row, valid, flat
    counts = jnp.zeros(config.contexts * config.vocab, jnp.int32).at[flat].add(add)
    return counts[flat], state.first[flat], row, valid, flat


def _log_counts(config: Config):
    """``log max(k, 1)`` for ``k = 0..slots``, float64: the log of a count is looked up (a float64 log costs about
    ten lookups). The barrier keeps XLA from fusing the logs into each lookup, one log per element again."""
    return jax.lax.optimization_barrier(jnp.log(jnp.maximum(jnp.arange(config.slots + 1, dtype=jnp.float64), 1.0)))


def _p0_log_p0(params: Params):
    """``sum_i p0_i log p0_i`` per context, ``(C,)`` float64 (the first term of KL(p0 || p))."""
    p0 = jnp.asarray(params.initial, jnp.float64)
    return jnp.sum(jnp.where(p0 > 0, p0 * jnp.log(jnp.where(p0 > 0, p0, 1.0)), 0.0), axis=1)


def _sums(terms, maxima, row, config: Config):
    """Per-context sums of ``terms`` and maxima of ``maxima`` (``(slots,)`` each) in one pass over the slots."""
    if config.contexts == 1:
        zero = jnp.zeros((), terms[0].dtype)

        def combine(a, b):
            k = len(terms)
            return tuple(a[i] + b[i] for i in range(k)) + tuple(jnp.maximum(a[i], b[i]) for i in range(k, len(a)))

        out = jax.lax.reduce(tuple(terms) + tuple(maxima), (zero,) * (len(terms) + len(maxima)), combine, (0,))
        return [o[None] for o in out]
    sums = jnp.zeros((len(terms), config.contexts), jnp.float64).at[:, row].add(jnp.stack(terms))
    big = jnp.zeros((len(maxima), config.contexts), jnp.float64).at[:, row].max(jnp.stack(maxima))
    return list(sums) + list(big)


def _per_context(state: ResampleState, params: Params, config: Config) -> dict:
    """Every metric of :data:`jaxcollapse.METRICS` per context ``(C,)``, from the training list.

    A sum over the distinct tokens of a context is a sum over its slots, each slot weighted by ``1 / count``
    of its token (``share``). Cost O(slots): one scatter-add, a few lookups per slot (the log of a count is
    looked up too: a float64 log costs about ten lookups) and a single reduction pass computing every sum."""
    size = size_at(state.generation, params, config)
    count, first_count, row, valid, flat = _slot_counts(state, size, params, config)
    p0 = jnp.asarray(params.initial, jnp.float64)
    t = size.astype(jnp.float64)[row]
    c = jnp.maximum(count, 1).astype(jnp.float64)
    share = 1.0 / c                                           # each distinct token's slots add up to 1
    p = c / t
    q0 = p0.reshape(-1)[flat]
    q1 = first_count.astype(jnp.float64) / params.first.astype(jnp.float64)[row]
    log_count = _log_counts(config)
    log_p = log_count.at[count].get(mode="promise_in_bounds") - jnp.log(size.astype(jnp.float64))[row]
    # Materialise the gathered values once: fused into each sum below, XLA would redo the gathers per metric.
    share, p, q0, q1, log_p = jax.lax.optimization_barrier((share, p, q0, q1, log_p))
    terms = [share, share * q0, share * q1, jnp.where(q0 > 0, share, 0.0), jnp.where(q1 > 0, share, 0.0),
             p / t, share * jnp.abs(p - q0), share * jnp.abs(p - q1), log_p / t, share * q0 * log_p]
    terms = [jnp.where(valid, x, 0.0) for x in terms]
    sums = _sums(terms, [jnp.where(valid, c, 0.0)], row, config)
    support, alive0, alive1, live0, live1, collision, l1_0, l1_1, neg_entropy, cross, max_count = sums
    max_prob = max_count / size.astype(jnp.float64)
    # A token is lost when fewer tokens of p0 (of p1) are alive than p0 (p1) has: then, and only then, the
    # lost mass enters L1, missing mass and KL (1 - alive would leave rounding residue of 1e-16 otherwise).
    lost = jnp.round(live0) < jnp.sum(p0 > 0, axis=1)
    lost1 = jnp.round(live1) < state.first_support
    h0 = _p0_log_p0(params)
    missing = jnp.where(lost, jnp.maximum(1.0 - alive0, 0.0), 0.0)
    return {
        "collision": collision,
        "max_prob": max_prob,
        "l1_initial": l1_0 + missing,
        "l1_first": l1_1 + jnp.where(lost1, jnp.maximum(1.0 - alive1, 0.0), 0.0),
        "entropy": -neg_entropy,
        "support": jnp.round(support),
        "missing_mass": missing,
        "kl": jnp.where(lost, jnp.inf, jnp.maximum(h0 - cross, 0.0)),
    }


#: Columns of :func:`_first_sums`.
_FIRST_SUMS = 11


def _first_sums(counts, params: Params, config: Config):
    """``(C, 11)`` float64 sums over ``p^(1)``'s counts ``f`` (``(C * V,)`` int32), ``N`` = ``params.first``,
    ``T = N + n``: ``sum f^2``, ``max f``, ``sum f (log T - log f)``, ``#{f > 0}``, ``sum_{f = 0} p0``,
    ``#{f = 0 < p0}``, ``sum_{f > 0} p0 log f``, ``sum |f/N - p0|``, ``sum |f/T - p0|``, ``sum |f/T - f/N|``,
    ``sum f (log N - log f)``. Logs are those of :func:`_log_counts`, as in :func:`_partial_per_context`, so a
    Dirac mass has entropy exactly 0."""
    f = counts.reshape(config.contexts, config.vocab).astype(jnp.float64)
    p0 = jnp.asarray(params.initial, jnp.float64)
    big_n = params.first.astype(jnp.float64)[:, None]
    t = (params.first + params.synthetic).astype(jnp.float64)[:, None]
    pos, pos0 = f > 0, p0 > 0
    log_count = _log_counts(config)
    log_f = log_count[counts.reshape(config.contexts, config.vocab)]
    log_n = log_count[params.first][:, None]
    log_t = log_count[params.first + params.synthetic][:, None]
    sums = [jnp.sum(x.astype(jnp.float64), axis=1) for x in (
        f * f, f * (log_t - log_f), pos, jnp.where(pos, 0.0, p0), ~pos & pos0, jnp.where(pos0, p0 * log_f, 0.0),
        jnp.abs(f / big_n - p0), jnp.abs(f / t - p0), jnp.abs(f / t - f / big_n), f * (log_n - log_f))]
    return jnp.stack(sums[:1] + [jnp.max(f, axis=1)] + sums[1:], axis=1)


def _partial_per_context(state: ResampleState, params: Params, config: Config) -> dict:
    """Every metric of :data:`jaxcollapse.METRICS` per context ``(C,)`` in the partially synthetic regime, from
    the ``n`` synthetic slots alone.

    ``p^(m)``'s counts are ``f + s``: ``f`` those of the ``N`` real samples (``p^(1)``, fixed), ``s`` those of the
    synthetic samples. A sum over the vocabulary is ``p^(1)``'s sum (:func:`_first_sums`, taken once) plus, for
    each token a synthetic sample hit, the change from ``f`` to ``f + s``, each synthetic slot weighted by
    ``1 / s`` of its token. Cost O(n) per generation instead of O(V) or O(N + n)."""
    m = state.generation
    vocab = config.vocab
    row, synthetic = _synthetic_tokens(state.tokens, params, config)
    flat = row * vocab + synthetic
    # At generation 1 (a constant inside the first program) XLA would otherwise fold every sum below at
    # compile time, slowly.
    valid = jax.lax.optimization_barrier(jnp.broadcast_to(m >= 2, synthetic.shape))
    add = valid.astype(jnp.int32)
    if config.slots < _PACK_LIMIT:
        both = (state.first << 16).at[flat].add(add, mode="promise_in_bounds").at[flat].get(mode="promise_in_bounds")
        s, f = both & 0xFFFF, both >> 16
    else:
        s = jnp.zeros(config.contexts * vocab, jnp.int32).at[flat].add(add)[flat]
        f = state.first[flat]
    sizes = size_at(m, params, config)
    size = sizes.astype(jnp.float64)
    t, big_n = size[row], params.first.astype(jnp.float64)[row]
    log_count = _log_counts(config)
    log_c = log_count.at[f + s].get(mode="promise_in_bounds")
    log_f = log_count.at[f].get(mode="promise_in_bounds")
    sf, ff = s.astype(jnp.float64), f.astype(jnp.float64)
    c = ff + sf
    q0 = jnp.asarray(params.initial, jnp.float64).reshape(-1)[flat]
    share = 1.0 / jnp.maximum(sf, 1.0)
    share, c, q0, log_c, log_f = jax.lax.optimization_barrier((share, c, q0, log_c, log_f))
    unseen = f == 0
    log_t = log_count[sizes][row]
    terms = [sf * (2.0 * ff + sf), c * (log_t - log_c) - ff * (log_t - log_f), jnp.where(unseen, 1.0, 0.0),
             jnp.where(unseen & (q0 > 0), 1.0, 0.0), jnp.where(unseen, q0, 0.0),
             jnp.where(q0 > 0, q0 * (log_c - log_f), 0.0),
             jnp.abs(c / t - q0) - jnp.abs(ff / t - q0), jnp.abs(c / t - ff / big_n) - jnp.abs(ff / t - ff / big_n)]
    terms = [jnp.where(valid, share * x, 0.0) for x in terms]
    d_sq, d_entropy, new, new0, d_missing, d_cross, d_l1_0, d_l1_1, max_c = _sums(
        terms, [jnp.where(valid, c, 0.0)], row, config)
    k = state.first_sums.T
    h0 = _p0_log_p0(params)
    cross = k[6] + d_cross - jnp.log(size) * jnp.sum(jnp.asarray(params.initial, jnp.float64), axis=1)
    lost = k[5] - jnp.round(new0) > 0
    first = m == 1
    return {
        "collision": (k[0] + d_sq) / (size * size),
        "max_prob": jnp.maximum(k[1], max_c) / size,
        "l1_initial": jnp.where(first, k[7], jnp.maximum(k[8] + d_l1_0, 0.0)),
        "l1_first": jnp.where(first, 0.0, jnp.maximum(k[9] + d_l1_1, 0.0)),
        "entropy": jnp.maximum(jnp.where(first, k[10], k[2] + d_entropy), 0.0) / size,
        "support": k[3] + jnp.round(new),
        "missing_mass": jnp.where(lost, jnp.maximum(k[4] - d_missing, 0.0), 0.0),
        "kl": jnp.where(lost, jnp.inf, jnp.maximum(h0 - cross, 0.0)),
    }


def _synthetic_slots(params: Params, config: Config):
    """Partially synthetic lists: the row and the slot of each of the ``draws`` synthetic samples, ``(draws,)``
    int64 each (context ``r``'s ``n_r`` of them follow its ``N_r`` real samples)."""
    _, _, start = _layout(params, config)
    n = params.synthetic
    ends = jnp.cumsum(n)
    slot = jnp.arange(config.draws, dtype=jnp.int64)
    row = jnp.clip(jnp.searchsorted(ends, slot, side="right"), 0, config.contexts - 1)
    return row, start[row] + params.real[row] + slot - (ends - n)[row]


def _synthetic_tokens(tokens, params: Params, config: Config):
    """Partially synthetic lists: the rows of :func:`_synthetic_slots` and the tokens in those slots, ``(draws,)``
    each. One context's synthetic slots are one run after its ``N`` real ones: a slice, not a gather."""
    row, target = _synthetic_slots(params, config)
    if config.contexts == 1:
        return row, jax.lax.dynamic_slice_in_dim(tokens, params.real[0], config.draws)
    return row, tokens[target]


def _table_counts(state: ResampleState, params: Params, config: Config):
    """``(C * V,)`` int32 token counts of ``p^(m)``'s training list.

    Partially synthetic lists keep the ``N`` real samples of ``p^(1)`` in their first slots, so their counts
    are ``first`` plus the counts of the ``n`` synthetic slots (a scatter of ``n``, not ``N + n``, samples)."""
    size = size_at(state.generation, params, config)
    if config.kind != "partially_synthetic":
        return _counts(state.tokens, size, params, config)[0]
    row, synthetic = _synthetic_tokens(state.tokens, params, config)
    add = (state.generation >= 2).astype(jnp.int32)
    return state.first.at[row * config.vocab + synthetic].add(add)


def measure(state: ResampleState, params: Params, config: Config, per_context: bool = False) -> dict:
    """Context-weighted metrics of ``p^(m)`` (``m >= 1``); with ``per_context`` also ``"<name>/context"``.

    With more training samples than table cells, the metrics are taken on the ``(C, V)`` count table instead
    of per sample (the same values, fewer operations); partially synthetic with at most as many synthetic
    samples as cells, from the synthetic samples (:func:`_partial_per_context`).
    """
    if config.kind == "partially_synthetic" and config.draws <= config.contexts * config.vocab:
        values = _partial_per_context(state, params, config)
    elif config.slots > config.contexts * config.vocab:
        size = size_at(state.generation, params, config)
        counts = _table_counts(state, params, config).reshape(config.contexts, config.vocab)
        t = size.astype(jnp.float64)[:, None]
        p = counts.astype(jnp.float64) / t
        first = (state.first.reshape(config.contexts, config.vocab).astype(jnp.float64)
                 / params.first.astype(jnp.float64)[:, None])
        # log p = log count - log size, the log of each count looked up (a float64 log per cell costs 10x a
        # lookup); the barrier keeps XLA from fusing the table's logs into the lookup, one log per cell again.
        log_count = _log_counts(config)
        log_p = log_count.at[counts].get(mode="promise_in_bounds") - jnp.log(t)
        values = per_context_table(p, jnp.asarray(params.initial, jnp.float64), first, log_p)
    else:
        values = _per_context(state, params, config)
    info = weighted(values, params.weights)
    if per_context:
        info.update({f"{k}/context": v for k, v in values.items()})
    return info


def model(state: ResampleState, params: Params, config: Config) -> jax.Array:
    """The chain's model ``p^(m)`` as a ``(C, V)`` float64 table (``m >= 1``)."""
    size = size_at(state.generation, params, config)
    counts, *_ = _counts(state.tokens, size, params, config)
    return counts.reshape(config.contexts, config.vocab).astype(jnp.float64) / size.astype(jnp.float64)[:, None]


KERNEL = Kernel(
    init=init,
    first=lambda key, state, params, config: (first_step(key, state, params, config), {}),
    step=lambda key, state, params, config: (next_step(key, state, params, config), {}),
    measure=measure,
    truth=count.KERNEL.truth,         # generation 0 is the truth; the list is still empty
    model=model,
    freezes=count.freezes,
)
