"""An engine factory for ``MEMTRAIL_STREAM_ENGINE_FACTORY`` that blocks on one event.

The real library engine, except that an event with ``syscall == "wedge"`` holds the
correlation agent for ``args.seconds`` (a stand-in for a pattern stuck on hostile input),
so the worker's readiness can be seen to follow a stuck agent."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from memtrail.core.settings import Settings
from streams.correlate import EngineFactory, default_engine_factory


class _Wedging:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("run", "fork"):  # every event through process_batch below
            raise AttributeError(name)
        return getattr(self._inner, name)

    def process_batch(self, events: Iterable[Mapping[str, Any]]) -> list[Any]:
        evs = list(events)
        for e in evs:
            if e.get("syscall") == "wedge":
                time.sleep(float((e.get("args") or {}).get("seconds", 10)))
        return list(self._inner.process_batch(evs))


def factory(settings: Settings) -> EngineFactory:
    base = default_engine_factory(settings.patterns_dirs)

    def build(extra: list[Mapping[str, Any]]) -> Any:
        return _Wedging(base(extra))

    return build
