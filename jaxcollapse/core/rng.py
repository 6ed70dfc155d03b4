"""Random bits and uniforms for the kernels: ``jax.random``'s own streams computed faster on CPU, and a cheaper
stream of 32-bit words for the resampling kernel's parent picks.

:func:`bits` and :func:`uniform` return exactly what ``jax.random.bits`` and ``jax.random.uniform`` return for
the same key and shape (``uint32`` bits; ``float64`` uniforms on ``[0, 1)`` with 52 random bits), and
:func:`fold_in` and :func:`split` the keys that ``jax.random.fold_in`` and ``jax.random.split`` derive, so every
trajectory of the engine is the same whichever of the two computes it. Element ``i`` of a threefry key's
stream is Threefry-2x32 (20 rounds) of the counter ``(i >> 32, i & 0xffffffff)`` under the key's two words
(JAX's "partitionable" layout, the default since JAX 0.5). JAX lowers its Threefry on CPU as a rolled loop
that XLA cannot fuse with what uses the numbers; :func:`threefry2x32` is unrolled elementwise code, which
XLA fuses into one loop: a batch of 2^22 float64 uniforms takes 16 ms here against 51 ms for
``jax.random.uniform`` (2-core x86-64 CPU), and deriving each generation's keys this way instead of through
JAX's loop makes a generation of the resampling kernel 7-15% faster. Keys of any other implementation
(``rbg``, ...), or the non-partitionable layout, fall back to ``jax.random``.

:func:`words` is SplitMix64 (Steele, Lea and Flood 2014; Vigna's ``splitmix64.c``) seeded with the key's 64
bits: a Weyl sequence through an invertible 64-bit mix, which passes BigCrush, at about 0.2 ns per word here
against 0.76 for Threefry. Streams under different keys are windows of one Weyl sequence at offsets that
Threefry drew, so two windows of ``L`` words among ``S`` keys overlap with probability below ``S^2 L / 2^64``
(5e-4 for 10^7 chain-generations of 100 words); an overlap makes two chain-generations reuse some of the same
words, not any word more likely.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_ONE_BITS = np.float64(1.0).view(np.uint64)


@jax.jit
def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (the hash of ``jax.random``'s default generator), unrolled so that XLA
    fuses it. All arguments uint32, broadcast against each other; returns two uint32 arrays. Jitted: its
    hundred operations are traced once per argument shape, however often a kernel hashes (the binomial
    sampler's first cached call: 0.66-0.75 s of tracing instead of 0.95-0.99 s)."""
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1 = x1 + ks[0]
    x2 = x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << jnp.uint32(r)) | (x2 >> jnp.uint32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def _typed(key: jax.Array) -> jax.Array:
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def _ours(key: jax.Array) -> bool:
    """Whether ``key`` (typed) is a Threefry key whose streams use JAX's partitionable counter layout."""
    return str(jax.random.key_impl(key)).endswith("threefry2x32") and jax.config.jax_threefry_partitionable


def _hash(key: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    words = jax.random.key_data(key)
    size = math.prod(shape)
    if size >= 1 << 32:
        i = jnp.arange(size, dtype=jnp.uint64)
        hi, lo = (i >> jnp.uint64(32)).astype(jnp.uint32), i.astype(jnp.uint32)
    else:
        hi, lo = jnp.zeros((), jnp.uint32), jnp.arange(size, dtype=jnp.uint32)
    h1, h2 = threefry2x32(words[0], words[1], hi, lo)
    return h1.reshape(shape), h2.reshape(shape)


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.bits(key, shape, jnp.uint32)``, the same values: ``shape`` uint32 random words."""
    key = _typed(key)
    shape = tuple(shape)
    if not _ours(key):
        return jax.random.bits(key, shape, jnp.uint32)
    h1, h2 = _hash(key, shape)
    return h1 ^ h2


def _derived(key: jax.Array, counters: jax.Array) -> jax.Array:
    """The keys whose words are Threefry-2x32 of the counters ``(0, counters)`` under ``key``'s words."""
    w = jax.random.key_data(key)
    h1, h2 = threefry2x32(w[0], w[1], jnp.zeros((), jnp.uint32), counters)
    return jax.random.wrap_key_data(jnp.stack([h1, h2], axis=-1), impl=jax.random.key_impl(key))


def _like(new: jax.Array, key: jax.Array) -> jax.Array:
    """``new`` (typed keys) as typed keys if ``key`` is one, else as raw ``uint32`` key data, as ``jax.random``."""
    return new if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.key_data(new)


def fold_in(key: jax.Array, data) -> jax.Array:
    """``jax.random.fold_in(key, data)``, the same key: a new key from ``key`` and an integer scalar ``data``
    (taken modulo 2^32). JAX's own is a loop of five steps on CPU, which XLA runs as a loop of small
    operations in every generation of every kernel; this one fuses."""
    typed = _typed(key)
    if not _ours(typed):
        return jax.random.fold_in(key, data)
    return _like(_derived(typed, jnp.asarray(data, dtype=jnp.uint32)), key)


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """``jax.random.split(key, num)``, the same ``(num,)`` keys (key ``i`` is :func:`fold_in` of ``i``)."""
    typed = _typed(key)
    if not _ours(typed):
        return jax.random.split(key, num)
    return _like(_derived(typed, jnp.arange(num, dtype=jnp.uint32)), key)


def stored(x: jax.Array, anchor: jax.Array) -> jax.Array:
    """``x`` itself, read back through a gather at positions that XLA cannot prove to be ``0, 1, ...`` (they are
    offset by a zero computed from ``anchor``, any integer array that exists before ``x``, such as its
    counters or key words): one buffer, computed once. XLA's CPU fusion copies a chain of cheap elementwise
    operations (the Threefry rounds) into every fusion that uses its result, so a kernel that splits into
    several fusions after drawing (at logarithms, table lookups, loops) would otherwise hash its counters once
    per fusion."""
    if x.size == 0 or anchor.size == 0:
        return x
    lead = anchor.reshape(-1)[0]
    width = lead.dtype.itemsize * 8
    lead = jax.lax.bitcast_convert_type(lead, jnp.dtype(f"uint{width}"))
    zero = jnp.minimum((lead >> 1).astype(jnp.dtype(f"int{width}")), 0)
    flat = x.reshape(-1)
    index = jnp.int32 if flat.shape[0] < 1 << 31 else jnp.int64
    return flat[jnp.arange(flat.shape[0], dtype=index) + zero.astype(index)].reshape(x.shape)


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``jax.random.uniform(key, shape, jnp.float64)``, the same values: ``shape`` float64 on ``[0, 1)``, the
    top 52 bits of each 64-bit word as the mantissa. Needs 64-bit types (``jax.enable_x64``)."""
    key = _typed(key)
    shape = tuple(shape)
    if not _ours(key):
        return jax.random.uniform(key, shape, dtype=jnp.float64)
    h1, h2 = _hash(key, shape)
    word = (h1.astype(jnp.uint64) << jnp.uint64(32)) | h2.astype(jnp.uint64)
    mantissa = (word >> jnp.uint64(12)) | jnp.asarray(_ONE_BITS)
    return stored(jax.lax.bitcast_convert_type(mantissa, jnp.float64) - 1.0, jax.random.key_data(key))


def _mix64(z: jax.Array) -> jax.Array:
    """SplitMix64's output function (Stafford's "variant 13" of the MurmurHash3 finaliser), uint64 to uint64."""
    u = jnp.uint64
    z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
    return z ^ (z >> u(31))


def words(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``shape`` uint32 random words: word ``i`` (row-major) is the top half of SplitMix64's output ``i + 1``
    from the seed ``s`` = the key's two words (first word high), ``mix64(s + (i + 1) 0x9E3779B97F4A7C15)``.
    Non-Threefry keys give :func:`bits`."""
    key = _typed(key)
    shape = tuple(shape)
    if not _ours(key):
        return bits(key, shape)
    u = jnp.uint64
    w = jax.random.key_data(key)
    seed = (w[0].astype(u) << u(32)) | w[1].astype(u)
    i = jnp.arange(1, math.prod(shape) + 1, dtype=u)
    return (_mix64(seed + i * u(0x9E3779B97F4A7C15)) >> u(32)).astype(jnp.uint32).reshape(shape)
