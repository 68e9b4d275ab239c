"""``python -m bridge`` is the ``calbridge`` command."""

import sys

from bridge.cli import main

sys.exit(main())
