"""The resampling kernel: a model held as its training set, sampled by picking training samples at random.

A fitted (unsmoothed, undecoded) model is the empirical distribution of its training samples, so a draw from it
is a uniformly chosen training sample: each new synthetic sample picks a *parent* among the previous model's
``T`` training samples. The state of a chain is then a flat list of token ids, ``(slots,)`` int32, in which
context ``r`` owns the slots ``[start_r, start_r + capacity_r)`` and uses the first ``T_r(m)`` of them.
The cost per generation is O(training samples), independent of the vocabulary; metrics come from the counts
of each sample's token, gathered per slot (each distinct token weighted by ``1 / count``).

It serves the fully synthetic, partially synthetic, fresh-real and accumulate regimes without decoding or
smoothing (``Config.sampler == "resample"``); the count kernel (:mod:`jaxcollapse.kernel`) serves the rest.
In generation ``m`` the slots of context ``r`` are, in order: ``[0, fresh)`` fresh real samples from
``p^(0)``, ``[fresh, keep)`` kept from the previous list, ``[keep, size)`` synthetic samples whose parents are
uniform over the previous list's ``T_prev`` samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from . import samplers
from .metrics import per_context as per_context_table
from .metrics import weighted

if TYPE_CHECKING:
    from .kernel import Config, Params


class ResampleState(NamedTuple):
    """One chain after generation ``generation``.

    Attributes:
      generation: int32 ``m``.
      tokens: ``(slots,)`` int32 training samples of ``p^(m)`` (token ids; slots past a context's size are unused).
      first: ``(contexts * vocab,)`` int32 token counts of ``p^(1)``'s training set (zeros before generation 1).
      first_support: ``(contexts,)`` int32 number of tokens of ``p^(1)`` with positive probability.
      collapse_time, collapse_token, chain_collapse: as in :class:`jaxcollapse.State`.
    """

    generation: jax.Array
    tokens: jax.Array
    first: jax.Array
    first_support: jax.Array
    collapse_time: jax.Array
    collapse_token: jax.Array
    chain_collapse: jax.Array


def supports(kind: str) -> bool:
    return kind in ("fully_synthetic", "partially_synthetic", "fresh_real", "accumulate")


def row_capacity(kind: str, real, synthetic, generations: int):
    """Slots each context needs over a run (NumPy or JAX int arrays ``(C,)``)."""
    if kind == "fully_synthetic":
        return synthetic
    if kind == "partially_synthetic":
        return real + synthetic
    if kind == "fresh_real":
        return real + synthetic
    if kind == "accumulate":
        return real + (generations - 1) * synthetic
    raise ValueError(kind)


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
        bits = jax.random.bits(key, size.shape, jnp.uint32).astype(jnp.uint64)
        return ((bits * size.astype(jnp.uint64)) >> 32).astype(jnp.int64)
    u = jax.random.uniform(key, size.shape, dtype=jnp.float64)
    return jnp.minimum(jnp.floor(u * size).astype(jnp.int64), size - 1)


def _fresh_real(key, row, params: Params, config: Config):
    """One token per element of ``row`` drawn from that context's row of ``p^(0)`` (float64 inverse CDF,
    53-bit uniforms)."""
    cdf = jnp.cumsum(jnp.asarray(params.initial, jnp.float64), axis=1)
    total = cdf[row, -1]
    u = jax.random.uniform(key, row.shape, dtype=jnp.float64)
    x = jnp.minimum(u * total, jnp.nextafter(total, jnp.zeros_like(total)))
    return samplers._row_search(cdf, row, x).astype(jnp.int32)


def init(key: jax.Array, params: Params, config: Config) -> ResampleState:
    """Generation 0. The list is empty; the model is ``p^(0)`` (measure it with :func:`jaxcollapse.measure`)."""
    del key
    c = config.contexts
    dirac = jnp.max(jnp.asarray(params.initial), axis=1) == 1.0
    whole = jnp.all(dirac | (params.weights <= 0))
    return ResampleState(
        generation=jnp.int32(0), tokens=jnp.zeros(config.slots, jnp.int32),
        first=jnp.zeros(c * config.vocab, jnp.int32), first_support=jnp.zeros(c, jnp.int32),
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
    return _advance(state._replace(first=counts, first_support=support), tokens, params, config)


def next_step(key: jax.Array, state: ResampleState, params: Params, config: Config) -> ResampleState:
    """Generation ``m = state.generation + 1 >= 2``."""
    m = state.generation + 1
    k_real, k_pick = jax.random.split(key)
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
    tokens = state.tokens.at[target].set(values, unique_indices=True)
    return _advance(state, tokens, params, config)


def size_at(m, params: Params, config: Config):
    """Training-set size ``(C,)`` of ``p^(m)``, ``m >= 1``."""
    return jnp.where(m == 1, params.first, _regions(jnp.maximum(m, 2), params, config)[2])


def _advance(state, tokens, params, config):
    m = state.generation + 1
    new = state._replace(generation=m, tokens=tokens)
    row, offset, start = _layout(params, config)
    head = tokens[jnp.clip(start, 0, config.slots - 1)]
    valid = offset < size_at(m, params, config)[row]
    other = valid & (tokens != head[row])
    if config.contexts == 1:
        dirac = ~jnp.any(other)[None]
    else:
        dirac = jnp.zeros(config.contexts, jnp.int32).at[row].add(other.astype(jnp.int32)) == 0
    newly = dirac & (state.collapse_time < 0)
    whole = jnp.all(dirac | (params.weights <= 0)) & (state.chain_collapse < 0)
    return new._replace(
        collapse_time=jnp.where(newly, m, state.collapse_time),
        collapse_token=jnp.where(newly, head, state.collapse_token),
        chain_collapse=jnp.where(whole, m, state.chain_collapse))


def _per_context(state: ResampleState, params: Params, config: Config) -> dict:
    """Every metric of :data:`jaxcollapse.METRICS` per context ``(C,)``, from the training list."""
    size = size_at(state.generation, params, config)
    counts, row, valid, flat = _counts(state.tokens, size, params, config)
    p0 = jnp.asarray(params.initial, jnp.float64)
    t = size.astype(jnp.float64)[row]
    c = jnp.maximum(counts[flat], 1).astype(jnp.float64)
    share = 1.0 / c                                           # each distinct token's slots add up to 1
    p = c / t
    q0 = p0.reshape(-1)[flat]
    q1 = state.first[flat].astype(jnp.float64) / params.first.astype(jnp.float64)[row]
    log_p = jnp.log(p)
    # Materialise the gathered values once: fused into each sum below, XLA would redo the gathers per metric.
    share, p, q0, q1, log_p = jax.lax.optimization_barrier((share, p, q0, q1, log_p))
    # One pass over the slots for every sum (XLA would otherwise re-read the slots once per metric).
    terms = jnp.stack([share, share * q0, share * q1, jnp.where(q0 > 0, share, 0.0),
                       jnp.where(q1 > 0, share, 0.0), p / t, share * jnp.abs(p - q0), share * jnp.abs(p - q1),
                       log_p / t, share * q0 * log_p, c], axis=0)
    terms = jnp.where(valid[None, :], terms, 0.0)
    if config.contexts == 1:
        sums = jnp.sum(terms[:10], axis=1, keepdims=True)
        max_count = jnp.max(terms[10])[None]
    else:
        sums = jnp.zeros((10, config.contexts), jnp.float64).at[:, row].add(terms[:10])
        max_count = jnp.zeros(config.contexts, jnp.float64).at[row].max(terms[10])
    max_prob = max_count / size.astype(jnp.float64)
    support, alive0, alive1, live0, live1, collision, l1_0, l1_1, neg_entropy, cross = sums
    # A token is lost when fewer tokens of p0 (of p1) are alive than p0 (p1) has: then, and only then, the
    # lost mass enters L1, missing mass and KL (1 - alive would leave rounding residue of 1e-16 otherwise).
    lost = jnp.round(live0) < jnp.sum(p0 > 0, axis=1)
    lost1 = jnp.round(live1) < state.first_support
    h0 = -jnp.sum(jnp.where(p0 > 0, p0 * jnp.log(jnp.where(p0 > 0, p0, 1.0)), 0.0), axis=1)
    missing = jnp.where(lost, jnp.maximum(1.0 - alive0, 0.0), 0.0)
    return {
        "collision": collision,
        "max_prob": max_prob,
        "l1_initial": l1_0 + missing,
        "l1_first": l1_1 + jnp.where(lost1, jnp.maximum(1.0 - alive1, 0.0), 0.0),
        "entropy": -neg_entropy,
        "support": jnp.round(support),
        "missing_mass": missing,
        "kl": jnp.where(lost, jnp.inf, jnp.maximum(-h0 - cross, 0.0)),
    }


def measure(state: ResampleState, params: Params, config: Config, per_context: bool = False) -> dict:
    """Context-weighted metrics of ``p^(m)`` (``m >= 1``); with ``per_context`` also ``"<name>/context"``.

    With more training samples than table cells, the metrics are taken on the ``(C, V)`` count table instead
    of per sample (the same values, fewer operations).
    """
    if config.slots > config.contexts * config.vocab:
        first = (state.first.reshape(config.contexts, config.vocab).astype(jnp.float64)
                 / params.first.astype(jnp.float64)[:, None])
        values = per_context_table(model(state, params, config), jnp.asarray(params.initial, jnp.float64), first)
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
