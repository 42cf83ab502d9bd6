"""A daemon thread a component runs beside the Faust loop, stopped by an event it waits on."""

from __future__ import annotations

import threading
from typing import Self


class Background:
    """Runs ``self._run`` in a daemon thread from ``start()``; ``_run`` returns once
    ``self._stop`` is set (``stop()`` sets it and waits up to ``join_s``)."""

    join_s = 5.0

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.join_s)
