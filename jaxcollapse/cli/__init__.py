"""The command line (``jaxcollapse``). Importing it imports neither JAX nor NumPy: every command imports the engine
when it runs.

``app``         the parser, the dispatch to the commands, the one-line errors (:func:`main`);
``options``     the flags of ``run`` as one table;
``settings``    the run settings: config file and flags resolved into a study;
``run``         the ``run``, ``show`` and ``plot`` commands;
``plan``, ``reproduce``, ``sweep``, ``sweep_plot``: the other commands.
"""

from .app import main

__all__ = ["main"]
