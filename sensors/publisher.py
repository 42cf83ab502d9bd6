"""Batches events per partition key and publishes them as EventBatch JSON; spools when Kafka is away.

Batches are wire format v2 (``schemas.wire``: each process and ancestor once per batch)
unless ``wire_version=1`` (self-contained events).

Direct mode: batches go to the confluent-kafka producer. A delivery failure, a
fatal client error, "all brokers down" or a full producer queue switches to spool
mode. Order is kept across the switch: the batches still queued or in flight in the
producer are purged at once and spooled first (their delivery reports arrive in
produce order per partition); batches made meanwhile wait in memory and follow them
into the spool. A background probe watches the broker, and when it answers the spool
is replayed oldest first with a fresh producer before direct mode resumes, so each
partition key sees its batches in the order they were made (a purged in-flight batch
the broker did store arrives twice: delivery is at least once).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from memtrail.core.kafka import producer_config
from memtrail.core.settings import Settings
from schemas import wire
from schemas.events import partition_key
from schemas.wire import WIRE_VERSION
from sensors import metrics as M
from sensors.spool import Spool

log = logging.getLogger(__name__)
#: Errors a retry cannot fix: counted and logged as drops instead of spooled forever.
_PERMANENT = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG, KafkaError.TOPIC_AUTHORIZATION_FAILED}


class Publisher:
    def __init__(
        self,
        settings: Settings,
        spool_dir: Path,
        *,
        max_batch: int = 1000,
        flush_interval: float = 0.05,
        spool_max_bytes: int = 256 << 20,
        delivery_timeout_ms: int = 10000,
        max_message_bytes: int = 900_000,
        wire_version: int = WIRE_VERSION,
        clock_offset: float | None = None,
    ) -> None:
        self.settings = settings
        self.host = settings.host_name
        self.topic = settings.topics.raw
        self.max_batch = max_batch
        self.flush_interval = flush_interval
        self.delivery_timeout_ms = delivery_timeout_ms
        self.max_message_bytes = max_message_bytes
        self.wire_version = wire_version
        #: the decoder's wall − monotonic offset: v2 events whose time it gives are sent without it
        self.clock_offset = clock_offset
        #: raw bytes and events published (bytes per event at Kafka, before compression)
        self.bytes_out = 0
        self.events_out = 0
        self._bytes_per_event = 2000.0
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._pending_n = 0
        self._last_flush = time.monotonic()
        self.spooling = bool(self.spool)  # leftovers from a previous run: replay first
        #: Spool mode began while the producer still held batches: they are purged and
        #: spooled first, and new batches wait here (in order) until that is done.
        self._settling = False
        self._held: list[tuple[bytes, bytes, int]] = []
        self._broker_up = threading.Event()
        self._stop = threading.Event()
        self._producer = self._new_producer()
        self.published_events = 0
        self.dropped_events = 0
        self.producer_errors = 0
        self._probe = threading.Thread(target=self._probe_loop, name="kafka-probe", daemon=True)
        self._probe.start()

    # ---- producer ----
    def _new_producer(self) -> Producer:
        cfg = producer_config(
            self.settings.kafka,
            **{"message.timeout.ms": self.delivery_timeout_ms, "error_cb": self._on_error},
        )
        return Producer(cfg)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN or err.fatal():
            self._enter_spool_mode(f"Kafka unavailable ({err.str()})")
        self.producer_errors += 1
        M.PRODUCER_ERRORS.inc()

    def _enter_spool_mode(self, why: str) -> None:
        if not self.spooling:
            log.warning("%s: spooling to %s", why, self.spool.dir)
            self.spooling = True
            self._settling = True
        self._broker_up.clear()

    def _settle(self) -> None:
        """Spool what the producer still holds, then the batches held back meanwhile.

        Purging does not wait for ``message.timeout.ms``: the purged batches' delivery
        reports (served by ``poll``) put them in the spool ahead of anything newer."""
        p = self._producer
        if len(p):
            p.purge(in_queue=True, in_flight=True, blocking=False)
            p.poll(0.01)
        if len(p):
            return
        held, self._held = self._held, []
        self._settling = False
        for key, value, n in held:
            self._to_spool(key, value, n)

    def _on_delivery(self, n: int, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.published_events += n
            M.BATCHES.inc()
            M.PUBLISHED.inc(n)
            return
        self.producer_errors += 1
        M.PRODUCER_ERRORS.inc()
        if err.code() in _PERMANENT:
            self._drop(n, err.str())
            return
        if err.code() not in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._enter_spool_mode(f"Kafka delivery failed ({err.str()})")
        self._to_spool(msg.key() or b"", msg.value() or b"", n)

    def _probe_loop(self) -> None:
        from memtrail.core.kafka import BrokerUnreachable, check_reachable

        while not self._stop.wait(1.0):
            if not self.spooling or self._broker_up.is_set():
                continue
            try:
                check_reachable(self.settings.kafka, timeout=2.0)
            except BrokerUnreachable:
                continue
            self._broker_up.set()

    # ---- batching ----
    def add(self, event: dict[str, Any]) -> None:
        key = partition_key(self.host, event.get("container_id"))
        self._pending.setdefault(key, []).append(event)
        self._pending_n += 1
        if self._pending_n >= self.max_batch:
            self.flush()

    def tick(self) -> None:
        """Call often: time-based flush, delivery callbacks, spool replay."""
        now = time.monotonic()
        if self._pending_n and now - self._last_flush >= self.flush_interval:
            self.flush()
        self._producer.poll(0)
        if self._settling:
            self._settle()
        elif self.spooling and self._broker_up.is_set():
            self._replay()
        M.SPOOL_DEPTH.set(self.spool.depth)

    def flush(self) -> None:
        pending, self._pending, self._pending_n = self._pending, {}, 0
        self._last_flush = time.monotonic()
        for key, events in pending.items():
            self._send_events(key, events)

    def _send_events(self, key: str, events: list[dict[str, Any]]) -> None:
        # Chunk by the running bytes-per-event estimate so each message stays under the
        # broker's size limit without serialising twice.
        per_chunk = max(1, int(self.max_message_bytes * 0.8 / self._bytes_per_event))
        for i in range(0, len(events), per_chunk):
            chunk = events[i : i + per_chunk]
            if self.wire_version == WIRE_VERSION:
                value = orjson.dumps(wire.encode(self.host, key, chunk, self.clock_offset))
            else:
                value = orjson.dumps({"v": 1, "host": self.host, "key": key, "events": chunk})
            self.bytes_out += len(value)
            self.events_out += len(chunk)
            M.WIRE_BYTES.inc(len(value))
            M.WIRE_EVENTS.inc(len(chunk))
            self._bytes_per_event = 0.8 * self._bytes_per_event + 0.2 * (len(value) / len(chunk))
            if len(value) > self.max_message_bytes and len(chunk) > 1:
                half = len(chunk) // 2  # the estimate was off: split this one
                self._send_events(key, chunk[:half])
                self._send_events(key, chunk[half:])
                continue
            self._send(key.encode(), value, len(chunk))

    def _send(self, key: bytes, value: bytes, n: int) -> None:
        if not self.spooling:
            try:
                self._produce(key, value, n)
                return
            except BufferError:
                self._enter_spool_mode("Kafka producer queue full")
            except KafkaException as exc:
                if exc.args[0].code() in _PERMANENT:
                    self._drop(n, str(exc))
                    return
                self._enter_spool_mode(f"produce failed ({exc})")
        if self._settling:
            self._held.append((key, value, n))  # tick() settles
        else:
            self._to_spool(key, value, n)

    def _produce(self, key: bytes, value: bytes, n: int) -> None:
        try:
            self._producer.produce(
                self.topic, value=value, key=key, on_delivery=partial(self._on_delivery, n)
            )
        except BufferError:
            self._producer.poll(0.1)  # a slow broker: serve delivery reports, then one more try
            self._producer.produce(
                self.topic, value=value, key=key, on_delivery=partial(self._on_delivery, n)
            )

    def _drop(self, n: int, why: str) -> None:
        self.dropped_events += n
        M.SPOOL_DROPPED.inc(n)
        log.error("dropped a batch of %d events: %s (%d dropped so far)", n, why, self.dropped_events)

    def _to_spool(self, key: bytes, value: bytes, n: int) -> None:
        if not self.spool.append(n.to_bytes(4, "little") + key, value):
            self.dropped_events += n
            M.SPOOL_DROPPED.inc(n)
            log.error(
                "spool full (%d bytes): dropped a batch of %d events (%d dropped so far)",
                self.spool.size_bytes,
                n,
                self.dropped_events,
            )

    def _replay(self) -> None:
        """Broker is back: let the old producer settle, then deliver the spool in order."""
        old = self._producer
        if len(old):
            old.poll(0.05)  # in-flight messages deliver or fail (and spool) first
            return
        self._producer = self._new_producer()
        replayed = 0
        while self.spool:
            got = self.spool.oldest()
            if got is None:
                break
            seg, records = got
            failed: list[int] = []

            def cb(n: int, err: KafkaError | None, msg: Any, failed: list[int] = failed) -> None:
                if err is not None and err.code() in _PERMANENT:
                    self._drop(n, err.str())
                elif err is not None:
                    failed.append(1)
                else:
                    self.published_events += n
                    M.BATCHES.inc()
                    M.PUBLISHED.inc(n)

            for k, v in records:
                n, key = int.from_bytes(k[:4], "little"), k[4:]
                try:
                    self._producer.produce(self.topic, value=v, key=key, on_delivery=partial(cb, n))
                except BufferError:
                    self._producer.poll(0.5)
                    failed.append(1)
                    break
                except KafkaException as exc:
                    self._drop(n, f"spooled batch refused by Kafka: {exc}")
                self._producer.poll(0)
            left = self._producer.flush(self.delivery_timeout_ms / 1000 + 5)
            if failed or left:
                log.warning("spool replay interrupted: broker unavailable again")
                self._broker_up.clear()
                if left:  # nothing of this segment may land after its retry
                    self._producer.purge(in_queue=True, in_flight=True, blocking=False)
                    self._producer.poll(0.1)
                return  # segment kept (some of it may be delivered twice on the next try)
            self.spool.remove(seg, len(records))
            replayed += len(records)
        self.spooling = False
        log.info("Kafka reachable again: replayed %d spooled batches", replayed)

    def close(self) -> None:
        """Flush what is pending. Every queued batch is delivered or fails within the
        delivery timeout, and a failed one is spooled by its callback, so waiting that
        long loses nothing; the spool is replayed at the next start."""
        self.flush()
        if self._settling:
            self._settle()
        left = self._producer.flush(self.delivery_timeout_ms / 1000 + 2)
        if left:  # still undelivered: spool them (reports served by poll), not lose them
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.poll(0.5)
            left = len(self._producer)
            if left:
                log.error("%d batches neither delivered nor failed at shutdown: lost", left)
        self._producer.poll(0)
        for key, value, n in self._held:
            self._to_spool(key, value, n)
        self._held.clear()
        if self.spool:
            log.warning(
                "%d batches left in the spool %s: replayed at the next start",
                self.spool.depth,
                self.spool.dir,
            )
        self._stop.set()
        self.spool.close()
