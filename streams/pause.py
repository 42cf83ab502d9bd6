"""Crash-safe correlation: partitions held until their state is rebuilt, alerts published once.

Faust resumes fetching a newly assigned partition as soon as its own table recovery is
done, which can be before our state rebuild (``streams.recovery``) has replayed it. So
the agents hold every event of a partition whose gate is closed: ``on_assigned`` closes
the gates of the new partitions before its first ``await`` and opens each when its replay
is done; an agent that got such an event waits (nothing of it is processed, nothing
committed). The result is what pausing the partition would give, whatever Faust does.

Events a dead worker processed but did not commit are processed again: their alerts have
the same id and publication version (revision) as what it already published. The
``AlertLedger`` holds the highest version published per id, seeded on takeover from the
alerts topic itself (``read_published``), and a publication at or below it is skipped:
one message per alert version in the alerts topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from memtrail.core.kafka import consumer_config
from memtrail.core.settings import KafkaSettings
from schemas.alerts import publication_version

log = logging.getLogger(__name__)


class PartitionGate:
    """Per-partition open/closed flags the agents wait on (one event loop)."""

    def __init__(self) -> None:
        self._closed: dict[Hashable, asyncio.Event] = {}

    def close(self, parts: Iterable[Hashable]) -> None:
        for p in parts:
            if p not in self._closed:
                self._closed[p] = asyncio.Event()

    def open(self, part: Hashable) -> None:
        ev = self._closed.pop(part, None)
        if ev is not None:
            ev.set()

    def is_closed(self, part: Hashable) -> bool:
        return part in self._closed

    @property
    def closed(self) -> set[Hashable]:
        return set(self._closed)

    async def wait(self, parts: Iterable[Hashable], timeout: float) -> list[Hashable]:
        """Wait until each of ``parts`` is open (or ``timeout`` seconds in all); returns the
        ones still closed then."""
        deadline = time.monotonic() + timeout
        for p in set(parts):
            ev = self._closed.get(p)
            if ev is None:
                continue
            left = deadline - time.monotonic()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), left)
        return [p for p in set(parts) if p in self._closed]


class AlertLedger:
    """Highest publication version per alert id: what was already published (bounded, LRU)."""

    def __init__(self, max_ids: int = 200_000) -> None:
        self.max_ids = max_ids
        self._seen: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def record(self, alert_id: str, version: int) -> None:
        if self._seen.get(alert_id, 0) < version:
            self._seen[alert_id] = version
        self._seen.move_to_end(alert_id)
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)

    def published(self, alert_id: str, version: int) -> bool:
        return self._seen.get(alert_id, 0) >= version

    def seed(self, docs: Iterable[Mapping[str, Any]]) -> int:
        n = 0
        for d in docs:
            aid = d.get("id")
            if isinstance(aid, str):
                try:
                    self.record(aid, publication_version(d))
                except (TypeError, ValueError):
                    continue
                n += 1
        return n


def read_published(
    kafka: KafkaSettings, topic: str, since_s: float, timeout: float = 10.0, max_messages: int = 200_000
) -> list[dict[str, Any]]:
    """Alerts published to ``topic`` in the last ``since_s`` seconds (every partition), read to
    the end that fetches report (not ListOffsets: some brokers answer it short)."""
    cutoff_ms = int((time.time() - since_s) * 1000)
    consumer = Consumer(
        consumer_config(kafka, f"memtrail-ledger-{time.monotonic_ns()}", **{"enable.partition.eof": True})
    )
    out: list[dict[str, Any]] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return out
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, cutoff_ms) for p in sorted(meta.partitions)], timeout=timeout
        )
        # No record that new: -1 (the end). Read from the beginning then; old records are skipped.
        consumer.assign([TopicPartition(topic, tp.partition, max(tp.offset, 0)) for tp in found])
        pending = {tp.partition for tp in found}
        deadline = time.monotonic() + max(timeout, 30.0)
        while pending and time.monotonic() < deadline and len(out) < max_messages:
            for m in consumer.consume(1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                    continue
                if m.timestamp()[1] < cutoff_ms:
                    continue
                try:
                    doc = orjson.loads(m.value() or b"")
                except orjson.JSONDecodeError:
                    continue
                if isinstance(doc, dict):
                    out.append(doc)
        if pending:
            log.warning("alerts topic %s read for dedup stopped before its end on %s", topic, sorted(pending))
    finally:
        consumer.close()
    return out
