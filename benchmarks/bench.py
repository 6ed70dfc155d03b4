#!/usr/bin/env python
"""Benchmark suite of jaxcollapse: see benchmarks/README.md or ``python benchmarks/bench.py --help``."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcollapse.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
