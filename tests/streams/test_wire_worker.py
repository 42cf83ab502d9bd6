"""A real ``memtrail worker`` fed wire format v2 batches (what the sensor publishes): alerts,
the container join and dead letters as with v1, the enrichment not decoding what it forwards."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from memtrail.core.kafka import ensure_topics
from memtrail.core.settings import Settings
from schemas import wire
from tests.streams.helpers import (
    WorkerProc,
    alert_docs,
    consume,
    is_memfd_sequence,
    memfd_pair,
    produce,
    techniques,
)

pytestmark = pytest.mark.broker

CID = "beef" + "0" * 60


def _with_identity(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The process identity and ancestors the sensor gives every event."""
    for e in events:
        p = e["process"]
        p["entity_id"] = f"0123456789ab-{p['pid']}-{p['pid'] * 3}"
        p["ancestors"] = [
            {"pid": 1, "entity_id": "0123456789ab-1-2", "exe": "/usr/lib/systemd/systemd", "comm": "systemd"}
        ]
    return events


def _v2(events: list[dict[str, Any]], key: str) -> tuple[bytes, bytes]:
    return key.encode(), orjson.dumps(wire.encode("testhost", key, events))


def _memfd_alerts(settings: Settings, pid: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs = alert_docs(consume(settings, settings.topics.alerts, 1, timeout=2.0, idle=0.5))
        found = [d for d in docs if d["process"]["pid"] == pid and is_memfd_sequence(d)]
        if found:
            return found
        time.sleep(0.2)
    return []


def test_v2_batches_alert_with_container_joined(stream_settings: Settings, worker: WorkerProc) -> None:
    ensure_topics(stream_settings)
    meta = {
        "id": CID,
        "name": "web-v2",
        "image": "localhost/nginx:1.25",
        "runtime": "podman",
        "state": "running",
    }
    produce(stream_settings, stream_settings.topics.containers, [(CID.encode(), orjson.dumps(meta))])
    deadline = time.monotonic() + 40
    found: list[dict] = []
    pid = 41000
    while time.monotonic() < deadline:  # until the worker's table has the container
        pid += 1
        produce(stream_settings, stream_settings.topics.raw, [_v2(_with_identity(memfd_pair(pid, CID)), CID)])
        found = [d for d in _memfd_alerts(stream_settings, pid, timeout=3) if d["container"]["name"]]
        if found:
            break
    assert found, worker.tail()
    doc = found[0]
    assert "T1620" in techniques(doc)
    assert doc["container"]["id"] == CID and doc["container"]["name"] == "web-v2"
    ev = doc["evidence"][-1]
    assert ev["process"]["entity_id"] == f"0123456789ab-{pid}-{pid * 3}"
    assert ev["process"]["ancestors"][0]["exe"] == "/usr/lib/systemd/systemd"
    assert ev["id"].startswith("testhost:") and ev["host"] == "testhost"
    text = worker.metrics()
    unread = [ln for ln in text.splitlines() if ln.startswith("memtrail_stream_unread_batches_total ")]
    assert unread and float(unread[0].split()[1]) >= 1


def test_bad_v2_event_is_dead_lettered_and_the_rest_runs(
    stream_settings: Settings, worker: WorkerProc
) -> None:
    pid = 42001
    good = _with_identity(memfd_pair(pid))
    bad = _with_identity(memfd_pair(pid + 1))[0]
    bad["process"]["pid"] = "not a pid"
    bad["process"]["entity_id"] = "0123456789ab-bad-1"
    key, value = _v2([*good, bad], "host:testhost")
    produce(
        stream_settings,
        stream_settings.topics.raw,
        [(key, value), (b"host:testhost", b'{"v":2,"events":[]}')],
    )
    dead = [
        orjson.loads(m.value())
        for m in consume(stream_settings, stream_settings.topics.deadletter, 2, timeout=30, idle=1.0)
    ]
    reasons = {d["reason"]: d for d in dead}
    rec = reasons["event field 'process.pid' missing or not an integer"]
    assert orjson.loads(rec["value"])["id"] == bad["id"]
    # A message the enrichment forwarded unread is dead-lettered by the correlation's decode.
    whole = next(d for r, d in reasons.items() if "v2 batch without a procs table" in r)
    assert whole["source_topic"] == stream_settings.topics.enriched
    assert _memfd_alerts(stream_settings, pid), "the good events of the batch were lost"
