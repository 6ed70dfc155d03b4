"""Data regimes: what each generation's model is fitted on (Seddik et al., arXiv 2404.05090 §3.1-3.2, for the
fully and partially synthetic regimes; all of them in the README's regime table), and decoding options.

Every regime fits ``p^(1)`` on real samples drawn from ``p^(0)``; they differ in generations ``m >= 2``:

========================  ===================================================================================
``fully_synthetic``       ``n`` fresh samples from ``p^(m-1)``.
``partially_synthetic``   the same ``N`` real samples as ``p^(1)`` (reused) plus ``n`` fresh samples from
                          ``p^(m-1)``: ``p^(m) = (R + Mult(n, p^(m-1))) / (N + n)``.
``fresh_real``            ``M - S`` fresh real samples from ``p^(0)`` plus ``S = round(fraction·M)`` samples
                          from ``p^(m-1)``; ``p^(1)`` is fitted on ``M`` real samples.
``accumulate``            all data so far: the ``N`` real samples plus ``n`` synthetic samples appended per
                          generation, each batch drawn from the model of its generation.
``accumulate_subsample``  as ``accumulate``, but each model is fitted on ``train`` samples drawn without
                          replacement from the pool (``p^(1)``: ``train`` of the ``N`` real samples).
``most_recent``           ``floor(n / k)`` samples from each of the last ``k = min(window, m)`` models
                          ``p^(m-k) .. p^(m-1)`` (``p^(0)``, the truth, while it is in the window).
``random_history``        each of ``n`` samples picks its source uniformly among ``p^(0) .. p^(m-1)``;
                          equivalently ``n`` i.i.d. samples from the average of those models.
========================  ===================================================================================

Sizes are numbers of samples per generation: an int is the total, split over the contexts of an n-gram table
in proportion to the context weights; a sequence gives each context's size. ``p^(1)`` is fitted on ``n``
real samples in the fully synthetic, most-recent and random-history regimes, on ``N`` in the partially
synthetic and accumulate regimes, and on ``M`` in the fresh-real regime.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import numpy as np

from ..errors import MIN_TEMPERATURE, ConfigError, check_float, check_int
from .initial import split_sizes

Size = Union[int, Sequence[int], np.ndarray]



from .regime_table import REGIMES, TABLE, RegimeKind  # noqa: E402,F401  (re-exported)

#: Largest sample size of one context in one generation (counts are int64, probabilities float64 exact).
MAX_SIZE = 1 << 53


@dataclasses.dataclass(frozen=True)
class Regime:
    """A data regime and its sample sizes (see the module docstring for each ``kind``).

    Attributes:
      kind: one of ``REGIMES``.
      synthetic: ``n``, synthetic samples per generation (fully/partially synthetic, accumulate,
        accumulate-subsample, most-recent, random-history).
      real: ``N``, real samples (partially synthetic, accumulate, accumulate-subsample), or ``M``, the
        training-set size (fresh real).
      fraction: synthetic fraction ``λ`` of the fresh-real regime, in [0, 1].
      window: ``K`` of the most-recent regime.
      train: training-set size of the accumulate-subsample regime (default ``real``).
    """

    kind: str
    synthetic: Size | None = None
    real: Size | None = None
    fraction: float | None = None
    window: int | None = None
    train: Size | None = None

    def __post_init__(self):
        if self.kind not in TABLE:
            raise ConfigError(f"regime must be one of {', '.join(REGIMES)}; got {self.kind!r}")
        need = TABLE[self.kind].sizes
        for field in need:
            if getattr(self, field) is None:
                raise ConfigError(f"regime {self.kind} needs {_FIELD_NAMES[field]}")
        if self.fraction is not None:
            check_float("fraction", self.fraction, low=0.0, high=1.0)
        if self.window is not None:
            check_int("window", self.window, low=1, high=1 << 16)

    @property
    def spec(self) -> RegimeKind:
        """This regime's entry of :data:`TABLE`."""
        return TABLE[self.kind]

    def describe(self) -> str:
        order = ("real", "synthetic", "fraction", "window", "train")
        parts = [f"{name}={_short(getattr(self, name))}" for name in order if getattr(self, name) is not None]
        return f"{self.kind}(" + ", ".join(parts) + ")"


_FIELD_NAMES = {"synthetic": "synthetic (n)", "real": "real (N or M)", "fraction": "fraction",
                "window": "window (K)", "train": "train"}


def _short(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        a = np.asarray(v)
        return f"[{a.size} sizes, total {int(a.sum())}]"
    return v


def fully_synthetic(n: Size) -> Regime:
    """Each generation is fitted on ``n`` samples from the previous model only (paper §3.1)."""
    return Regime("fully_synthetic", synthetic=n)


def partially_synthetic(real: Size, synthetic: Size) -> Regime:
    """The paper's §3.2 scheme: the same ``real`` = N samples every generation plus ``synthetic`` = n fresh ones."""
    return Regime("partially_synthetic", synthetic=synthetic, real=real)


def fresh_real(size: Size, fraction: float) -> Regime:
    """``size`` = M samples per generation, a share ``fraction`` = λ synthetic, the rest fresh real."""
    return Regime("fresh_real", real=size, fraction=fraction)


def accumulate(real: Size, synthetic: Size) -> Regime:
    """Fit on all data so far: ``real`` = N samples plus ``synthetic`` = n appended per generation."""
    return Regime("accumulate", synthetic=synthetic, real=real)


def accumulate_subsample(real: Size, synthetic: Size, train: Size | None = None) -> Regime:
    """Accumulate a pool as :func:`accumulate`; fit each model on ``train`` samples drawn from it without replacement."""
    return Regime("accumulate_subsample", synthetic=synthetic, real=real, train=train)


def most_recent(synthetic: Size, window: int) -> Regime:
    """``floor(n / k)`` samples from each of the last ``k = min(window, m)`` models (paper Fig. 6)."""
    return Regime("most_recent", synthetic=synthetic, window=window)


def random_history(synthetic: Size) -> Regime:
    """Each sample's source is a uniformly chosen earlier generation, the truth included (paper Fig. 6)."""
    return Regime("random_history", synthetic=synthetic)


def regime(kind: str, **sizes) -> Regime:
    """Build a regime by name (the command line's ``--regime``)."""
    return Regime(kind, **sizes)


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Generation-time decoding applied to a model before it generates synthetic data.

    Applied in the order temperature, top-k, top-p (as in common LM samplers); real data are never decoded.

    Attributes:
      temperature: ``q ∝ p^(1/temperature)``, >= ``MIN_TEMPERATURE`` (0.001) (1 = off).
      top_k: keep the ``top_k`` most probable tokens (ties broken by token index), >= 1 (None = off).
      top_p: keep the smallest set of most probable tokens whose mass reaches ``top_p``, in (0, 1] (None = off).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        check_float("temperature", self.temperature, low=MIN_TEMPERATURE)
        if self.top_k is not None:
            check_int("top_k", self.top_k, low=1)
        if self.top_p is not None:
            check_float("top_p", self.top_p, low=0.0, high=1.0, low_open=True)

    @property
    def active(self) -> bool:
        return self.temperature != 1.0 or self.top_k is not None or self.top_p is not None


def context_sizes(name: str, value: Size, weights: np.ndarray, *, low: int = 0) -> np.ndarray:
    """Per-context int64 sizes from a total (split by ``weights``) or a per-context sequence."""
    contexts = weights.shape[0]
    if np.ndim(value) == 0:
        total = check_int(name, value, low=max(low, 1), high=MAX_SIZE)
        sizes = split_sizes(total, weights) if contexts > 1 else np.array([total], np.int64)
        return sizes
    arr = np.asarray(value)
    if arr.shape != (contexts,):
        raise ConfigError(f"{name} must be one int or one size per context ({contexts}), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise ConfigError(f"{name} must hold integers")
    arr = arr.astype(np.int64)
    if np.any(arr < low) or np.any(arr > MAX_SIZE) or arr.sum() < 1:
        raise ConfigError(f"{name} sizes must be integers in [{low}, 2^53] and not all zero")
    return arr

