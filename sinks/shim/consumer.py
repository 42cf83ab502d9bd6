"""Alerts and sensor heartbeats from Kafka into the store (own consumer group).

Offsets are committed only after the store accepted a batch, so a crash re-reads
rather than loses; upserts by id make the re-read harmless. A message that is not a
valid Alert/SensorHeartbeat goes to the dead-letter topic with the reason (nothing
is dropped silently) and consumption continues.
"""

from __future__ import annotations

import logging
import threading

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from memtrail.kafka import consumer_config, producer_config
from memtrail.settings import Settings
from schemas.alerts import Alert
from schemas.deadletter import build_dead_letter
from schemas.heartbeat import SensorHeartbeat
from sinks.shim.store import Store

log = logging.getLogger(__name__)


class ShimConsumer:
    """A background thread: poll a batch, validate, upsert, commit."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        group_id: str = "memtrail-shim",
        registry: CollectorRegistry | None = None,
        batch_size: int = 500,
    ) -> None:
        self.settings = settings
        self.store = store
        self.group_id = group_id
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.assigned = threading.Event()
        self.last_error: str | None = None
        registry = registry or CollectorRegistry()
        self.m_consumed = Counter(
            "memtrail_shim_messages_total",
            "Messages consumed by the shim",
            ["topic", "result"],
            registry=registry,
        )
        self._dlq: Producer | None = None

    def start(self) -> ShimConsumer:
        self._thread = threading.Thread(target=self._run, name="shim-consumer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def _run(self) -> None:
        topics = self.settings.topics
        consumer = Consumer(consumer_config(self.settings.kafka, self.group_id))
        consumer.subscribe(
            [topics.alerts, topics.heartbeats],
            on_assign=lambda c, parts: self.assigned.set(),
        )
        try:
            while not self._stop.is_set():
                msgs = consumer.consume(self.batch_size, timeout=0.5)
                if not msgs:
                    continue
                try:
                    self.handle(msgs)
                except Exception as exc:  # store down: do not commit, re-read after a pause
                    self.last_error = f"store rejected a batch: {exc}"
                    log.error("%s; retrying from the last committed offset", self.last_error)
                    _rewind(consumer, msgs)
                    self._stop.wait(2.0)
                    continue
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as exc:  # e.g. a rebalance meanwhile: the next batch commits
                    log.warning("offset commit failed: %s", exc)
                    continue
                self.last_error = None
        except Exception as exc:  # pragma: no cover - logged for operators
            self.last_error = str(exc)
            log.exception("shim consumer stopped")
        finally:
            consumer.close()
            if self._dlq:
                self._dlq.flush(5)

    def handle(self, msgs: list[Message]) -> None:
        """Validate and store one polled batch (raises if the store fails)."""
        topics = self.settings.topics
        alerts: dict[str, Alert] = {}
        beats: list[SensorHeartbeat] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", err)
                continue
            topic = msg.topic() or ""
            try:
                if topic == topics.alerts:
                    alert = Alert.model_validate_json(msg.value() or b"")
                    prev = alerts.get(alert.id)
                    if prev is None or _version(alert) >= _version(prev):
                        alerts[alert.id] = alert
                elif topic == topics.heartbeats:
                    beats.append(SensorHeartbeat.model_validate_json(msg.value() or b""))
                else:
                    continue
                self.m_consumed.labels(topic=_label(topic, topics.alerts), result="ok").inc()
            except ValidationError as exc:
                self.m_consumed.labels(topic=_label(topic, topics.alerts), result="invalid").inc()
                self._deadletter(msg, f"invalid {'alert' if topic == topics.alerts else 'heartbeat'}: {exc}")
        self.store.upsert_alerts(alerts.values())
        self.store.upsert_heartbeats(beats)

    def _deadletter(self, msg: Message, reason: str) -> None:
        log.warning("dead-lettering %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), reason[:300])
        if self._dlq is None:
            self._dlq = Producer(producer_config(self.settings.kafka))
        key = msg.key()
        record = build_dead_letter(
            reason, "shim", msg.topic() or "", msg.partition(), msg.offset(), key, msg.value() or b""
        )
        self._dlq.produce(self.settings.topics.deadletter, key=key, value=orjson.dumps(record))
        self._dlq.poll(0)
        self._dlq.flush(10)  # the offset is committed next: the dead letter must be out first


def _label(topic: str, alerts_topic: str) -> str:
    return "alerts" if topic == alerts_topic else "heartbeats"


def _rewind(consumer: Consumer, msgs: list[Message]) -> None:
    """Seek each partition back to the first offset of the failed batch."""
    from confluent_kafka import TopicPartition

    first: dict[tuple[str, int], int] = {}
    for m in msgs:
        topic, part, off = m.topic(), m.partition(), m.offset()
        if m.error() is None and topic is not None and part is not None and off is not None:
            first[(topic, part)] = min(first.get((topic, part), off), off)
    for (topic, part), off in first.items():
        try:
            consumer.seek(TopicPartition(topic, part, off))
        except Exception as exc:  # pragma: no cover
            log.warning("seek %s[%s] failed: %s", topic, part, exc)


def _version(alert: Alert) -> int:
    """Newer copy of the same id: more repeats or more patterns (``revision``, never below count)."""
    return max(alert.revision, alert.count)
