"""The shim on the real local broker: consuming alerts/heartbeats, publishing the self-test and patterns."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from memtrail.core.kafka import consumer_config, ensure_topics, producer_config
from memtrail.core.settings import Settings
from patterns.engine.api import load_engine
from schemas.events import EventBatch
from sinks.shim.consumer import ShimConsumer
from sinks.shim.publisher import SELFTEST_HOST, Publisher, selftest_batch
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import heartbeat, make_alert, make_client

pytestmark = pytest.mark.broker


def wait_for(cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def read_topic(settings: Settings, topic: str, n: int, timeout: float = 20.0) -> list[Any]:
    """The first ``n`` messages of a topic (all partitions), from the beginning."""
    c = Consumer(consumer_config(settings.kafka, f"reader-{time.monotonic_ns()}"))
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
    finally:
        c.close()
    return out


def test_consumes_alerts_and_heartbeats_into_the_store(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    store = Store(str(tmp_path / "s.sqlite3"))
    p = Producer(producer_config(settings.kafka))
    a1 = make_alert("k1", count=1)
    a1_again = make_alert("k1", count=4)  # the same grouped alert, re-published with a higher count
    a2 = make_alert("k2", rule="MT-INJECT-PTRACE")
    for a in (a1, a1_again, a2):
        p.produce(settings.topics.alerts, key=a.id.encode(), value=orjson.dumps(a.to_json_dict()))
    p.produce(settings.topics.alerts, key=b"bad", value=b'{"id": "bad", "rule": 1}')
    hb = heartbeat("node-k", age_s=1)
    p.produce(settings.topics.heartbeats, key=hb.host.encode(), value=hb.model_dump_json().encode())
    assert p.flush(10) == 0

    consumer = ShimConsumer(settings, store, group_id="shim-test").start()
    try:
        wait_for(lambda: (store.get_alert("k1") or {}).get("count") == 4 and store.get_alert("k2"))
        wait_for(store.heartbeats)
    finally:
        consumer.stop()
    assert store.heartbeats()[0].host == "node-k"
    assert store.get_alert("bad") is None
    assert consumer.m_consumed.labels(topic="alerts", result="invalid")._value.get() == 1

    # the invalid message is not lost: it is on the dead-letter topic with the reason
    dead = read_topic(settings, settings.topics.deadletter, 1)
    assert len(dead) == 1
    record = orjson.loads(dead[0].value())
    assert record["source_topic"] == settings.topics.alerts and "invalid alert" in record["reason"]
    assert orjson.loads(record["value"]) == {"id": "bad", "rule": 1}

    # offsets were committed after the store accepted: the group has nothing left to read
    c = Consumer(consumer_config(settings.kafka, "shim-test"))
    parts = [TopicPartition(settings.topics.alerts, i) for i in range(settings.kafka.partitions)]
    committed = c.committed(parts, timeout=10)
    c.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 4


def test_selftest_publishes_a_fileless_exec_pair(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    store = Store(str(tmp_path / "s.sqlite3"))
    with make_client(store, settings=settings, publisher=Publisher(settings)) as client:
        r = client.post("/api/v1/security-events/test")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["topic"] == settings.topics.raw and body["host"] == SELFTEST_HOST
    msgs = read_topic(settings, settings.topics.raw, 1)
    assert len(msgs) == 1 and msgs[0].key() == f"host:{SELFTEST_HOST}".encode()
    batch = EventBatch.model_validate_json(msgs[0].value())
    memfd, execve = batch.events
    assert (memfd.syscall, execve.syscall) == ("memfd_create", "execve")
    assert memfd.process.pid == execve.process.pid and memfd.source == execve.source == "test"
    assert execve.args["filename"] == f"/proc/self/fd/{memfd.ret}" and execve.args["exe_memfd"] is True
    assert [e["id"] for e in body["events"]] == [memfd.id, execve.id]


def test_selftest_batch_is_detected_as_t1620_by_the_engine() -> None:
    """The shipped pattern library turns the self-test pair into a T1620 alert (no broker needed)."""
    engine = load_engine(Settings().patterns_dirs)
    alerts = engine.process_batch([e.model_dump(mode="json") for e in selftest_batch().events])
    assert any("T1620" in a.threat.technique.id for a in alerts)
    assert {a.host.name for a in alerts} == {SELFTEST_HOST}


VALID_PATTERN: dict[str, Any] = {
    "id": "MT-CUSTOM-SHIM-001",
    "name": "curl run from /tmp",
    "description": "A custom pattern added through the shim.",
    "severity": "warning",
    "techniques": ["T1105"],
    "tags": ["custom"],
    "condition": {"syscall": "execve", "args.filename": {"startswith": "/tmp/"}},
}


def test_post_pattern_validates_then_publishes(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    store = Store(str(tmp_path / "s.sqlite3"))
    with make_client(store, settings=settings, publisher=Publisher(settings)) as client:
        bad = client.post("/api/v1/patterns", json={**VALID_PATTERN, "id": "lower", "severity": "loud"})
        assert bad.status_code == 422
        fields = {tuple(d["loc"]) for d in bad.json()["detail"]}
        assert ("body", "id") in fields and ("body", "severity") in fields
        unknown = client.post("/api/v1/patterns", json={**VALID_PATTERN, "surprise": 1})
        assert unknown.status_code == 422

        r = client.post("/api/v1/patterns", json=VALID_PATTERN)
        assert r.status_code == 201, r.text
        assert r.json() == {"id": VALID_PATTERN["id"], "published": True, "topic": settings.topics.patterns}
        listed = client.get("/api/v1/patterns").json()
    custom = [p for p in listed["patterns"] if p["custom"]]
    assert [p["id"] for p in custom] == [VALID_PATTERN["id"]] and custom[0]["techniques"] == ["T1105"]
    assert any(p["id"] == "MT-FILELESS-001" for p in listed["patterns"])

    msgs = read_topic(settings, settings.topics.patterns, 1)
    assert len(msgs) == 1 and msgs[0].key() == VALID_PATTERN["id"].encode()
    assert orjson.loads(msgs[0].value()) == {"op": "upsert", "spec": VALID_PATTERN}
