"""Publisher on the real local broker: batching per key, and spool across a shutdown while Kafka is away."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from memtrail.core.broker import free_port
from memtrail.core.settings import KafkaSettings, Settings
from sensors.publisher import Publisher
from tests.sensors.test_pipeline import consume_all, events_of

pytestmark = pytest.mark.broker

CID = "d" * 64


def _events(n: int, tag: str, container: str | None = None) -> list[dict]:
    return [{"id": f"h:{i}:1", "syscall": "openat", "tag": tag, "container_id": container} for i in range(n)]


def test_batches_are_keyed_and_bounded(settings: Settings, tmp_path: Path) -> None:
    pub = Publisher(settings, tmp_path, max_batch=100, max_message_bytes=4000, delivery_timeout_ms=5000)
    for e in _events(30, "host") + _events(30, "ctr", CID):
        pub.add(e)
    pub.flush()
    pub.close()
    msgs = consume_all(
        settings.kafka.bootstrap or "", settings.topics.raw, until=lambda out: len(events_of(out)) >= 60
    )
    assert len(events_of(msgs)) == 60 and pub.published_events == 60
    assert {m["key"] for m in msgs} == {b"host:" + settings.host_name.encode(), CID.encode()}
    assert all(m["key"].decode() == m["value"]["key"] for m in msgs)
    assert len(msgs) > 2  # split to stay under max_message_bytes


def test_shutdown_without_broker_spools_then_replays(settings: Settings, tmp_path: Path) -> None:
    down = Settings(kafka=KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"), topics=settings.topics)
    pub = Publisher(down, tmp_path, delivery_timeout_ms=1000)
    for e in _events(25, "offline"):
        pub.add(e)
    t0 = time.monotonic()
    pub.close()
    assert time.monotonic() - t0 < 10
    assert pub.spool.depth >= 1 and pub.published_events == 0 and pub.dropped_events == 0

    again = Publisher(settings, tmp_path, delivery_timeout_ms=5000)  # next start, broker back
    assert again.spooling
    deadline = time.monotonic() + 30
    while again.spooling and time.monotonic() < deadline:
        again.tick()
        time.sleep(0.1)
    again.close()
    assert not again.spooling and again.spool.depth == 0
    msgs = consume_all(
        settings.kafka.bootstrap or "", settings.topics.raw, until=lambda out: len(events_of(out)) >= 25
    )
    assert sorted(e["id"] for e in events_of(msgs)) == sorted(e["id"] for e in _events(25, "offline"))
