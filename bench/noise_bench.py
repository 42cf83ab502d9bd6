"""``python -m bench noise [--only NAME ...] [--ci] [--list]``: the benign corpus (bench/noise, docs/noise.md)."""

from __future__ import annotations

import sys

from bench.noise.runner import main

if __name__ == "__main__":
    sys.exit(main())
