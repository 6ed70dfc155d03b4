"""The benchmark suite (``jaxcollapse bench``): the engine against NumPy and ``jax.random`` references.

Modules, in import order:

* :mod:`~jaxcollapse.bench.reference`: every reference implementation (NumPy metrics and recursions,
  ``jax.random.multinomial``, NumPy decoding); the tests check the engine against the same code.
* :mod:`~jaxcollapse.bench.timing`: timing primitives (medians, timing rows, subset planning).
* :mod:`~jaxcollapse.bench.workloads`: the workloads W1-W6 and how each is run on the engine.
* :mod:`~jaxcollapse.bench.machine`: the machine, random-number throughput, the engine's random-number share.
* :mod:`~jaxcollapse.bench.runner`: the references timed on each workload, speed-ups, the whole run.
* :mod:`~jaxcollapse.bench.report`: Markdown and JSON output.
* :mod:`~jaxcollapse.bench.command`: the command line, :func:`main`.

``from jaxcollapse.bench import main`` gives the command (``main(argv, prog=None) -> exit code``). Importing
the package or any of its modules does not import JAX; the benchmark imports it when it runs.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "main":
        from .command import main
        return main
    raise AttributeError(f"module 'jaxcollapse.bench' has no attribute {name!r}")
