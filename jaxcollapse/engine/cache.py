"""The persistent compilation cache of the command line and of ``simulate``: compiled programs are kept on disk,
so a second run of the same study shape starts without compiling.

Where: ``$JAXCOLLAPSE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/jaxcollapse/jax``, else
``~/.cache/jaxcollapse/jax``. ``JAXCOLLAPSE_CACHE_DIR=off`` turns it off (JAX's own settings then apply
unchanged). A cache that JAX already has (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update("jax_compilation_cache_dir", ...)``) is left as it is, thresholds included, unless
``JAXCOLLAPSE_CACHE_DIR`` names a directory.

Importing jaxcollapse changes nothing; :func:`configure` is called by the ``jaxcollapse`` command and by
``simulate``. When it sets the directory it also sets JAX's thresholds so that every compiled program is stored
(JAX's default keeps only those that compile in over a second). Before JAX is imported it sets the equivalent
``JAX_*`` environment variables instead (so the command's ``--help`` still does not start JAX, and the
processes it starts inherit the cache).
"""

from __future__ import annotations

import os
import sys

#: The environment variable that moves (a directory) or disables (``off``) the cache.
ENV = "JAXCOLLAPSE_CACHE_DIR"
#: JAX's settings: (config name, environment variable, value set with the directory).
_THRESHOLDS = (("jax_persistent_cache_min_compile_time_secs", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", 0.0),
               ("jax_persistent_cache_min_entry_size_bytes", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", -1))
_DIR = ("jax_compilation_cache_dir", "JAX_COMPILATION_CACHE_DIR")


def default_dir() -> str:
    """``$XDG_CACHE_HOME/jaxcollapse/jax``, or ``~/.cache/jaxcollapse/jax`` when ``XDG_CACHE_HOME`` is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxcollapse", "jax")


def configure() -> str | None:
    """Turn the persistent compilation cache on (see the module's docstring); returns the directory in use, or
    ``None`` when the cache is off. Idempotent and cheap: call it before the first compilation."""
    wanted = os.environ.get(ENV, "").strip()
    if wanted.lower() == "off":
        return None
    jax = sys.modules.get("jax")
    current = jax.config.jax_compilation_cache_dir if jax is not None else os.environ.get(_DIR[1])
    if current and not wanted:
        return current                    # the caller's own JAX cache
    path = os.path.abspath(os.path.expanduser(wanted)) if wanted else default_dir()
    if current == path:
        return path
    for name, env, value in ((_DIR[0], _DIR[1], path),) + _THRESHOLDS:
        if jax is not None:
            jax.config.update(name, value)
        else:
            os.environ[env] = str(value)
    return path
