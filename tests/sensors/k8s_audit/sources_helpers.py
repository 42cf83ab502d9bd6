"""Helpers for tests/sensors/k8s_audit (a module, not conftest, so imports are unambiguous)."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from memtrail.core.kafka import consumer_config
from memtrail.core.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return data


@dataclass
class Webhook:
    url: str  # full URL of the audit endpoint
    base: str
    ca: Path  # the self-signed certificate, to verify the server

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def consume(
    settings: Settings, topic: str, n: int, timeout: float = 20.0
) -> list[tuple[str | None, dict[str, Any]]]:
    """Read ``n`` messages (key, JSON value) from every partition of ``topic`` from the start.

    Partitions are assigned, not subscribed: no consumer-group join to wait for.
    """
    c = Consumer(consumer_config(settings.kafka, "memtrail-tests-unused"))
    out: list[tuple[str | None, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        parts: list[int] = []
        while not parts and time.monotonic() < deadline:
            md = c.list_topics(topic, timeout=5).topics.get(topic)
            parts = sorted(md.partitions) if md is not None and not md.error else []
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            key, value = msg.key(), msg.value()
            assert value is not None, f"a message without a value on {topic}"
            out.append((key.decode() if key else None, orjson.loads(value)))
    finally:
        c.close()
    assert len(out) >= n, f"only {len(out)} of {n} messages on {topic} within {timeout}s"
    return out
