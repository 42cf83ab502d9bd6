"""Sensor → real local broker: round trip, heartbeat, and no loss across a broker restart (spool)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from memtrail.core.broker import LocalBroker
from memtrail.core.settings import KafkaSettings, Settings
from schemas import wire
from sensors.config import SensorSettings
from sensors.runner import Sensor

pytestmark = [pytest.mark.ebpf, pytest.mark.broker, pytest.mark.slow]


def consume_all(bootstrap: str, topic: str, timeout: float = 10.0, until: Any = None) -> list[dict[str, Any]]:
    """Every message of ``topic`` from the beginning (no consumer group: no join delay)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        parts: list[int] = []
        while not parts and time.monotonic() < deadline:
            md = c.list_topics(topic, timeout=5)
            parts = (
                list(md.topics[topic].partitions) if topic in md.topics and not md.topics[topic].error else []
            )
            if not parts:
                time.sleep(0.2)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append({"key": m.key(), "value": orjson.loads(m.value() or b"{}")})
            if until is not None and until(out):
                break
    finally:
        c.close()
    return out


def events_of(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for m in msgs for e in wire.events_of(m["value"])]


def markers(msgs: list[dict[str, Any]], tag: str) -> set[str]:
    return {
        e["args"]["argv"][1]
        for e in events_of(msgs)
        if e["syscall"] == "execve"
        and len(e["args"].get("argv", [])) > 1
        and e["args"]["argv"][1].startswith(tag)
    }


def fire(tag: str, n: int) -> set[str]:
    names = {f"{tag}-{i}" for i in range(n)}
    for name in sorted(names):
        subprocess.run(["/bin/true", name], check=True)
    return names


class Running:
    def __init__(self, settings: Settings, cfg: SensorSettings) -> None:
        self.sensor = Sensor(settings, cfg)
        self.sensor.start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sensor.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    b = LocalBroker()
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def running(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, local_broker=True))
    cfg = SensorSettings(
        spool_dir=tmp_path_factory.mktemp("spool"), delivery_timeout_ms=3000, heartbeat_interval_s=1.0
    )
    r = Running(settings, cfg)
    yield r
    r.close()


def test_round_trip(running: Running, broker: LocalBroker) -> None:
    tag = f"rt{uuid.uuid4().hex[:6]}"
    want = fire(tag, 5)
    topic = running.sensor.settings.topics.raw
    msgs = consume_all(broker.bootstrap, topic, until=lambda out: markers(out, tag) >= want)
    assert markers(msgs, tag) == want
    m = next(m for m in msgs if m["value"]["key"] == f"host:{running.sensor.host}")
    assert m["key"] == m["value"]["key"].encode() and m["value"]["v"] == wire.WIRE_VERSION
    ev = next(
        e
        for e in events_of(msgs)
        if e["syscall"] == "execve" and len(e["args"]["argv"]) > 1 and e["args"]["argv"][1] in want
    )
    assert ev["container_id"] is None
    # the file the kernel executed (/bin is /usr/bin here), and how it was learned, across the wire
    assert ev["process"]["exe"] == os.path.realpath("/bin/true") and ev["process"]["exe_source"] == "kernel"
    hb = consume_all(
        broker.bootstrap, running.sensor.settings.topics.heartbeats, until=lambda out: len(out) >= 1
    )
    assert (
        hb
        and hb[0]["value"]["host"] == running.sensor.host
        and "sched:sched_process_exec" in hb[0]["value"]["programs"]
    )


def test_broker_restart_loses_nothing(running: Running, broker: LocalBroker) -> None:
    pub = running.sensor.publisher
    assert pub is not None
    broker.stop()
    during = fire(f"down{uuid.uuid4().hex[:6]}", 20)
    deadline = time.monotonic() + 30
    while not (pub.spooling and pub.spool.depth > 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pub.spooling and pub.spool.depth > 0, "events were not spooled while the broker was down"
    broker.start()  # same port, empty memory storage
    deadline = time.monotonic() + 60
    while pub.spooling and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pub.spooling, "spool not replayed after the broker came back"
    after = fire(f"up{uuid.uuid4().hex[:6]}", 5)
    topic = running.sensor.settings.topics.raw
    want = during | after
    tags = {next(iter(during)).rsplit("-", 1)[0], next(iter(after)).rsplit("-", 1)[0]}

    def got(out: list[dict[str, Any]]) -> set[str]:
        return set().union(*(markers(out, t) for t in tags))

    msgs = consume_all(broker.bootstrap, topic, timeout=20, until=lambda out: got(out) >= want)
    assert got(msgs) == want
    assert pub.dropped_events == 0
