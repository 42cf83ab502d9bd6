"""Read a whole topic on every worker (no consumer group): custom patterns, audit sessions.

A Faust agent would share these topics' partitions between workers, but every worker
needs all of them: each runs every custom pattern and stamps any pod's events. So a small
confluent-kafka thread reads from the beginning (or from ``since_s`` ago) and keeps
following. The container table is a Faust GlobalTable over its topic (``streams.app``);
this reader still serves it with ``MEMTRAIL_STREAM_CONTAINER_JOIN=reader``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from memtrail.core.kafka import consumer_config
from memtrail.core.settings import KafkaSettings
from streams.background import Background

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes | None, bytes | None], None]


class TopicReader(Background):
    """Calls ``on_message(key, value)`` for every message of ``topic``, in a daemon thread."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        on_message: OnMessage,
        name: str,
        since_s: float | None = None,
    ) -> None:
        """``since_s``: start at the records of the last ``since_s`` seconds instead of the beginning."""
        super().__init__(f"reader:{name}")
        self.kafka = kafka
        self.since_s = since_s
        self.topic = topic
        self.on_message = on_message
        self.name = name
        self.caught_up = threading.Event()

    def _run(self) -> None:
        # group.id is required by librdkafka but never joined: partitions are assigned by hand.
        cfg = consumer_config(
            self.kafka, f"memtrail-reader-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 100}
        )
        consumer = Consumer(cfg)
        try:
            meta = consumer.list_topics(self.topic, timeout=15).topics.get(self.topic)
            parts = sorted(meta.partitions) if meta and not meta.error else []
            if not parts:
                log.warning("topic %s not found: %s stays empty", self.topic, self.name)
                self.caught_up.set()
                return
            cutoff_ms = -1
            tps = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts]
            if self.since_s is not None:
                cutoff_ms = int((time.time() - self.since_s) * 1000)
                found = consumer.offsets_for_times(
                    [TopicPartition(self.topic, p, cutoff_ms) for p in parts], timeout=15
                )
                tps = [
                    TopicPartition(
                        self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                    )
                    for tp in found
                ]
            consumer.assign(tps)
            idle = 0
            while not self._stop.is_set():
                msgs = consumer.consume(500, timeout=0.2)
                if not msgs:
                    idle += 1
                    if idle >= 2:  # nothing new for two polls: what existed has been read
                        self.caught_up.set()
                    continue
                idle = 0
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("%s: %s", self.name, err)
                        continue
                    if cutoff_ms >= 0 and m.timestamp()[1] < cutoff_ms:
                        continue  # some brokers answer offsets_for_times with 0 (Tansu)
                    try:
                        self.on_message(m.key(), m.value())
                    except Exception as exc:  # a bad record must not stop the reader
                        log.warning(
                            "%s: message at %s/%s not applied: %s", self.name, m.partition(), m.offset(), exc
                        )
        except Exception:
            log.exception("%s reader stopped", self.name)
            self.caught_up.set()
        finally:
            consumer.close()
