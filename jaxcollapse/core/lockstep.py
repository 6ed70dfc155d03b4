"""A public ``step`` that picks generation 1 or a later generation without running both under ``vmap``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


@functools.lru_cache(maxsize=None)
def lockstep_step(kernel, config):
    """``step(key, state, params) -> (state, metrics)`` of ``kernel`` for one chain.

    Unbatched it is a ``lax.cond`` on ``state.generation == 0``. Batched, ``lax.cond`` on a batched predicate
    would run both branches for every chain; the batching rule here instead runs ``kernel.first`` when every
    chain of the batch is at generation 0, ``kernel.step`` when none is, and both (selected per chain) only for
    a batch at mixed generations."""

    def first(key, state, params):
        new, _ = kernel.first(key, state, params, config)
        return new, kernel.measure(new, params, config)

    def later(key, state, params):
        new, _ = kernel.step(key, state, params, config)
        return new, kernel.measure(new, params, config)

    @jax.custom_batching.custom_vmap
    def dispatch(key, state, params):
        return lax.cond(state.generation == 0, first, later, key, state, params)

    @dispatch.def_vmap
    def _batched(axis_size, in_batched, key, state, params):
        axes = jax.tree.map(lambda b: 0 if b else None, tuple(in_batched))
        args = (key, state, params)
        v_first = jax.vmap(first, in_axes=axes, axis_size=axis_size)
        v_later = jax.vmap(later, in_axes=axes, axis_size=axis_size)
        at_zero = state.generation == 0

        def mixed(*a):
            one, other = v_first(*a), v_later(*a)
            pick = jnp.broadcast_to(at_zero, (axis_size,))
            return jax.tree.map(lambda x, y: jnp.where(pick.reshape((-1,) + (1,) * (x.ndim - 1)), x, y),
                                one, other)

        out = lax.cond(jnp.all(at_zero), v_first,
                       lambda *a: lax.cond(jnp.any(at_zero), mixed, v_later, *a), *args)
        return out, jax.tree.map(lambda _: True, out)

    return dispatch
