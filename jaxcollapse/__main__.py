"""``python -m jaxcollapse``: the command line (see :mod:`jaxcollapse.cli`)."""

import sys

from .cli import main

sys.exit(main())
