"""confluent-kafka client settings and topic set-up shared by every component.

Tansu quirks (see docs/tansu.md) only apply when the embedded local broker is in use:
short session timeouts (every group join waits session.timeout.ms/2) and a short
fetch wait (its long-poll sleeps instead of waking on data).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from memtrail.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger("librdkafka")


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered at the configured bootstrap address."""


def base_config(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap:
        raise BrokerUnreachable("no Kafka bootstrap server configured (MEMTRAIL_KAFKA__BOOTSTRAP)")
    # librdkafka logs go through Python logging (not stderr), so operators control them.
    return {
        "bootstrap.servers": kafka.bootstrap,
        "logger": _rdkafka_log,
        "log.connection.close": False,
        **kafka.extra,
    }


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, compressed, batched: the sensor's and the stream's producers."""
    cfg = {
        **base_config(kafka),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.kbytes": 262144,
        "message.timeout.ms": 0,  # never expire in the queue: the caller decides (spool)
    }
    cfg.update(overrides)
    return cfg


def consumer_config(kafka: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    cfg = {
        **base_config(kafka),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if kafka.local_broker:
        cfg.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 50})
    cfg.update(overrides)
    return cfg


def check_reachable(kafka: KafkaSettings, timeout: float = 10.0) -> None:
    """Raise BrokerUnreachable with a readable message instead of librdkafka's retry loop."""
    admin = AdminClient({**base_config(kafka), "socket.timeout.ms": int(timeout * 1000)})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(f"Kafka broker {kafka.bootstrap} unreachable: {exc.args[0]}") from exc


def ensure_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Create every Memtrail topic that does not exist yet (compacted where it is a table)."""
    kafka = settings.kafka
    admin = AdminClient(base_config(kafka))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerUnreachable(f"Kafka broker {kafka.bootstrap} unreachable: {exc.args[0]}") from exc
    compacted = {settings.topics.containers}
    new = []
    for name in settings.topics.model_dump().values():
        if name in existing:
            continue
        config = {"cleanup.policy": "compact"} if name in compacted else {}
        new.append(
            NewTopic(
                name,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                config=config,
            )
        )
    if not new:
        return
    for topic, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            err = exc.args[0]
            if getattr(err, "name", lambda: "")() != "TOPIC_ALREADY_EXISTS":
                raise BrokerUnreachable(f"cannot create topic {topic}: {err}") from exc
        log.debug("topic %s ready", topic)
