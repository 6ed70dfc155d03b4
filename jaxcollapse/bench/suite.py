"""The former single-module benchmark suite, now the package :mod:`jaxcollapse.bench`.

Kept so that ``from jaxcollapse.bench import suite; suite.main(argv, prog=...)`` goes on working; new code
imports :func:`jaxcollapse.bench.main` (the command) and :mod:`jaxcollapse.bench.reference` (the references).
"""

from __future__ import annotations

import sys

from .command import build_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
