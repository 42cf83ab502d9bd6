"""Correlation state of one worker (pure: the engine, grouping, no Faust or Kafka).

One engine and one grouper per assigned partition of the enriched topic: every event of
a container (or of one host's non-container processes) is in one partition, so a
partition's sequence state is complete on the worker that owns it, and dropping a
revoked partition drops exactly its state. ``replay`` rebuilds a partition's state from
already-processed events with output discarded (see ``streams.recovery``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from patterns.engine.api import Engine, PatternError, load_engine
from schemas.alerts import Alert
from streams.grouping import Grouper

log = logging.getLogger(__name__)

EngineFactory = Callable[[list[Mapping[str, Any]]], Engine]


def default_engine_factory(dirs: list[Path]) -> EngineFactory:
    reported: set[str] = set()

    def build(extra: list[Mapping[str, Any]]) -> Engine:
        engine = load_engine(dirs, extra)
        for err in engine.errors:  # once per worker, not once per partition engine
            if str(err) not in reported:
                reported.add(str(err))
                log.warning("pattern rejected: %s", err)
        return engine

    return build


class Correlator:
    def __init__(self, engine_factory: EngineFactory, grouping_window_s: float = 60.0) -> None:
        self._factory = engine_factory
        self.grouping_window_s = grouping_window_s
        self.custom_specs: dict[str, Mapping[str, Any]] = {}
        self.engines: dict[int, Engine] = {}
        self.groupers: dict[int, Grouper] = {}
        # One engine built at start-up: fails fast on a broken library, gives longest_window_s.
        self._template = engine_factory([])

    @property
    def longest_window_s(self) -> float:
        return float(self._template.longest_window_s)

    def partitions(self) -> set[int]:
        return set(self.engines)

    def assign(self, partition: int) -> None:
        if partition not in self.engines:
            self.engines[partition] = self._factory(list(self.custom_specs.values()))
            self.groupers[partition] = Grouper(self.grouping_window_s)

    def drop(self, partition: int) -> None:
        self.engines.pop(partition, None)
        self.groupers.pop(partition, None)

    def process(self, partition: int, events: Iterable[Mapping[str, Any]]) -> list[Alert]:
        """Run the engine on one partition's events; return the (grouped) alerts to publish."""
        self.assign(partition)
        grouper = self.groupers[partition]
        out = []
        for alert in self.engines[partition].process_batch(events):
            grouped = grouper.offer(alert)
            if grouped is not None:
                out.append(grouped)
        return out

    def replay(self, partition: int, events: Iterable[Mapping[str, Any]]) -> int:
        """Feed already-processed events to rebuild state; their alerts were emitted before: discard."""
        return len(self.process(partition, events))

    def expire(self, now: float) -> None:
        stamp = datetime.fromtimestamp(now).astimezone()
        for p, engine in self.engines.items():
            engine.expire(now)
            self.groupers[p].expire(stamp)

    def apply_pattern_op(self, op: str, spec: Mapping[str, Any]) -> list[PatternError] | None:
        """Apply one message of the patterns topic to every engine, now and for later partitions."""
        pid = str(spec.get("id", ""))
        if op == "delete":
            if self.custom_specs.pop(pid, None) is None:
                return None
            # The contract has no delete: rebuild engines without it (their window state restarts).
            for p in list(self.engines):
                self.engines[p] = self._factory(list(self.custom_specs.values()))
            log.info("custom pattern %s deleted", pid)
            return None
        errors = self._template.upsert_pattern(spec)
        if errors:
            return errors
        self.custom_specs[pid] = spec
        for engine in self.engines.values():
            engine.upsert_pattern(spec)
        log.info("custom pattern %s applied", pid)
        return None
