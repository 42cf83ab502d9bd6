"""Where the checkout is, for tests that read its files (docs, deploy, scripts)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
