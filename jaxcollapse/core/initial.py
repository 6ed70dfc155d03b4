"""Initial distributions ``p^(0)``: a ``(contexts, vocab)`` table of next-token distributions.

A unigram model is the table with one context. Every constructor returns an :class:`Initial`, whose
``probs`` rows sum to 1 in float64 and whose ``weights`` (the contexts' shares of the data) sum to 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, check_float, check_int

#: Largest allowed |row sum - 1| of a user-given distribution before it is renormalised.
SUM_TOLERANCE = 1e-6


class Initial(NamedTuple):
    """The truth ``p^(0)``.

    Attributes:
      probs: float64 array ``(contexts, vocab)``; row ``j`` is ``P(next token | context j)``.
      weights: float64 array ``(contexts,)``, the contexts' shares of the tokens; sums to 1.
      labels: optional names of the vocabulary's tokens (length ``vocab``) for reports.
      context_labels: optional names of the contexts (length ``contexts``).
    """

    probs: np.ndarray
    weights: np.ndarray
    labels: tuple | None = None
    context_labels: tuple | None = None

    @property
    def contexts(self) -> int:
        return self.probs.shape[0]

    @property
    def vocab(self) -> int:
        return self.probs.shape[1]

    def __repr__(self) -> str:
        """One short line: contexts, vocabulary, support (tokens of positive probability; per-context range
        for a table), the weighted collision probability ``S0 = Σ_j w_j Σ_i p_ji²``, and whether it is
        labelled (an n-gram model of text). The arrays are ``probs`` and ``weights``."""
        try:
            p = np.asarray(self.probs, np.float64).reshape(self.probs.shape[0], -1)
            w = np.asarray(self.weights, np.float64).reshape(-1)
            live = (p > 0).sum(axis=1)
            lo, hi = (int(live.min()), int(live.max())) if live.size else (0, 0)
            support = str(lo) if lo == hi else f"{lo}-{hi}"
            s0 = float(w @ (p * p).sum(axis=1)) if w.shape[0] == p.shape[0] else float("nan")
            labels = ", labelled" if self.labels is not None else ""
            return f"Initial(contexts={p.shape[0]}, vocab={p.shape[1]}, support={support}, S0={s0:.5g}{labels})"
        except Exception:       # never let a malformed table break printing it
            return f"Initial(probs shape {getattr(self.probs, 'shape', '?')})"


def _vocab_support(vocab, support):
    vocab = check_int("vocab", vocab, low=1)
    support = vocab if support is None else check_int("support", support, low=1, high=vocab)
    return vocab, support


def _pad(head: np.ndarray, vocab: int) -> Initial:
    p = np.zeros((1, vocab))
    p[0, : head.size] = head / head.sum()
    return Initial(p, np.ones(1))


def uniform(vocab: int, support: int | None = None) -> Initial:
    """Uniform over the first ``support`` tokens (default all) of a ``vocab``-token vocabulary."""
    vocab, support = _vocab_support(vocab, support)
    return _pad(np.ones(support), vocab)


def zipf(vocab: int, exponent: float = 1.1, support: int | None = None) -> Initial:
    """Zipf law ``p_i ∝ i^-exponent`` on tokens ``i = 1..support``, zero on the rest of the vocabulary.

    ``zipf(600, 1.1, support=52)`` is the paper's distribution with 52 live tokens and ``Σp² ≈ 0.1``.
    """
    vocab, support = _vocab_support(vocab, support)
    exponent = check_float("exponent", exponent, low=0.0)
    return _pad(np.arange(1, support + 1, dtype=np.float64) ** -exponent, vocab)


def geometric(vocab: int, ratio: float = 0.5, support: int | None = None) -> Initial:
    """Geometric law ``p_i ∝ ratio^(i-1)`` on tokens ``i = 1..support``."""
    vocab, support = _vocab_support(vocab, support)
    ratio = check_float("ratio", ratio, low=0.0, high=1.0, low_open=True)
    return _pad(ratio ** np.arange(support, dtype=np.float64), vocab)


def dirichlet(vocab: int, *legacy, concentration: float = 1.0, contexts: int = 1, weights=None,
              seed: int = 0) -> Initial:
    """``contexts`` rows ``(contexts, vocab)`` drawn from a symmetric Dirichlet(``concentration``) with NumPy's
    generator at ``seed`` (an int >= 0); ``weights``: ``(contexts,)`` context weights (default uniform).

    The older order ``dirichlet(seed, vocab, concentration, contexts, weights)`` (two or more positional
    arguments) still works and warns (DeprecationWarning).
    """
    if legacy:
        if len(legacy) > 4:
            raise ConfigError("dirichlet takes dirichlet(vocab, *, concentration=, contexts=, weights=, seed=)")
        import warnings

        warnings.warn("dirichlet(seed, vocab, ...) is deprecated: use dirichlet(vocab, concentration=..., "
                      "contexts=..., seed=...)", DeprecationWarning, stacklevel=2)
        old = dict(zip(("vocab", "concentration", "contexts", "weights"), legacy))
        return dirichlet(old.pop("vocab"), **{"concentration": concentration, "contexts": contexts,
                                               "weights": weights, **old, "seed": vocab})
    vocab = check_int("vocab", vocab, low=1)
    contexts = check_int("contexts", contexts, low=1)
    concentration = check_float("concentration", concentration, low=0.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, low=0))
    probs = rng.dirichlet(np.full(vocab, concentration), size=contexts)
    # Tiny concentrations underflow to all-zero rows; put such a row's mass on one token.
    dead = probs.sum(axis=1) <= 0
    probs[dead, rng.integers(0, vocab, size=int(dead.sum()))] = 1.0
    return table(probs, weights)


def table(probs, weights=None, *, labels=None, context_labels=None) -> Initial:
    """Validate a user-given distribution.

    Args:
      probs: ``(vocab,)`` probability vector or ``(contexts, vocab)`` table of conditional distributions.
        Finite, non-negative, each row summing to 1 within ``SUM_TOLERANCE`` (then renormalised).
      weights: ``(contexts,)`` non-negative context weights (normalised here); default uniform.
    """
    try:
        kind = np.asarray(probs).dtype.kind
    except (TypeError, ValueError):
        kind = "O"
    if kind in ("b", "c"):                  # np.array(..., float64) would take True as 1 and drop imaginary parts
        raise ConfigError("initial distribution must hold real numbers, got "
                          + ("booleans" if kind == "b" else "complex numbers"))
    try:
        p = np.array(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("initial distribution must be an array of numbers") from None
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] < 1 or p.shape[0] < 1:
        raise ConfigError(f"initial distribution must be a (vocab,) vector or a (contexts, vocab) table "
                          f"with at least one token, got shape {np.shape(probs)}")
    if not np.all(np.isfinite(p)):
        raise ConfigError("initial distribution must be finite (found NaN or inf)")
    if np.any(p < 0):
        raise ConfigError(f"initial distribution must be non-negative (min {p.min():.3g})")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > SUM_TOLERANCE:
        where = "" if p.shape[0] == 1 else f" (context {worst})"
        raise ConfigError(f"initial distribution rows must sum to 1 within {SUM_TOLERANCE:g}, "
                          f"got {sums[worst]:.9g}{where}")
    p = p / sums[:, None]
    c = p.shape[0]
    if weights is None:
        w = np.full(c, 1.0 / c)
    else:
        try:
            w = np.array(weights, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError("weights must be an array of numbers") from None
        if w.shape != (c,):
            raise ConfigError(f"weights must have one entry per context ({c}), got {w.size}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ConfigError("weights must be finite, non-negative and not all zero")
        w = w / w.sum()
    if labels is not None and len(labels) != p.shape[1]:
        raise ConfigError(f"labels must have one entry per token ({p.shape[1]}), got {len(labels)}")
    if context_labels is not None and len(context_labels) != c:
        raise ConfigError(f"context_labels must have one entry per context ({c}), got {len(context_labels)}")
    return Initial(p, w, None if labels is None else tuple(labels),
                   None if context_labels is None else tuple(context_labels))


def as_initial(x) -> Initial:
    """An :class:`Initial` from an Initial (re-validated) or anything :func:`table` takes."""
    if isinstance(x, Initial):
        return table(x.probs, x.weights, labels=x.labels, context_labels=x.context_labels)
    return table(x)


def split_sizes(total: int, weights: np.ndarray) -> np.ndarray:
    """Split a token budget over contexts in proportion to ``weights`` (largest remainder; sums to ``total``)."""
    raw = total * np.asarray(weights, dtype=np.float64)
    base = np.floor(raw).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    return base
