"""Correlation state recovery on partition takeover, without per-event changelog writes.

Every pattern is windowed, so the state a partition needs is in its last
``longest_window_s`` of events. When a worker is assigned a partition of the enriched
topic it reads, with a plain confluent-kafka consumer, the records from the offset at
``now − longest window − margin`` up to the group's committed offset (where the Faust
consumer will resume) and feeds them to that partition's engine and grouper with their
alerts discarded: those alerts were published before the offsets were committed. Alert
ids are deterministic and the grouper ignores ids it already counted, so events
processed but not committed before a crash yield the same alert again (same id, same
count), which sinks upsert in place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from memtrail.core.kafka import consumer_config
from memtrail.core.settings import KafkaSettings
from schemas.wire import WireError
from streams.fastpath import enriched_events

log = logging.getLogger(__name__)


def replay_batches(
    kafka: KafkaSettings,
    topic: str,
    partition: int,
    group_id: str,
    since_s: float,
    now: float | None = None,
    timeout: float = 10.0,
    max_messages: int = 2000,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the event lists of ``topic``/``partition`` from ``now − since_s`` up to the committed offset.

    A message is an EventBatch (its ``events``) or a single event (a list of one).
    """
    now = time.time() if now is None else now
    cutoff_ms = int((now - since_s) * 1000)
    consumer = Consumer(consumer_config(kafka, group_id, **{"fetch.wait.max.ms": 50}))
    try:
        committed = consumer.committed([TopicPartition(topic, partition)], timeout=timeout)[0].offset
        if committed is None or committed <= 0:
            return  # nothing committed: the Faust consumer starts at the beginning anyway
        start = consumer.offsets_for_times([TopicPartition(topic, partition, cutoff_ms)], timeout=timeout)[
            0
        ].offset
        if start < 0 or start >= committed:
            return
        if committed - start > max_messages:  # keep the most recent part: it matters most
            log.warning(
                "replay of %s/%d capped to the last %d of %d messages",
                topic,
                partition,
                max_messages,
                committed - start,
            )
            start = committed - max_messages
        consumer.assign([TopicPartition(topic, partition, start)])
        pos = start
        deadline = time.monotonic() + max(timeout, 120.0)
        while pos < committed and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is not None:
                    continue
                offset = int(m.offset() or 0)
                pos = offset + 1
                if offset >= committed:
                    break
                # Some brokers answer offsets_for_times with 0 when nothing is newer: skip old records.
                if m.timestamp()[1] < cutoff_ms:
                    continue
                try:
                    doc = orjson.loads(m.value() or b"")
                except orjson.JSONDecodeError:
                    continue  # cannot happen on the enriched topic: the enrichment agent wrote it
                if not isinstance(doc, dict):
                    continue
                events = doc.get("events")
                if isinstance(events, list):
                    if events:
                        try:
                            good, _ = enriched_events(doc)  # rejects were dead-lettered when processed
                        except (KeyError, TypeError, WireError):
                            continue  # so was a message that cannot be read
                        if good:
                            yield good
                elif isinstance(doc.get("syscall"), str):  # one event per message (memtrail.k8s.audit)
                    yield [doc]
        if pos < committed:
            log.warning("replay of %s/%d stopped at %d before %d (timeout)", topic, partition, pos, committed)
    finally:
        consumer.close()
