"""``python -m jaxcollapse``: the command line (see :mod:`jaxcollapse.cli`)."""

import sys

from .cli.main import main

sys.exit(main())
