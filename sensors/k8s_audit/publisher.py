"""Publish normalised audit events (and dead letters) to Kafka, synchronously per request.

A webhook request is answered 200 only after Kafka acknowledged every event of it; on any
failure the request is answered 503 and the API server's webhook backend retries the
batch (event ids are deterministic, so a retry after a partial success only duplicates,
never loses, and duplicates collapse in the engine's deterministic alert ids).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from memtrail.core.kafka import producer_config
from memtrail.core.settings import Settings
from sensors.k8s_audit.normalize import message_key


class PublishError(RuntimeError):
    """Kafka did not acknowledge every message in time."""


class AuditPublisher:
    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.topic = settings.topics.k8s_audit
        self.deadletter_topic = settings.topics.deadletter
        self.timeout_s = timeout_s
        # Failures must surface inside the request: a finite delivery timeout, not the default 0 (never).
        self._producer = Producer(
            producer_config(settings.kafka, **{"message.timeout.ms": int(timeout_s * 1000)})
        )
        self._lock = threading.Lock()  # one request's flush must not wait on another's messages forever
        self.last_ok: float | None = None
        #: False after a failed publish until the next success: the webhook's /readyz.
        self.healthy = True

    def publish(
        self, events: Sequence[Mapping[str, Any]], deadletters: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        messages: list[tuple[str, Any, Mapping[str, Any]]] = [(self.topic, message_key(e), e) for e in events]
        messages += [(self.deadletter_topic, d.get("key"), d) for d in deadletters]
        with self._lock:
            for topic, key, value in messages:
                while True:
                    try:
                        self._producer.produce(
                            topic,
                            key=key.encode() if isinstance(key, str) else None,
                            value=orjson.dumps(value),
                            on_delivery=on_delivery,
                        )
                        break
                    except BufferError:  # local queue full: let it drain, then retry
                        self._producer.poll(0.1)
                self._producer.poll(0)
            remaining = self._producer.flush(self.timeout_s)
        if remaining or errors:
            self.healthy = False
            detail = f"{remaining} unacknowledged" if remaining else str(errors[0])
            raise PublishError(f"Kafka did not take {len(messages)} messages: {detail}")
        self.last_ok = time.time()
        self.healthy = True

    def ready(self) -> bool:
        """For /readyz: true unless the last publish failed and Kafka still does not answer.

        Probing here (not just reporting the last failure) matters: an unready pod gets no
        requests, so without a probe it could never publish again to become ready.
        """
        if self.healthy:
            return True
        try:
            self._producer.list_topics(self.topic, timeout=2)
        except KafkaException:
            return False
        self.healthy = True
        return True

    def close(self) -> None:
        self._producer.flush(self.timeout_s)
