"""Append every alert as one JSON object per line (``memtrail up --alerts-jsonl PATH``).

Grouped alerts are re-published with the same ``id`` and a higher ``count``; each
publication is a line, so the last line of an id is its current state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: one write() per line, so concurrent readers never see half a line.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def write(self, alert: dict[str, Any] | bytes) -> None:
        data = alert if isinstance(alert, bytes) else orjson.dumps(alert)
        os.write(self._fd, data.rstrip(b"\n") + b"\n")

    def flush(self) -> None:
        """Make the appended lines durable (the sink loop commits offsets after this)."""
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
