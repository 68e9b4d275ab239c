#!/usr/bin/env python3
"""Entry point, same as the ``calbridge`` console script: no arguments = migrate, then serve."""

import sys

from bridge.cli import main

if __name__ == "__main__":
    sys.exit(main())
