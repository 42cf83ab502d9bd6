"""One incident per attack through a real ``memtrail worker`` on the real local broker."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from memtrail.core.kafka import producer_config
from memtrail.core.settings import Settings
from tests.streams.helpers import WorkerProc, batch, consume, memfd_exec, memfd_pair, produce

pytestmark = pytest.mark.broker


#: A warning on every memfd_create, applied through the patterns topic: the tests do not
#: hang on which library patterns fire on it (e.g. "memfd_create by a Python interpreter").
WARN_MEMFD = {
    "id": "MT-TEST-MEMFD",
    "name": "Test: memfd_create",
    "description": "Any memfd_create (a test pattern)",
    "severity": "warning",
    "techniques": ["T1620"],
    "condition": {"syscall": "memfd_create"},
}


@pytest.fixture(scope="module")
def memfd_warning(worker: WorkerProc, stream_settings: Settings) -> None:
    spec_id = str(WARN_MEMFD["id"]).encode()
    produce(
        stream_settings,
        stream_settings.topics.patterns,
        [(spec_id, orjson.dumps({"op": "upsert", "spec": WARN_MEMFD}))],
    )
    time.sleep(2.0)  # the patterns reader applies it before the next batch


def _mine(settings: Settings, pid: int, want: int, timeout: float = 30.0, idle: float = 1.5) -> list[Any]:
    """Every message on memtrail.alerts naming ``pid``, in publication order, once ``want`` are
    there and nothing more came for ``idle`` seconds."""
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        msgs = consume(settings, settings.topics.alerts, 1, timeout=2.0, idle=0.3)
        found = [m for m in msgs if orjson.loads(m.value())["process"]["pid"] == pid]
        if len(found) >= want:
            time.sleep(idle)
            msgs = consume(settings, settings.topics.alerts, 1, timeout=2.0, idle=0.3)
            return [m for m in msgs if orjson.loads(m.value())["process"]["pid"] == pid]
        time.sleep(0.1)
    return found


def test_patterns_on_one_exec_are_one_message(worker: WorkerProc, stream_settings: Settings) -> None:
    pid = 20101
    produce(stream_settings, stream_settings.topics.raw, [batch(memfd_pair(pid=pid))])
    msgs = _mine(stream_settings, pid, 1)
    assert len(msgs) == 1, [orjson.loads(m.value())["patterns"] for m in msgs]
    doc = orjson.loads(msgs[0].value())
    ids = [p["id"] for p in doc["patterns"]]
    assert {"MT-FILELESS-001", "MT-FILELESS-002"} <= set(ids) and len(ids) == len(set(ids))
    assert doc["rule"]["id"] == ids[0] and doc["rule"]["severity"] == "critical"
    assert "T1620" in doc["threat"]["technique"]["id"]
    assert {t for p in doc["patterns"] for t in p["techniques"]} == set(doc["threat"]["technique"]["id"])
    assert [e["syscall"] for e in doc["evidence"]] == ["memfd_create", "execve"]
    assert msgs[0].key().decode() == doc["id"] and doc["count"] == 1
    print(f"one message, patterns {ids}")


def test_a_held_warning_and_the_exec_after_it_are_one_message(
    worker: WorkerProc, stream_settings: Settings, memfd_warning: None
) -> None:
    """memfd_create and the exec in two Kafka messages: the warning is held, the exec makes it
    the critical incident, published at once, once."""
    pid = 20104
    # One producer without idempotence (Tansu's idempotent produce has 0.5-1 s tails, see
    # docs/stream.md): the two messages ~0.2 s apart, as a sensor flushing every 50 ms would.
    producer = Producer(producer_config(stream_settings.kafka, **{"enable.idempotence": False}))
    create, exe = memfd_pair(pid=pid)
    create["process"]["exe"] = "/usr/bin/ruby"  # a loader of its own (see the next test)
    create["time"] = time.time()
    key, value = batch([create])
    producer.produce(stream_settings.topics.raw, key=key, value=value)
    assert producer.flush(5) == 0
    time.sleep(0.2)
    exe["time"] = time.time()
    t = time.monotonic()
    key, value = batch([exe])
    producer.produce(stream_settings.topics.raw, key=key, value=value)
    assert producer.flush(5) == 0
    msgs = _mine(stream_settings, pid, 1, idle=2.5)
    took = time.monotonic() - t
    assert len(msgs) == 1, [orjson.loads(m.value())["patterns"] for m in msgs]
    doc = orjson.loads(msgs[0].value())
    ids = {p["id"] for p in doc["patterns"]}
    assert {"MT-FILELESS-001", "MT-FILELESS-002", "MT-TEST-MEMFD"} <= ids
    assert doc["rule"]["severity"] == "critical"
    print(
        f"one message {took - 2.5:.2f}s (with the test's polling) after the exec was produced: {sorted(ids)}"
    )


def test_a_pattern_joining_after_publication_updates_the_same_id(
    worker: WorkerProc, stream_settings: Settings, memfd_warning: None
) -> None:
    """A held alert alone is published when its hold runs out; a pattern joining later (an
    exec within the incident window) re-publishes the same id, grown."""
    pid = 20102
    create, exe = memfd_pair(pid=pid)
    # A loader of its own: python3's memfd_create opened the first test's incident, and a
    # repeat (same first pattern and executable) would be counted into that one.
    create["process"]["exe"] = "/usr/bin/perl"
    t = time.monotonic()
    produce(stream_settings, stream_settings.topics.raw, [batch([create])])
    first = _mine(stream_settings, pid, 1, idle=0.0)
    took = time.monotonic() - t
    assert len(first) == 1
    one = orjson.loads(first[0].value())
    assert "MT-TEST-MEMFD" in [p["id"] for p in one["patterns"]] and one["rule"]["severity"] == "warning"
    exe["time"] = create["time"] + 3.0  # event time: within the incident window
    produce(stream_settings, stream_settings.topics.raw, [batch([exe])])
    msgs = _mine(stream_settings, pid, 2)
    docs = [orjson.loads(m.value()) for m in msgs]
    assert len(docs) == 2 and docs[0] == one
    grown = docs[1]
    assert grown["id"] == one["id"] and grown["count"] == 1 and grown["revision"] > one["revision"]
    assert {"MT-FILELESS-001", "MT-FILELESS-002", "MT-TEST-MEMFD"} <= {p["id"] for p in grown["patterns"]}
    assert grown["rule"]["severity"] == "critical"
    print(
        f"held warning published {took:.2f}s after produce (hold 1 s + timer); then grew to {grown['rule']['id']}"
    )


def test_an_exec_of_another_process_is_its_own_incident(
    worker: WorkerProc, stream_settings: Settings
) -> None:
    pid = 20103
    produce(stream_settings, stream_settings.topics.raw, [batch([memfd_exec(pid=pid)])])
    msgs = _mine(stream_settings, pid, 1)
    assert len(msgs) == 1
    doc = orjson.loads(msgs[0].value())
    assert "MT-FILELESS-002" in [p["id"] for p in doc["patterns"]]
    assert "MT-FILELESS-001" not in [p["id"] for p in doc["patterns"]]  # no memfd_create: no sequence
