"""confluent-kafka client settings and topic set-up shared by every component.

TLS and SASL come from ``KafkaSettings.security`` (one block for every client:
:func:`security_config` here for librdkafka, :mod:`streams.kafka_auth` for the worker).
Tansu quirks (see ../shared/tansu-notes.md and docs/stream.md) only apply when the embedded local broker is in use:
short session timeouts (every group join waits session.timeout.ms/2) and a short
fetch wait (its long-poll sleeps instead of waking on data).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from memtrail.core.settings import KafkaSecurity, KafkaSettings, Settings

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger("librdkafka")


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered at the configured bootstrap address."""


class KafkaSecurityError(BrokerUnreachable):
    """The TLS/SASL settings name a file that cannot be used: the broker cannot be reached securely."""


def _readable(what: str, path: Any) -> str:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise KafkaSecurityError(f"Kafka {what} {path}: {exc.strerror}") from exc
    return str(path)


def security_config(sec: KafkaSecurity) -> dict[str, Any]:
    """librdkafka properties for the TLS/SASL settings (files checked now, with a readable error)."""
    cfg: dict[str, Any] = {"security.protocol": sec.protocol}
    if sec.tls:
        if sec.ca_file:
            cfg["ssl.ca.location"] = _readable("CA file", sec.ca_file)
        if sec.cert_file and sec.key_file:
            cfg["ssl.certificate.location"] = _readable("client certificate", sec.cert_file)
            cfg["ssl.key.location"] = _readable("client key", sec.key_file)
        if sec.key_password:
            cfg["ssl.key.password"] = sec.key_password.get_secret_value()
        cfg["ssl.endpoint.identification.algorithm"] = "https" if sec.verify_hostname else "none"
    if sec.sasl:
        cfg["sasl.mechanisms"] = sec.sasl_mechanism
        cfg["sasl.username"] = sec.sasl_username
        cfg["sasl.password"] = sec.sasl_password.get_secret_value() if sec.sasl_password else ""
    return cfg


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext | None:
    """The same TLS settings as a stdlib context (aiokafka, hence the Faust worker); None without TLS."""
    if not sec.tls:
        return None
    cafile = _readable("CA file", sec.ca_file) if sec.ca_file else None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.check_hostname = sec.verify_hostname
    if sec.cert_file and sec.key_file:
        password = sec.key_password.get_secret_value() if sec.key_password else None
        try:
            ctx.load_cert_chain(
                _readable("client certificate", sec.cert_file),
                _readable("client key", sec.key_file),
                password=password,
            )
        except ssl.SSLError as exc:
            raise KafkaSecurityError(f"Kafka client certificate/key unusable: {exc}") from exc
    return ctx


def base_config(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap:
        raise BrokerUnreachable("no Kafka bootstrap server configured (MEMTRAIL_KAFKA__BOOTSTRAP)")
    # librdkafka logs go through Python logging (not stderr), so operators control them.
    return {
        "bootstrap.servers": kafka.bootstrap,
        "logger": _rdkafka_log,
        "log.connection.close": False,
        **security_config(kafka.security),
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
