"""The single-generation kernel: pure ``init`` / ``step`` functions on one chain.

The static :class:`Config` (shapes, regime kind, which options are on: what fixes a compilation) is kept
apart from the :class:`Params` pytree (the initial table, sample sizes, decoding and smoothing values), so
that chains are one ``vmap`` over keys and a sweep over settings is one ``vmap`` over ``Params``.

``step(key, state, params, config) -> (state, info)`` takes the chain's model ``p^(m-1)`` to ``p^(m)`` and
returns the metrics of ``p^(m)`` in ``info`` (not carried forward). The kernels need 64-bit types: call them
inside ``with jax.enable_x64(True):`` (``simulate`` does this for you).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import metrics as _metrics
from . import rng
from . import samplers
from ..errors import MAX_SMOOTHING, ConfigError, check_float, check_int
from .initial import as_initial
from .interface import Kernel
from .regimes import TABLE, Decoding, Regime, context_sizes


class Config(NamedTuple):
    """Static configuration; hashable, so it can be a ``jit`` static argument.

    Attributes:
      kind: regime name. contexts, vocab: table shape ``(C, V)``.
      window: history slots (``K`` of most-recent; 1 for random-history's running sum; 0 otherwise).
      temperature, top_k, top_p, smoothing: whether each option is applied.
      sampler: ``"tokens"`` or ``"binomial"``.
      capacity: token-buffer size of one multinomial call (bounds the draws of one generation).
      pool_capacity: largest pool of one context (accumulate-subsample), else 0.
      subsample: ``"sequential"`` or ``"sort"``, the accumulate-subsample algorithm
        (:func:`jaxcollapse.samplers.choose_subsampler`), else ``""``.
      pooled: whether the state keeps a per-chain count table (partially synthetic, accumulate, subsample).
      slots: length of the training-sample list of the ``"resample"`` kernel (:mod:`jaxcollapse.resample`), else 0.
      draws: new samples per generation ``m >= 2`` of the ``"resample"`` kernel (fresh real plus synthetic), else 0.
    """

    kind: str
    contexts: int
    vocab: int
    window: int
    temperature: bool
    top_k: bool
    top_p: bool
    smoothing: bool
    sampler: str
    capacity: int
    pool_capacity: int
    pooled: bool
    slots: int = 0
    draws: int = 0
    subsample: str = ""


class Params(NamedTuple):
    """Traced settings of one study (a pytree of arrays; ``vmap`` over it to sweep).

    Attributes:
      initial: ``(C, V)`` float64 truth ``p^(0)``.  weights: ``(C,)`` float64 context weights.
      first: ``(C,)`` int64 real samples fitting ``p^(1)``.
      real: ``(C,)`` int64 real samples per generation ``m >= 2`` (reused ``N``; fresh ``M - S``).
      synthetic: ``(C,)`` int64 synthetic samples per generation ``m >= 2``.
      train: ``(C,)`` int64 training-set size (accumulate-subsample).
      smoothing: add-alpha pseudo-count per token.  temperature, top_k, top_p: decoding values.
      slots: ``(C,)`` int64 slots per context of the resample kernel's training-sample list.
    """

    initial: jax.Array
    weights: jax.Array
    first: jax.Array
    real: jax.Array
    synthetic: jax.Array
    train: jax.Array
    smoothing: jax.Array
    temperature: jax.Array
    top_k: jax.Array
    top_p: jax.Array
    slots: jax.Array


class State(NamedTuple):
    """One chain after generation ``generation``.

    Attributes:
      generation: int32 ``m``.  model: ``(C, V)`` float64 ``p^(m)``.
      first: ``(C, V)`` float64 ``p^(1)`` (NaN before generation 1).
      pool: ``(C, V)`` int64 reused real counts (partially synthetic) or the accumulated pool; ``(C, 0)`` if unused.
      history: ``(window, C, V)`` float64 past models (most-recent ring buffer, or random-history's sum of the
        decoded models ``p^(0) .. p^(m)``).
      collapse_time: ``(C,)`` int32 first generation at which each context was a Dirac mass, -1 if none yet.
      collapse_token: ``(C,)`` int32 the token it collapsed onto, -1 if none yet.
      chain_collapse: int32 first generation at which every weighted context was a Dirac mass, -1 if none yet.
    """

    generation: jax.Array
    model: jax.Array
    first: jax.Array
    pool: jax.Array
    history: jax.Array
    collapse_time: jax.Array
    collapse_token: jax.Array
    chain_collapse: jax.Array


def build(initial, regime: Regime, *, generations: int, decoding: Decoding | None = None,
          smoothing: float = 0.0, sampler: str = "auto", memo: dict | None = None) -> tuple[Config, Params]:
    """Validate a study's settings and split them into the static :class:`Config` and traced :class:`Params`.

    ``memo``: a dict the caller keeps over many studies (a sweep's points): an ``initial`` already validated here
    with the same dict is not validated again, and studies whose per-context sizes and other settings equal an
    earlier one's (a grid of sizes x fractions rounds to few distinct sizes) get its result (the same objects).
    """
    if memo is None:
        initial = as_initial(initial)
    else:
        given, checked = memo.get(("initial", id(initial)), (None, None))
        if given is not initial:
            given, checked = memo[("initial", id(initial))] = (initial, as_initial(initial))
        initial = checked
    if not isinstance(regime, Regime):
        raise ConfigError(f"regime must be a jaxcollapse Regime (e.g. jaxcollapse.fully_synthetic(100)), got {regime!r}")
    decoding = Decoding() if decoding is None else decoding
    if not isinstance(decoding, Decoding):
        raise ConfigError(f"decoding must be a jaxcollapse Decoding, got {decoding!r}")
    smoothing = check_float("smoothing", smoothing, low=0.0, high=MAX_SMOOTHING)
    generations = check_int("generations", generations, low=1, high=1 << 24)
    if sampler not in samplers.SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(samplers.SAMPLERS)}; got {sampler!r}")
    c, v = initial.probs.shape
    w = initial.weights
    zeros = np.zeros(c, np.int64)
    kind = regime.kind
    synthetic = real = train = zeros
    if regime.synthetic is not None:
        synthetic = context_sizes("synthetic", regime.synthetic, w)
    if regime.real is not None:
        real = context_sizes("real", regime.real, w)
    spec = regime.spec
    first = real if spec.first == "real" else synthetic
    if "fraction" in spec.sizes:
        n_syn = np.rint(regime.fraction * real).astype(np.int64)
        synthetic, real = n_syn, real - n_syn
    if memo is not None:
        train = None if regime.train is None else tuple(np.ravel(regime.train).tolist())
        key = (id(initial), kind, regime.window, train, first.tobytes(), real.tobytes(),
               synthetic.tobytes(), decoding, smoothing, sampler, generations)
        if key not in memo:
            memo[key] = build(initial, regime, generations=generations, decoding=decoding, smoothing=smoothing,
                              sampler=sampler)
        return memo[key]
    window = 0
    pool_capacity = 0
    subsample = ""
    if "train" in spec.optional:
        train = real if regime.train is None else context_sizes("train", regime.train, w)
        if np.any(train > real):
            raise ConfigError("train must be at most real (N): the first model is fitted on train of the N real samples")
        pool_capacity = int(np.max(real + (generations - 1) * synthetic))
        subsample = samplers.choose_subsampler(c, v, int(np.max(train)), pool_capacity)
    elif spec.window == "window":
        window = regime.window
        if c == 1 and synthetic[0] < window:
            raise ConfigError(f"synthetic (n) must be >= window ({window}) so each model contributes a sample")
    elif spec.window == "sum":
        window = 1
    starved = (w > 0) & ((first == 0) | ((synthetic + real == 0) if not spec.pooled else False))
    if spec.window == "window":
        starved |= (w > 0) & (synthetic < window)
    if starved.any():
        warnings.warn(f"{int(starved.sum())} of {c} contexts get no sample in some generation (sizes split by "
                      f"weight round to 0, or fewer than one per model of the window); they keep their model "
                      f"and never collapse: give larger sizes or one size per context", stacklevel=3)
    per_gen = (real + synthetic).sum() if spec.fresh else synthetic.sum()
    capacity = int(max(first.sum(), per_gen))
    rows = sampler_rows(kind, c, window)
    slots_per_row = np.zeros(c, np.int64)
    can_resample = (spec.resample and not decoding.active and smoothing == 0
                    and np.all(first >= 1) and np.all(synthetic + real >= 1))
    if can_resample:
        slots_per_row = np.maximum(first, spec.largest_fit(real, synthetic, generations))
    if sampler == "resample" and not can_resample:
        served = ", ".join(k.name for k in TABLE.values() if k.resample)
        raise ConfigError(f"sampler 'resample' needs regime {served}, no decoding, no smoothing, and every "
                          "context's sizes >= 1")
    if sampler == "auto" and can_resample and slots_per_row.sum() <= min(4 * c * v, 1 << 24):
        method = "resample"
    else:
        method = samplers.choose_sampler(sampler, rows, v, capacity)
    if method != "resample":
        slots_per_row = np.zeros(c, np.int64)
    if method == "tokens" and capacity > 1 << 28:
        raise ConfigError(f"sampler 'tokens' needs a buffer of {capacity} tokens per chain (max 2^28); "
                          f"use sampler='binomial'")
    config = Config(kind=kind, contexts=c, vocab=v, window=window,
                    temperature=decoding.temperature != 1.0, top_k=decoding.top_k is not None,
                    top_p=decoding.top_p is not None, smoothing=smoothing > 0, sampler=method,
                    capacity=capacity if method == "tokens" else 0, pool_capacity=pool_capacity,
                    pooled=spec.pooled, slots=int(slots_per_row.sum()),
                    draws=int((synthetic + (real if spec.fresh else 0)).sum()) if method == "resample" else 0,
                    subsample=subsample)
    params = Params(
        initial=initial.probs, weights=w, first=first, real=real, synthetic=synthetic, train=train,
        smoothing=np.float64(smoothing), temperature=np.float64(decoding.temperature),
        top_k=np.int64(decoding.top_k or v), top_p=np.float64(decoding.top_p or 1.0), slots=slots_per_row)
    return config, params


def sampler_rows(kind: str, contexts: int, window: int) -> int:
    """Rows of one multinomial call of the count kernel: a row per context, per model of the window, and a
    second per context for the fresh real samples."""
    spec = TABLE[kind]
    if spec.window == "window":
        return contexts * max(window, 1)
    return contexts * (2 if spec.fresh else 1)


def decode(p: jax.Array, params: Params, config: Config) -> jax.Array:
    """Sampling weights ``(..., V)`` (unnormalised) of a model after temperature, top-k and top-p."""
    q = p
    if config.temperature:
        live = q > 0
        r = jnp.where(live, q / jnp.max(q, axis=-1, keepdims=True), 1.0)
        q = jnp.where(live, jnp.exp(jnp.log(r) / params.temperature), 0.0)
    if config.top_k or config.top_p:
        order = jnp.argsort(-q, axis=-1, stable=True)
        qs = jnp.take_along_axis(q, order, axis=-1)
        keep = jnp.ones(qs.shape, bool)
        if config.top_k:
            keep = jnp.broadcast_to(jnp.arange(q.shape[-1]) < params.top_k, qs.shape)
            qs = jnp.where(keep, qs, 0.0)
        if config.top_p:
            before = jnp.cumsum(qs, axis=-1) - qs
            keep = keep & (before < params.top_p * jnp.sum(qs, axis=-1, keepdims=True))
        inverse = jnp.argsort(order, axis=-1)
        q = jnp.where(jnp.take_along_axis(keep, inverse, axis=-1), q, 0.0)
    return q


def _draw(key, weights, sizes, config):
    return samplers.multinomial(key, weights, sizes, method=config.sampler, capacity=config.capacity)


def _fit(counts, total, previous, params, config):
    """Add-alpha fit ``(c + a) / (T + a V)``; a context with no samples keeps its previous model."""
    c = counts.astype(jnp.float64)
    t = total.astype(jnp.float64)[:, None]
    if config.smoothing:
        a = params.smoothing
        fitted = (c + a) / (t + a * config.vocab)
    else:
        fitted = c / jnp.where(t > 0, t, 1.0)
    return jnp.where(t > 0, fitted, previous)


def init(key: jax.Array, params: Params, config: Config) -> State:
    """Generation 0: the model is the truth ``p^(0)``. ``key`` is unused (kept for a uniform signature)."""
    del key
    c, v = config.contexts, config.vocab
    p0 = jnp.asarray(params.initial, jnp.float64)
    history = jnp.zeros((config.window, c, v), jnp.float64)
    if config.window:
        history = history.at[0].set(p0)
    state = State(
        generation=jnp.int32(0), model=p0, first=jnp.full((c, v), jnp.nan),
        pool=jnp.zeros((c, v if config.pooled else 0), jnp.int64), history=history,
        collapse_time=jnp.full((c,), -1, jnp.int32), collapse_token=jnp.full((c,), -1, jnp.int32),
        chain_collapse=jnp.int32(-1))
    return _track_collapse(state, params)


def _track_collapse(state: State, params: Params) -> State:
    # a support of one token (the same as max == 1 for a fitted model, counts / total; not for p^(0) = [1e-300, ...])
    alive = state.model > 0
    # the token of a one-token support as a sum, which vectorizes (XLA's CPU argmax does not); read only there
    token = jnp.sum(jnp.where(alive, jnp.arange(alive.shape[1], dtype=jnp.int32), 0), axis=1, dtype=jnp.int32)
    return _metrics.record_collapse(state, jnp.sum(alive, axis=1) == 1, token, params.weights)


def first_step(key: jax.Array, state: State, params: Params, config: Config) -> State:
    """Generation 1 from generation 0: the fit on ``first`` real samples from ``p^(0)`` per context (the first
    ``train`` of them under accumulate-subsample). The same computation as :func:`next_step`, which serves every
    generation."""
    return next_step(key, state, params, config)


def _model_draw(keys, m, state, params, config):
    """This generation's draw from the previous model, ``(C, V)`` int64, and its sizes ``(C,)``: of the decoded
    model and ``synthetic`` samples per context, or in generation 1 of ``p^(0)`` itself (the state's model,
    not decoded) and ``first``: the real samples the first model is fitted on."""
    one = m == 1
    sizes = jnp.where(one, params.first, params.synthetic)
    return _draw(keys[0], jnp.where(one, state.model, decode(state.model, params, config)), sizes, config), sizes


def _most_recent(keys, m, state, params, config):
    slots = jnp.arange(config.window)
    made = (m - 1) - jnp.mod(m - 1 - slots, config.window)
    k_eff = jnp.minimum(config.window, m)
    # generation 1: one model made (p^(0), slot 0, not decoded), ``first`` samples of it
    each = jnp.where(m == 1, params.first, params.synthetic // k_eff)
    decoded = jnp.where((made >= 1)[:, None, None], decode(state.history, params, config), state.history)
    sizes = jnp.where((made >= 0)[:, None], each[None, :], 0)
    counts = _draw(keys[0], decoded.reshape(-1, config.vocab), sizes.reshape(-1), config)
    counts = counts.reshape(config.window, config.contexts, config.vocab).sum(axis=0)
    return counts, k_eff * each, state.pool


def _random_history(keys, m, state, params, config):
    # history[0] is p^(0) in generation 1 (the sum over the models made so far)
    sizes = jnp.where(m == 1, params.first, params.synthetic)
    return _draw(keys[0], state.history[0], sizes, config), sizes, state.pool


def _fresh_real(keys, m, state, params, config):
    # rows: the real samples from p^(0), then the synthetic ones (none in generation 1, where all are real)
    one = m == 1
    weights = jnp.concatenate([jnp.asarray(params.initial, jnp.float64), decode(state.model, params, config)])
    sizes = jnp.concatenate([jnp.where(one, params.first, params.real), jnp.where(one, 0, params.synthetic)])
    both = _draw(keys[0], weights, sizes, config)
    return (both[: config.contexts] + both[config.contexts:],
            jnp.where(one, params.first, params.real + params.synthetic), state.pool)


def _fully_synthetic(keys, m, state, params, config):
    counts, sizes = _model_draw(keys, m, state, params, config)
    return counts, sizes, state.pool


def _partially_synthetic(keys, m, state, params, config):
    # the pool holds the N real samples of generation 1
    one = m == 1
    draw, _ = _model_draw(keys, m, state, params, config)
    return (state.pool + draw, jnp.where(one, params.first, params.real + params.synthetic),
            jnp.where(one, draw, state.pool))


def _accumulate(keys, m, state, params, config):
    pool = state.pool + _model_draw(keys, m, state, params, config)[0]
    return pool, pool.sum(axis=1), pool


def _accumulate_subsample(keys, m, state, params, config):
    pool = state.pool + _model_draw(keys, m, state, params, config)[0]
    counts = samplers.hypergeometric_subsample(keys[1], pool, params.train, method=config.subsample,
                                               capacity=config.pool_capacity)
    return counts, params.train, pool


#: How each regime makes the training data of generation ``m >= 1`` (generation 1: real samples from ``p^(0)``):
#: ``data(keys, m, state, params, config) -> (counts (C, V) int64, total (C,) int64, pool (C, V) int64)``.
DATA = {"fully_synthetic": _fully_synthetic, "partially_synthetic": _partially_synthetic,
        "fresh_real": _fresh_real, "accumulate": _accumulate, "accumulate_subsample": _accumulate_subsample,
        "most_recent": _most_recent, "random_history": _random_history}


def next_step(key: jax.Array, state: State, params: Params, config: Config) -> State:
    """Generation ``m = state.generation + 1 >= 2`` under the configured regime."""
    m = state.generation + 1
    counts, total, pool = DATA[config.kind](rng.split(key), m, state, params, config)
    model = _fit(counts, total, state.model, params, config)
    return _advance(state, model, pool, params, config)


def _advance(state: State, model, pool, params, config) -> State:
    m = state.generation + 1
    history = state.history
    window = TABLE[config.kind].window
    if window == "window":
        history = history.at[jnp.mod(m, config.window)].set(model)
    elif window == "sum":
        # Each earlier model is one equally likely source: add its decoded distribution normalised to mass 1.
        q = decode(model, params, config)
        history = history + (q / jnp.sum(q, axis=-1, keepdims=True))[None]
    first = jnp.where(m == 1, model, state.first)
    new = state._replace(generation=m, model=model, first=first, pool=pool, history=history)
    return _track_collapse(new, params)


def measure(state: State, params: Params, per_context: bool = False) -> dict:
    """Metrics of ``state.model``: a dict of context-weighted scalars; with ``per_context`` also ``(C,)`` arrays
    under ``"<name>/context"``."""
    values = _metrics.per_context(state.model, jnp.asarray(params.initial, jnp.float64), state.first)
    info = _metrics.weighted(values, params.weights)
    if per_context:
        info.update({f"{k}/context": val for k, val in values.items()})
    return info


def freezes(config: Config) -> bool:
    """Whether a chain whose every context is a Dirac mass keeps its model unchanged (and its metrics) in
    every later generation: fully synthetic data from a point mass is that point mass, whatever the sampler,
    decoding or smoothing (smoothing never leaves a point mass, unless the vocabulary has one token, which
    is then fixed too). Other regimes mix in other models (the real data, the history) and are not skipped."""
    return config.kind == "fully_synthetic"


def _truth(params: Params, config: Config, per_context: bool = False) -> dict:
    return measure(init(None, params, config), params, per_context)


def _kernel_step(key, state, params, config):
    return next_step(key, state, params, config), {}


KERNEL = Kernel(
    init=init,
    first=_kernel_step,
    step=_kernel_step,
    measure=lambda state, params, config, per_context=False: measure(state, params, per_context),
    truth=_truth,
    model=lambda state, params, config: state.model,
    freezes=freezes,
    first_in_step=lambda config: True,
)


def step(key: jax.Array, state: State, params: Params, config: Config) -> tuple[State, dict]:
    """One generation: ``p^(m-1) -> p^(m)``; returns the new state and the metrics of ``p^(m)``. Every generation,
    the first included, is one computation, so chains at different generations run it under one ``vmap``."""
    new = next_step(key, state, params, config)
    return new, measure(new, params)
