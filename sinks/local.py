"""The local sinks of ``memtrail up``: one console line per alert and, optionally, a JSONL file.

A :class:`sinks.base.Sink` like every other destination, so ``up`` runs it in the one sink loop
(``SinkRunner``): offsets are committed after the lines are written and the file is synced,
and what is not an alert goes to the dead-letter topic.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from sinks.base import Incoming, Rejected
from sinks.console import format_alert
from sinks.jsonl import JsonlSink


class LocalSink:
    name = "local"

    def __init__(
        self, jsonl: JsonlSink | None = None, color: bool = False, out: TextIO | None = None
    ) -> None:
        self._jsonl = jsonl  # opened by the caller, so a bad path fails before anything starts
        self.color = color
        self.out = out or sys.stdout

    async def start(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        for item in batch:
            if self._jsonl is not None:
                self._jsonl.write(item.raw)
            self.out.write(format_alert(item.alert, self.color) + "\n")
        return []

    async def flush(self) -> None:
        self.out.flush()
        if self._jsonl is not None:
            self._jsonl.flush()

    async def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
