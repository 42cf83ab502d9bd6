"""A real ``memtrail worker`` (Faust) on the real local broker: synthetic batches in, alerts out."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from memtrail.core.settings import Settings
from streams.batches import decode_batch
from tests.streams.helpers import (
    WorkerProc,
    alert_docs,
    batch,
    by_rule,
    consume,
    event,
    is_memfd_sequence,
    memfd_pair,
    produce,
    techniques,
)

pytestmark = pytest.mark.broker


def _alerts_for(
    settings: Settings, pid: int, want: int, timeout: float = 30.0, idle: float = 0.0
) -> list[dict]:
    """Alerts of the memfd sequence pattern for ``pid`` (other patterns may match the same events)."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        docs = alert_docs(consume(settings, settings.topics.alerts, 1, timeout=2.0, idle=0.5))
        found = [d for d in docs if d["process"]["pid"] == pid and is_memfd_sequence(d)]
        if len(found) >= want:
            if idle:
                time.sleep(idle)
                docs = alert_docs(consume(settings, settings.topics.alerts, 1, timeout=2.0, idle=0.5))
                found = [d for d in docs if d["process"]["pid"] == pid and is_memfd_sequence(d)]
            return found
        time.sleep(0.2)
    return found


def test_kafka_round_trip_through_local_broker(settings: Settings) -> None:
    from memtrail.core.kafka import ensure_topics

    ensure_topics(settings)
    evs = [event("memfd_create", pid=11), event("execve", pid=11)]
    produce(settings, settings.topics.raw, [batch(evs)])
    [msg] = consume(settings, settings.topics.raw, 1, timeout=15)
    assert msg.key() == b"host:testhost"
    assert decode_batch(msg.value(), msg.key()).events == evs


def test_worker_turns_memfd_sequence_into_t1620_alert(worker: WorkerProc, stream_settings: Settings) -> None:
    pid = 20001
    produce(stream_settings, stream_settings.topics.raw, [batch(memfd_pair(pid=pid))])
    docs = _alerts_for(stream_settings, pid, 1, idle=1.0)
    assert docs
    for rule, alerts in by_rule(docs).items():
        assert len(alerts) == 1, (rule, [(d["id"], d["count"]) for d in alerts])
    doc = docs[0]
    assert "T1620" in techniques(doc)
    assert doc["container"]["id"] is None and doc["host"]["name"] == "testhost"
    assert [e["syscall"] for e in doc["evidence"]][-1] == "execve"
    assert doc["@timestamp"] and doc["rule"]["id"] and doc["rule"]["severity"]


def test_alert_key_is_alert_id(worker: WorkerProc, stream_settings: Settings) -> None:
    pid = 20002
    produce(stream_settings, stream_settings.topics.raw, [batch(memfd_pair(pid=pid))])
    assert _alerts_for(stream_settings, pid, 1)
    msgs = [m for m in consume(stream_settings, stream_settings.topics.alerts, 1, timeout=5, idle=0.5)]
    mine = [m for m in msgs if orjson.loads(m.value())["process"]["pid"] == pid]
    assert mine and all(m.key().decode() == orjson.loads(m.value())["id"] for m in mine)


def test_malformed_input_goes_to_deadletter_and_good_events_still_run(
    worker: WorkerProc, stream_settings: Settings
) -> None:
    pid = 20003
    bad_event = event("execve", pid=pid)
    del bad_event["process"]
    key, good_value = batch([*memfd_pair(pid=pid), bad_event])
    produce(
        stream_settings, stream_settings.topics.raw, [(b"junk-key", b"{this is not json"), (key, good_value)]
    )
    dead = [
        orjson.loads(m.value())
        for m in consume(stream_settings, stream_settings.topics.deadletter, 2, timeout=30)
    ]
    by_key = {d["key"]: d for d in dead}
    assert by_key["junk-key"]["reason"].startswith("not JSON")
    assert by_key["junk-key"]["value"] == "{this is not json"
    assert by_key["junk-key"]["source_topic"] == stream_settings.topics.raw
    assert isinstance(by_key["junk-key"]["offset"], int)
    assert by_key["host:testhost"]["reason"] == "event field 'process' missing"
    assert orjson.loads(by_key["host:testhost"]["value"])["id"] == bad_event["id"]
    assert _alerts_for(stream_settings, pid, 1), "the good events of the batch were lost"
    assert 'memtrail_stream_deadletter_total{reason="not_json"} 1.0' in worker.metrics()


def test_identical_alerts_are_grouped_with_count(worker: WorkerProc, stream_settings: Settings) -> None:
    pid = 20004
    t = time.time()
    # Three memfd fileless execs by the same executable on the host within the window.
    msgs = [batch(memfd_pair(pid=pid, t=t + i)) for i in range(3)]
    for m in msgs:
        produce(stream_settings, stream_settings.topics.raw, [m])
    deadline = time.monotonic() + 30
    docs = _alerts_for(stream_settings, pid, 1)
    while max((d["count"] for d in docs), default=0) < 3 and time.monotonic() < deadline:
        docs = _alerts_for(stream_settings, pid, 1)
    docs = _alerts_for(stream_settings, pid, 1, idle=1.0)  # and nothing after the last update
    for rule, alerts in by_rule(docs).items():
        assert len({d["id"] for d in alerts}) == 1, f"{rule}: grouped alerts must keep one id"
        counts = [d["count"] for d in alerts]  # in publication order
        # Updates within one batch are published once, with their final count.
        assert counts == sorted(set(counts)) and counts[-1] == 3, (rule, counts)
        last = alerts[-1]
        assert last["first_seen"] < last["last_seen"]


def test_metrics_expose_stream_figures(worker: WorkerProc) -> None:
    text = worker.metrics()
    for name in (
        'memtrail_stream_events_total{agent="enrich",direction="in"}',
        'memtrail_stream_events_total{agent="correlate",direction="out"}',
        "memtrail_stream_batch_size_bucket",
        'memtrail_stream_latency_seconds_bucket{le="0.3",stage="alert"}',
        "memtrail_stream_consumer_lag",
        "memtrail_alerts_total",
    ):
        assert name in text, name
    assert os.environ.get("CI") != "true" or "memtrail_stream_deadletter_total" in text


def test_custom_pattern_from_topic_applies_without_restart(
    worker: WorkerProc, stream_settings: Settings
) -> None:
    pid = 20005
    spec = {
        "id": "MT-CUSTOM-900",
        "name": "Custom: namespace unshare",
        "description": "Added at run time through the patterns topic",
        "severity": "warning",
        "techniques": ["T1611"],
        "condition": {"syscall": "unshare"},
    }
    produce(
        stream_settings,
        stream_settings.topics.patterns,
        [(b"MT-CUSTOM-900", orjson.dumps({"op": "upsert", "spec": spec}))],
    )
    deadline = time.monotonic() + 30
    found: list[dict] = []
    while not found and time.monotonic() < deadline:
        produce(
            stream_settings,
            stream_settings.topics.raw,
            [batch([event("unshare", pid=pid, args={"flags": ["CLONE_NEWNS"]})])],
        )
        time.sleep(1.0)
        docs = alert_docs(consume(stream_settings, stream_settings.topics.alerts, 1, timeout=2, idle=0.3))
        found = [d for d in docs if d["rule"]["id"] == "MT-CUSTOM-900"]
    assert found, "custom pattern not applied"
    assert found[0]["threat"]["technique"]["id"][0] == "T1611"
