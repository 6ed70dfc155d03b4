"""The kernel interface: what the driver needs of one chain, as a small NamedTuple of pure functions.

In the style of optax / blackjax: a kernel is a :class:`Kernel` of pure functions of one chain, the key
first, with a static ``config`` (hashable: shapes and switches that fix a compilation) apart from a traced
``params`` pytree (the truth, sample sizes, hyper-parameters: ``vmap`` over it to sweep). ``step`` returns
the new state and an ``info`` dict of per-step diagnostics that is not carried forward.

Every kernel's state is a NamedTuple with at least these fields, read by the driver:

- ``generation``: int32 ``m``;
- ``collapse_time``: ``(C,)`` int32 first generation at which each context was a Dirac mass, -1 if none yet;
- ``collapse_token``: ``(C,)`` int32 the token it collapsed onto, -1 if none yet;
- ``chain_collapse``: int32 first generation at which every weighted context was a Dirac mass, -1 if none.

Kernels: the count kernel (:mod:`jaxcollapse.core.count`), the resampling kernel
(:mod:`jaxcollapse.core.resample`) and the trained estimators with the autoregressive regime
(:mod:`jaxcollapse.core.trained`). :func:`jaxcollapse.core.kernels.kernel_for` picks the kernel of a config.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Kernel(NamedTuple):
    """Pure functions of one chain.

    Attributes:
      init: ``init(key, params, config) -> state``: generation 0, the model is the truth ``p^(0)``.
      first: ``first(key, state, params, config) -> (state, info)``: generation 1, fitted on real samples.
      step: ``step(key, state, params, config) -> (state, info)``: generation ``m = state.generation + 1 >= 2``.
      measure: ``measure(state, params, config, per_context) -> dict``: the metrics of the chain's model,
        context-weighted float64 scalars (and ``"<name>/context"`` ``(C,)`` arrays with ``per_context``).
      truth: ``truth(params, config, per_context) -> dict``: the metrics of generation 0 (the truth).
      model: ``model(state, params, config) -> (C, V)`` float64: the chain's model ``p^(m)``.
      freezes: ``freezes(config) -> bool``: whether a chain whose every context is a Dirac mass keeps its model
        and metrics in every later generation (then the driver skips chunks whose chains all collapsed).
      first_in_step: ``first_in_step(config) -> bool``: whether ``step`` from generation 0 computes generation 1
        exactly as ``first`` does (same key, same values). The driver then runs generation 1 in its segment
        program, and the sampler is compiled once instead of twice; generation 0's record holds the truth's
        metrics alone (a sink keeps 0 there for the other entries of ``step``'s info, e.g. ``context_l1``).
    """

    init: Callable[..., Any]
    first: Callable[..., Any]
    step: Callable[..., Any]
    measure: Callable[..., dict]
    truth: Callable[..., dict]
    model: Callable[..., Any]
    freezes: Callable[[Any], bool]
    first_in_step: Callable[[Any], bool] = lambda config: False

