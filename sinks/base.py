"""The shared sink consumer loop: consume alerts, deliver a batch, commit only after acceptance.

Each sink runs in its own consumer group (``memtrail-sink-<name>``), so destinations are
independent: a slow Wazuh never holds back OpenSearch. The loop guarantees:

* offsets are committed only after the destination accepted the batch (or the
  rejected part was written to the dead-letter topic and flushed): at least once;
* backpressure (:class:`SinkBackpressure`) pauses the partitions and retries the same
  batch later — nothing is dropped and nothing is skipped;
* input that is not an alert is dead-lettered with the reason, never silently lost.

Sinks are small async classes implementing :class:`Sink`; this module is the thin
Kafka shell around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from memtrail.core.kafka import consumer_config, producer_config
from memtrail.core.settings import Settings
from schemas.alerts import Alert
from schemas.deadletter import build_dead_letter
from sinks.metrics import BATCH_SECONDS, BROKER_UP, DELIVERIES, FAILURES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One consumed alert: the validated alert JSON (by alias) and where it came from."""

    alert: dict[str, Any]
    key: bytes | None
    topic: str
    partition: int
    offset: int
    raw: bytes

    @property
    def id(self) -> str:
        return str(self.alert["id"])


@dataclass(frozen=True)
class Rejected:
    """An alert the destination refused for good (it goes to the dead-letter topic)."""

    item: Incoming
    reason: str


class SinkBackpressure(Exception):
    """The destination cannot take the batch now: pause, wait ``retry_after`` s, send it again."""

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Sink(Protocol):
    name: str

    async def start(self) -> None:
        """Prepare the destination (templates, tokens, open files). May raise SinkBackpressure."""

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        """Deliver every alert or raise SinkBackpressure; return only permanent rejections."""

    async def flush(self) -> None:
        """Make delivered alerts durable (fsync a file); called before offsets are committed."""

    async def close(self) -> None: ...


def deadletter_record(
    reason: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes, sink: str
) -> dict[str, Any]:
    """A refused alert as the one dead-letter record (``component`` = ``sink:<name>``)."""
    return build_dead_letter(reason, f"sink:{sink}", topic, partition, offset, key, value)


def parse_alert(value: bytes | None) -> dict[str, Any]:
    """Validate one alerts-topic message; ValueError with a readable reason when it is not an alert."""
    if value is None:
        raise ValueError("empty message (tombstone)")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    try:
        return Alert.model_validate(data).to_json_dict()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"not an alert: {where}: {first['msg']}") from exc


@dataclass
class SinkRunner:
    """Runs one sink on the alerts topic (or ``topics``) until ``stop`` is set."""

    sink: Sink
    settings: Settings
    group_id: str | None = None
    batch_size: int = 500
    batch_timeout: float = 0.5
    max_pause: float = 60.0
    #: librdkafka consumer settings on top of the defaults (e.g. ``auto.offset.reset``).
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    #: Topics to consume (default: the alerts topic) and how to validate a message of each
    #: (``parse(topic, value)``: the document, or ValueError with the reason to dead-letter).
    topics: tuple[str, ...] = ()
    parse: Callable[[str, bytes | None], dict[str, Any]] | None = None
    #: Set once partitions are assigned; ``last_error`` says why delivery is held, if it is.
    assigned: threading.Event = field(default_factory=threading.Event, init=False)
    last_error: str | None = field(default=None, init=False)
    #: Seconds between broker probes (a metadata request); readiness is false while one fails.
    probe_interval: float = 5.0
    _broker_error: str | None = field(default=None, init=False)
    _next_probe: float = field(default=0.0, init=False)
    _consumer: Consumer | None = field(default=None, init=False, repr=False)
    _producer: Producer | None = field(default=None, init=False, repr=False)
    _ready: bool = field(default=False, init=False)

    @property
    def ready(self) -> bool:
        """Subscribed, and the broker answered the last probe."""
        return self._ready and self._broker_error is None

    @property
    def broker_error(self) -> str | None:
        return self._broker_error

    def _probe_broker(self) -> None:
        """Ask the broker for the alerts topic's metadata every ``probe_interval`` seconds: a
        consumer that cannot reach it keeps polling quietly, so readiness would never say so."""
        now = time.monotonic()
        if now < self._next_probe or self._consumer is None:
            return
        self._next_probe = now + self.probe_interval
        try:
            self._consumer.list_topics(self.settings.topics.alerts, timeout=min(2.0, self.probe_interval))
        except KafkaException as exc:
            if self._broker_error is None:
                log.warning(
                    "sink %s: broker unreachable (%s); not ready until it answers", self.sink.name, exc
                )
            self._broker_error = str(exc)
            BROKER_UP.labels(self.sink.name).set(0)
            return
        if self._broker_error is not None:
            log.info("sink %s: broker reachable again", self.sink.name)
        self._broker_error = None
        BROKER_UP.labels(self.sink.name).set(1)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        loop = asyncio.new_event_loop()
        group = self.group_id or f"memtrail-sink-{self.sink.name}"
        self._consumer = Consumer(
            consumer_config(
                self.settings.kafka, group, **{"max.poll.interval.ms": 600000, **self.consumer_overrides}
            )
        )
        self._producer = Producer(producer_config(self.settings.kafka, **{"linger.ms": 5}))
        try:
            self._start_sink(loop, stop)
            topics = list(self.topics) or [self.settings.topics.alerts]
            self._consumer.subscribe(topics, on_assign=lambda _c, _parts: self.assigned.set())
            self._ready = True
            log.info("sink %s consuming %s as group %s", self.sink.name, ",".join(topics), group)
            while not stop.is_set():
                self._probe_broker()
                msgs = self._consumer.consume(self.batch_size, self.batch_timeout)
                batch = [m for m in msgs if self._keep(m)]
                if batch:
                    self._process(loop, batch, stop)
        finally:
            self._ready = False
            loop.run_until_complete(self.sink.close())
            loop.close()
            self._consumer.close()
            self._producer.flush(10)

    def _start_sink(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                loop.run_until_complete(self.sink.start())
                return
            except SinkBackpressure as exc:
                log.warning("sink %s not ready: %s (retry in %.1fs)", self.sink.name, exc.reason, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.max_pause)

    @staticmethod
    def _keep(msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", err)
        return False

    def _process(self, loop: asyncio.AbstractEventLoop, msgs: list[Message], stop: threading.Event) -> None:
        name = self.sink.name
        good: list[Incoming] = []
        dead: list[dict[str, Any]] = []
        for m in msgs:
            topic, partition, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
            raw = m.value() or b""
            try:
                alert = self.parse(topic, m.value()) if self.parse is not None else parse_alert(m.value())
            except ValueError as exc:
                FAILURES.labels(name, "invalid").inc()
                dead.append(deadletter_record(str(exc), topic, partition, offset, m.key(), raw, name))
                continue
            good.append(Incoming(alert, m.key(), topic, partition, offset, raw))

        delay = 0.5
        paused = False
        started = time.monotonic()
        while True:
            try:
                rejected = loop.run_until_complete(self.sink.deliver(good)) if good else []
                loop.run_until_complete(self.sink.flush())
                self.last_error = None
                break
            except SinkBackpressure as exc:
                self.last_error = exc.reason
                FAILURES.labels(name, "backpressure").inc()
                if stop.is_set():
                    return  # uncommitted: redelivered after restart
                if not paused:
                    self._consumer.pause(self._consumer.assignment())  # type: ignore[union-attr]
                    paused = True
                wait = max(exc.retry_after, delay)
                log.warning("sink %s backpressure: %s; batch held, retry in %.1fs", name, exc.reason, wait)
                self._idle(wait, stop)
                delay = min(delay * 2, self.max_pause)
        BATCH_SECONDS.labels(name).observe(time.monotonic() - started)
        for r in rejected:
            FAILURES.labels(name, "rejected").inc()
            it = r.item
            dead.append(deadletter_record(r.reason, it.topic, it.partition, it.offset, it.key, it.raw, name))
        DELIVERIES.labels(name).inc(len(good) - len(rejected))
        if dead:
            self._deadletter(dead)
        self._commit(msgs)
        if paused:
            self._consumer.resume(self._consumer.assignment())  # type: ignore[union-attr]

    def _idle(self, seconds: float, stop: threading.Event) -> None:
        """Wait while paused, polling so the group membership stays alive."""
        end = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < end:
            msg = self._consumer.poll(min(0.2, max(0.0, end - time.monotonic())))  # type: ignore[union-attr]
            if msg is not None and msg.error() is None:
                # Paused partitions return nothing; a message here came from a partition
                # assigned during the pause. It is not committed, so it comes back later.
                tp = TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
                with contextlib.suppress(KafkaException):
                    self._consumer.seek(tp)  # type: ignore[union-attr]

    def _deadletter(self, records: list[dict[str, Any]]) -> None:
        assert self._producer is not None
        topic = self.settings.topics.deadletter
        for rec in records:
            self._producer.produce(topic, key=rec["key"], value=orjson.dumps(rec))
            self._producer.poll(0)
        remaining = self._producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} dead-letter records not acknowledged: not committing the batch")
        log.warning(
            "sink %s dead-lettered %d alert(s): %s", self.sink.name, len(records), records[0]["reason"]
        )

    def _commit(self, msgs: list[Message]) -> None:
        assert self._consumer is not None
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            tp = (m.topic() or "", m.partition() or 0)
            last[tp] = max(last.get(tp, -1), m.offset() or 0)
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # e.g. partitions revoked meanwhile: the new owner redelivers
            log.warning("commit failed (%s): the batch will be delivered again", exc)
