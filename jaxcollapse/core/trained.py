"""Gradient-trained estimators: each generation's model is trained with optax on that generation's data.

The paper's model (``model.md`` §1) is a linear softmax over one-hot contexts, a logits table ``W`` of shape
``(contexts, vocab)``, trained with cross-entropy; its optimum is the empirical conditional frequency
(Appendix B.1), which is what the counting engine (:func:`jaxcollapse.simulate`) uses directly. Here the
model is *trained*, so finite training, weight decay and label smoothing can be studied:

``"count"``      the counting estimate ``counts / total`` (the engine's fit; the reference).
``"softmax"``    logits ``W (C, V)``, one row per context, nothing shared: the paper's model.
``"embedding"``  a neural n-gram model (Bengio et al. 2003): token embeddings ``E (V, d)`` of the context's
                 ``K - 1`` tokens, concatenated (``(K-1)·d``) or summed (``d``), a ``tanh`` hidden layer of
                 ``hidden`` units (0 = none: logits additive in the context tokens), then a softmax layer
                 ``(·, V)`` plus a bias.
                 Contexts share ``E`` and the output layer, so what is learned in one leaks into others.

Training data of a generation are the counts ``(C, V)`` the regime produces. The loss is the token-level
cross-entropy ``-Σ_jk c_jk log q_jk / Σ c`` (equal to the mean loss over the generation's tokens), with label
smoothing ``ε`` replacing each token's target by ``(1-ε)·onehot + ε/V``. ``batch = 0`` trains on the whole
generation (exact gradient); ``batch = B`` draws each step's minibatch as ``B`` tokens with replacement from
the generation's tokens. The optimizer is an optax chain ``preconditioner → add_decayed_weights(wd) →
scale(-lr)`` (decoupled weight decay, AdamW-style for ``adam``). Each generation trains from a fresh
initialisation (zero logits; small random embeddings) unless ``warm_start``. A context that gets no data in
a generation keeps its previous model under ``count`` and ``softmax`` (no data, no information); the
embedding model predicts it from the shared parameters.

A trained softmax never puts exactly zero mass on a token, so "lost" needs a threshold: a token counts as
alive when its probability exceeds ``floor`` (default 1e-6), which defines ``support``, ``missing_mass`` and
collapse (one alive token in every context) for trained estimators; ``count`` uses ``p > 0`` as the engine.

Chains are ``vmap``-ed, training steps and generations are ``lax.scan``-ned; chain ``i`` uses
``fold_in(key, i)`` and generation ``m`` ``fold_in(fold_in(key, i), m)``, as in ``simulate``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from . import autoregressive as _ar
from . import count as kernel
from . import rng, samplers
from . import metrics as _metrics
from ..errors import ConfigError, check_float, check_int
from .initial import as_initial
from .regimes import TABLE, Regime
from .interface import Kernel

ESTIMATORS = ("count", "softmax", "embedding")
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop", "adagrad")
COMBINES = ("concat", "sum")
#: Regimes the trained estimators run under (the engine's regimes whose data are plain fresh/pooled counts).
TRAINED_REGIMES = tuple(k.name for k in TABLE.values() if k.trained) + ("autoregressive",)
#: Most chains per compiled call.
DEFAULT_CHUNK = 256
#: Bytes of one chunk's per-generation arrays that the default chunk size aims at: a training step sweeps over
#: every chain's tables ``steps`` times, so a chunk that stays in the CPU's cache runs faster per chain (on the
#: 2-core x86-64 CPU, the order-3 text model's generation took about half the time per chain in chunks of 4 as
#: in chunks of 32 or more, with the same trajectories).
CHUNK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class Training:
    """How each generation's model is trained (ignored by the ``count`` estimator).

    Attributes:
      optimizer: one of ``OPTIMIZERS``. learning_rate: > 0. steps: optimizer steps per generation, >= 1.
      batch: tokens per minibatch (drawn with replacement), 0 = the whole generation (exact gradient).
      weight_decay: decoupled weight decay, >= 0. label_smoothing: ``ε`` in [0, 1).
      dim: embedding size ``d`` (embedding estimator). hidden: tanh hidden units (0 = none). combine: ``"concat"`` or ``"sum"`` of the context's
        token embeddings. init_scale: standard deviation scale of the random output layer (embedding).
      warm_start: start each generation from the previous generation's parameters.
      floor: a token with probability <= floor counts as lost (support, missing mass, collapse).
    """

    optimizer: str = "adam"
    learning_rate: float = 0.1
    steps: int = 100
    batch: int = 0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    dim: int = 16
    hidden: int = 64
    combine: str = "concat"
    init_scale: float = 0.1
    warm_start: bool = False
    floor: float = 1e-6

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.combine not in COMBINES:
            raise ConfigError(f"combine must be one of {', '.join(COMBINES)}; got {self.combine!r}")
        check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_int("steps", self.steps, low=1, high=1 << 24)
        check_int("batch", self.batch, low=0, high=1 << 26)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        check_int("dim", self.dim, low=1, high=1 << 16)
        check_int("hidden", self.hidden, low=0, high=1 << 16)
        check_float("init_scale", self.init_scale, low=0.0)
        check_float("floor", self.floor, low=0.0, high=1.0, high_open=True)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


class Config(NamedTuple):
    """Static settings of a trained study (hashable; fixes a compilation)."""

    estimator: str
    optimizer: str
    steps: int
    batch: int
    dim: int
    hidden: int
    combine: str
    warm_start: bool
    kind: str
    contexts: int
    vocab: int
    width: int
    sampler: str
    capacity: int
    sequences: int = 0
    length: int = 0


class Params(NamedTuple):
    """Traced settings: the truth, sample sizes, context structure and training hyper-parameters.

    Attributes:
      initial: ``(C, V)`` truth. weights: ``(C,)`` context weights. first, real, synthetic: ``(C,)`` int64
      sizes (as in :class:`jaxcollapse.Params`; autoregressive: totals in element 0). ctx_ids: ``(C, K-1)``
      context tokens. nxt: ``(C, V)`` transitions. joint_cdf: ``(C·V,)`` cumulative truth joint.
      learning_rate, weight_decay, label_smoothing, init_scale, floor: scalars.
    """

    initial: jax.Array
    weights: jax.Array
    first: jax.Array
    real: jax.Array
    synthetic: jax.Array
    ctx_ids: jax.Array
    nxt: jax.Array
    joint_cdf: jax.Array
    learning_rate: jax.Array
    weight_decay: jax.Array
    label_smoothing: jax.Array
    init_scale: jax.Array
    floor: jax.Array


class State(NamedTuple):
    """One chain after ``generation``: its model ``probs (C, V)``, the trained parameters, ``first = p^(1)``,
    the reused/accumulated ``pool (C, V)`` counts, and collapse records as :class:`jaxcollapse.State`."""

    generation: jax.Array
    probs: jax.Array
    weights: dict
    first: jax.Array
    pool: jax.Array
    collapse_time: jax.Array
    collapse_token: jax.Array
    chain_collapse: jax.Array


# ------------------------------------------------------------------------------------------------
# models


def init_weights(key: jax.Array, config: Config, params: Params) -> dict:
    """Fresh parameters: zero logits (softmax), random embeddings and output layer (embedding), {} (count)."""
    c, v = config.contexts, config.vocab
    if config.estimator == "softmax":
        return {"logits": jnp.zeros((c, v), jnp.float64)}
    if config.estimator == "embedding":
        ke, kh, ko = rng.split(key, 3)
        fan_in = config.dim * (config.width if config.combine == "concat" else min(config.width, 1))
        w = {"embed": jax.random.normal(ke, (v, config.dim), jnp.float64), "bias": jnp.zeros((v,), jnp.float64)}
        if config.hidden and fan_in:
            w["hidden"] = jax.random.normal(kh, (fan_in, config.hidden), jnp.float64) / math.sqrt(fan_in)
            w["hidden_bias"] = jnp.zeros((config.hidden,), jnp.float64)
            fan_in = config.hidden
        w["out"] = jax.random.normal(ko, (fan_in, v), jnp.float64) * params.init_scale / math.sqrt(max(fan_in, 1))
        return w
    return {}


def logits(weights: dict, config: Config, params: Params) -> jax.Array:
    """``(C, V)`` logits of every context."""
    if config.estimator == "softmax":
        return weights["logits"]
    e = weights["embed"][params.ctx_ids]
    h = e.reshape(config.contexts, -1) if config.combine == "concat" else e.sum(axis=1)
    if config.combine == "sum" and config.width == 0:
        h = h[:, :0]
    if "hidden" in weights:
        h = jnp.tanh(h @ weights["hidden"] + weights["hidden_bias"])
    return h @ weights["out"] + weights["bias"]


def loss(weights: dict, counts: jax.Array, config: Config, params: Params) -> jax.Array:
    """Token-level cross-entropy (nats per token) of the counts ``(C, V)`` with label smoothing."""
    logp = jax.nn.log_softmax(logits(weights, config, params), axis=1)
    rows = counts.sum(axis=1, keepdims=True)
    eps = params.label_smoothing
    target = (1.0 - eps) * counts + eps * rows / config.vocab
    return -jnp.sum(target * logp) / jnp.maximum(rows.sum(), 1.0)


def optimizer(config: Config, params: Params) -> optax.GradientTransformation:
    """The optax chain ``preconditioner → add_decayed_weights → scale(-learning_rate)``."""
    pre = {"adam": optax.scale_by_adam, "sgd": optax.identity, "momentum": lambda: optax.trace(decay=0.9),
           "rmsprop": optax.scale_by_rms, "adagrad": optax.scale_by_rss}[config.optimizer]()
    return optax.chain(pre, optax.add_decayed_weights(params.weight_decay), optax.scale(-params.learning_rate))


def minibatch(key: jax.Array, counts: jax.Array, size: int) -> jax.Array:
    """``(C, V)`` float64 counts of ``size`` tokens drawn with replacement from the tokens counted in ``counts``."""
    c, v = counts.shape
    cdf = jnp.cumsum(counts.reshape(-1))
    idx = _ar._search(cdf, rng.uniform(key, (size,)))
    return jnp.zeros(c * v, jnp.float64).at[idx].add(1.0).reshape(c, v)


def fit(key: jax.Array, counts: jax.Array, weights: dict, config: Config, params: Params) -> dict:
    """Train ``weights`` for ``config.steps`` optimizer steps on ``counts (C, V)``; returns the trained weights."""
    opt = optimizer(config, params)
    data = counts.astype(jnp.float64)
    grad = jax.grad(loss)

    def step(carry, i):
        w, s = carry
        batch = minibatch(rng.fold_in(key, i), data, config.batch) if config.batch else data
        updates, s = opt.update(grad(w, batch, config, params), s, w)
        return (optax.apply_updates(w, updates), s), None

    (w, _), _ = lax.scan(step, (weights, opt.init(weights)), jnp.arange(config.steps))
    return w


def probabilities(weights: dict, config: Config, params: Params) -> jax.Array:
    """``(C, V)`` float64 next-token distributions of trained weights."""
    return jax.nn.softmax(logits(weights, config, params), axis=1)


def default_chunk(config: Config) -> int:
    """Chains per compiled call when none is given: as many as keep about ``CHUNK_BYTES`` of per-generation
    arrays (8 ``(C, V)`` float64 tables per chain, and two int64 slots per token of autoregressive text), between
    1 and ``DEFAULT_CHUNK``. Results do not depend on it."""
    per_chain = 8 * (8 * config.contexts * config.vocab + 2 * config.sequences * config.length)
    return max(1, min(DEFAULT_CHUNK, CHUNK_BYTES // per_chain))


# ------------------------------------------------------------------------------------------------
# building a study


def build(initial, regime, *, generations: int, estimator: str = "softmax", training: Training | None = None,
          context_tokens=None) -> tuple[Config, Params]:
    """Validate a trained study and split it into static :class:`Config` and traced :class:`Params`.

    Args:
      initial: the truth (an :class:`~jaxcollapse.Initial`, table, or a :class:`~jaxcollapse.Corpus`).
      regime: a :class:`~jaxcollapse.Regime` of kind fully_synthetic, partially_synthetic, fresh_real or
        accumulate, or an :class:`~jaxcollapse.core.autoregressive.Autoregressive`.
      context_tokens: ``(C, K-1)`` token ids of the contexts (default: read from the table's labels; needed by
        the embedding estimator and the autoregressive regime when there is more than one context).
    """
    tokenizer = "chars"
    if hasattr(initial, "initial") and hasattr(initial, "tokenizer"):
        tokenizer = initial.tokenizer
        initial = initial.initial
    initial = as_initial(initial)
    training = Training() if training is None else training
    if not isinstance(training, Training):
        raise ConfigError(f"training must be a jaxcollapse.trained.Training, got {training!r}")
    if estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
    kind = getattr(regime, "kind", None)
    if kind not in TRAINED_REGIMES:
        raise ConfigError(f"regime must be one of {', '.join(TRAINED_REGIMES)} for trained estimators and "
                          f"autoregressive generation; got {kind or regime!r}")
    generations = check_int("generations", generations, low=1, high=1 << 24)
    c, v = initial.probs.shape
    need_ctx = estimator == "embedding" or kind == "autoregressive"
    if context_tokens is not None:
        ctx_ids = np.asarray(context_tokens)
        if ctx_ids.ndim != 2 or ctx_ids.shape[0] != c or not np.issubdtype(ctx_ids.dtype, np.integer) \
                or (ctx_ids.size and (ctx_ids.min() < 0 or ctx_ids.max() >= v)):
            raise ConfigError(f"context_tokens must be a ({c}, K-1) integer array of token ids in [0, {v - 1}]")
        ctx_ids = ctx_ids.astype(np.int64)
    elif need_ctx:
        ctx_ids = _ar.context_tokens(initial, tokenizer)
    else:
        ctx_ids = np.zeros((c, 0), np.int64)
    w = initial.weights
    joint = (w[:, None] * initial.probs).reshape(-1)
    sequences = length = 0
    if kind == "autoregressive":
        first = np.array([regime.tokens], np.int64)
        synthetic = np.array([regime.synthetic_tokens], np.int64)
        real = first - synthetic
        nxt = _ar.transitions(ctx_ids, v)
        sequences, length = regime.sequences, regime.length
        if sequences * length > 1 << 26:
            raise ConfigError(f"autoregressive text of {sequences * length} tokens per chain is too large "
                              "(max 2^26); lower tokens")
        sampler, capacity = "tokens", int(regime.tokens)
    else:
        if not isinstance(regime, Regime):
            raise ConfigError(f"regime must be a jaxcollapse Regime, got {regime!r}")
        kconfig, kparams = kernel.build(initial, regime, generations=generations, sampler="binomial")
        first, real, synthetic = kparams.first, kparams.real, kparams.synthetic
        capacity = int(max(first.sum(), (real + synthetic).sum()))
        sampler = samplers.choose_sampler("auto", 2 * c, v, capacity)
        capacity = capacity if sampler == "tokens" else 0
        nxt = np.zeros((c, v), np.int32)
    config = Config(estimator=estimator, optimizer=training.optimizer, steps=training.steps,
                    batch=training.batch, dim=training.dim, hidden=training.hidden, combine=training.combine,
                    warm_start=training.warm_start, kind=kind, contexts=c, vocab=v, width=ctx_ids.shape[1],
                    sampler=sampler, capacity=capacity, sequences=sequences, length=length)
    params = Params(initial=initial.probs, weights=w, first=first, real=real, synthetic=synthetic,
                    ctx_ids=ctx_ids, nxt=nxt, joint_cdf=np.cumsum(joint),
                    learning_rate=np.float64(training.learning_rate),
                    weight_decay=np.float64(training.weight_decay),
                    label_smoothing=np.float64(training.label_smoothing),
                    init_scale=np.float64(training.init_scale),
                    floor=np.float64(training.floor if estimator != "count" else 0.0))
    return config, params


# ------------------------------------------------------------------------------------------------
# one chain


def init(key: jax.Array, params: Params, config: Config) -> State:
    """Generation 0: the model is the truth."""
    c, v = config.contexts, config.vocab
    p0 = jnp.asarray(params.initial, jnp.float64)
    state = State(generation=jnp.int32(0), probs=p0, weights=init_weights(key, config, params),
                  first=jnp.full((c, v), jnp.nan), pool=jnp.zeros((c, v), jnp.int64),
                  collapse_time=jnp.full((c,), -1, jnp.int32), collapse_token=jnp.full((c,), -1, jnp.int32),
                  chain_collapse=jnp.int32(-1))
    return _track(state, params)


def data(key: jax.Array, state: State, params: Params, config: Config):
    """The training counts ``(C, V)`` int64 of generation ``state.generation + 1`` and the new pool ``(C, V)``
    int64. Generation 1 is real data alone: ``first`` samples of ``p^(0)`` per context (the same draws, with no
    synthetic samples, as a later generation's)."""
    first = state.generation == 0
    p0 = jnp.asarray(params.initial, jnp.float64)
    if config.kind == "autoregressive":
        kr, ks = rng.split(key)
        real = _ar.real_pairs(kr, params.joint_cdf, jnp.where(first, params.first[0], params.real[0]),
                              config.capacity, p0.shape)
        text, _ = _ar.generate(ks, state.probs, params.weights, params.nxt, sequences=config.sequences,
                               length=config.length, budget=jnp.where(first, 0, params.synthetic[0]))
        return real + text, state.pool

    def draw(k, w, sizes):
        return samplers.multinomial(k, w, sizes, method=config.sampler, capacity=config.capacity)

    k1, k2 = rng.split(key)
    if config.kind == "fresh_real":
        real = draw(k1, p0, jnp.where(first, params.first, params.real))
        synth = draw(k2, state.probs, jnp.where(first, 0, params.synthetic))
        return real + synth, state.pool
    source = jnp.where(first, p0, state.probs)
    new = draw(k1, source, jnp.where(first, params.first, params.synthetic))
    if config.kind == "fully_synthetic":
        return new, state.pool
    if config.kind == "partially_synthetic":
        return jnp.where(first, new, state.pool + new), jnp.where(first, new, state.pool)
    pool = jnp.where(first, new, state.pool + new)  # accumulate
    return pool, pool


def step(key: jax.Array, state: State, params: Params, config: Config) -> tuple[State, dict]:
    """Generation ``m = state.generation + 1 >= 1`` (generation 1: fitted on real samples): data, then fit.
    ``info["context_l1"]``: the L1 distance between the contexts' shares of the training data and the context
    weights (drift of context frequencies)."""
    kd, kt, ki = rng.split(key, 3)
    counts, pool = data(kd, state, params, config)
    rows = counts.sum(axis=1)
    weights = state.weights
    if config.estimator == "count":
        fitted = counts.astype(jnp.float64) / jnp.maximum(rows, 1)[:, None]
    else:
        start = state.weights if config.warm_start else init_weights(ki, config, params)
        weights = fit(kt, counts, start, config, params)
        fitted = probabilities(weights, config, params)
    if config.estimator != "embedding":
        fitted = jnp.where((rows > 0)[:, None], fitted, state.probs)
    new = state._replace(generation=state.generation + 1, probs=fitted, weights=weights,
                         first=jnp.where(state.generation == 0, fitted, state.first), pool=pool)
    drift = jnp.sum(jnp.abs(rows / jnp.maximum(rows.sum(), 1) - params.weights))
    return _track(new, params), {"context_l1": drift}


def _alive(probs, params):
    return probs > params.floor


def _track(state: State, params: Params) -> State:
    return _metrics.record_collapse(state, jnp.sum(_alive(state.probs, params), axis=1) == 1,
                                    jnp.argmax(state.probs, axis=1).astype(jnp.int32), params.weights)


def measure(state: State, params: Params, per_context: bool = False) -> dict:
    """The engine's metrics of ``state.probs``; support and missing mass count tokens above ``floor``."""
    p0 = jnp.asarray(params.initial, jnp.float64)
    values = _metrics.per_context(state.probs, p0, state.first)
    alive = _alive(state.probs, params)
    values["support"] = jnp.sum(alive, axis=1).astype(jnp.float64)
    values["missing_mass"] = jnp.sum(jnp.where(alive, 0.0, p0), axis=1)
    info = _metrics.weighted(values, params.weights)
    if per_context:
        info.update({f"{k}/context": val for k, val in values.items()})
    return info


def _truth(params: Params, config: Config, per_context: bool = False) -> dict:
    return measure(init(jax.random.key(0), params, config), params, per_context)


KERNEL = Kernel(
    init=lambda key, params, config: init(rng.fold_in(key, 0), params, config),
    first=step,
    step=step,
    measure=lambda state, params, config, per_context=False: measure(state, params, per_context),
    truth=_truth,
    model=lambda state, params, config: state.probs,
    freezes=lambda config: False,
    first_in_step=lambda config: True,
)

