"""The table of data regimes: one entry per regime, read by every module that depends on the regime (building a
study, the kernels, the command line's choices and size flags, sweep points, memory estimates, the theory lookup).

Pure data: importing it imports neither NumPy nor JAX (the command line reads it for ``--help``).
Adding a regime: an entry here, its constructor in :mod:`jaxcollapse.core.regimes`, and its data step in the
count kernel (:data:`jaxcollapse.core.count.DATA`); optionally its exact theory in :mod:`jaxcollapse.stats.lookup`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class RegimeKind:
    """One data regime, as data: every module that depends on the regime reads its entry of :data:`TABLE`.

    Attributes:
      name: the regime's name (``Regime.kind``, ``--regime``, the TOML key ``regime``).
      data: what a model of generation ``m >= 2`` is fitted on (one line, for help texts).
      sizes: the :class:`Regime` fields it needs.  optional: the fields it may take besides.
      first: the size of ``p^(1)``'s real sample: ``"synthetic"`` (``n``) or ``"real"`` (``N`` or ``M``).
      shorthand: how a sweep's ``size`` and ``fraction`` give its sizes: ``"synthetic"`` (``n = size``),
        ``"split"`` (``n = round(fraction * size)`` synthetic, ``N = size - n`` real) or ``"mixed"``
        (``M = size``, ``λ = fraction``).
      pooled: the count kernel keeps a ``(C, V)`` count table of reused or accumulated samples.
      fresh: each generation draws fresh real samples from ``p^(0)`` (besides the synthetic ones).
      window: the count kernel's history slots: ``"none"``, ``"sum"`` (one running sum of past models) or
        ``"window"`` (the last ``Regime.window`` models).
      resample: the resampling kernel (:mod:`jaxcollapse.core.resample`) serves it.
      trained: the trained estimators (:mod:`jaxcollapse.core.trained`) serve it.
      theory: the exact result that describes it (:mod:`jaxcollapse.stats.lookup`), or ``""``.
      largest_fit: ``largest_fit(real, synthetic, generations)``: the most samples a model of generation ``m >=
        2`` is fitted on over the run (``(C,)`` ints; after the fresh-real split of ``real``), for kernels that
        keep the training samples; None where it is unbounded by the sizes.
    """

    name: str
    data: str
    sizes: tuple
    optional: tuple = ()
    first: str = "synthetic"
    shorthand: str = "synthetic"
    pooled: bool = False
    fresh: bool = False
    window: str = "none"
    resample: bool = False
    trained: bool = False
    theory: str = ""
    largest_fit: Callable | None = None


#: Every data regime of the engine, by name.
TABLE = {k.name: k for k in (
    RegimeKind("fully_synthetic", "n samples of p^(m-1)", ("synthetic",), resample=True, trained=True,
               theory="Theorem 1 and the Wright-Fisher chain", largest_fit=lambda real, syn, g: syn),
    RegimeKind("partially_synthetic", "the same N real samples as p^(1) plus n samples of p^(m-1)",
               ("real", "synthetic"), first="real", shorthand="split", pooled=True, resample=True, trained=True,
               theory="Theorem 2 (corrected)", largest_fit=lambda real, syn, g: real + syn),
    RegimeKind("fresh_real", "M - S fresh real samples plus S = round(fraction M) samples of p^(m-1)",
               ("real", "fraction"), first="real", shorthand="mixed", fresh=True, resample=True, trained=True,
               theory="the fresh-real recursion", largest_fit=lambda real, syn, g: real + syn),
    RegimeKind("accumulate", "all data so far: N real plus n synthetic samples appended per generation",
               ("real", "synthetic"), first="real", shorthand="split", pooled=True, resample=True, trained=True,
               theory="the accumulate recursion", largest_fit=lambda real, syn, g: real + (g - 1) * syn),
    RegimeKind("accumulate_subsample", "train samples drawn without replacement from the accumulated pool",
               ("real", "synthetic"), optional=("train",), first="real", shorthand="split", pooled=True,
               theory="the accumulate-subsample recursion"),
    RegimeKind("most_recent", "floor(n / k) samples of each of the last k = min(window, m) models",
               ("synthetic", "window"), window="window", theory="fully synthetic when the window is 1"),
    RegimeKind("random_history", "n samples, each of a uniformly chosen earlier model (the truth included)",
               ("synthetic",), window="sum"),
)}

REGIMES = tuple(TABLE)
