"""Every sink shows a merged incident: all pattern ids and techniques, upserted by id and revision."""

from __future__ import annotations

from typing import Any

import orjson

from sinks.console import format_alert, rule_label
from sinks.jsonl import JsonlSink
from sinks.opensearch.config import OpenSearchSettings
from sinks.opensearch.documents import bulk_body, to_document
from sinks.opensearch.sink import OpenSearchSink
from sinks.wazuh.payload import event_json, socket_message
from tests.sinks.sinkfakes import incoming, make_alert

PATTERNS = [
    {
        "id": "MT-FILELESS-001",
        "name": "memfd exec",
        "severity": "critical",
        "techniques": ["T1620", "T1027.011"],
        "alert_id": "a1",
    },
    {
        "id": "MT-FILELESS-002",
        "name": "image is a memfd",
        "severity": "critical",
        "techniques": ["T1620"],
        "alert_id": "a2",
    },
    {
        "id": "MT-FILELESS-MEMFD-001",
        "name": "memfd_create by python3",
        "severity": "warning",
        "techniques": ["T1620"],
        "alert_id": "a3",
    },
]


def incident(
    i: int = 1, revision: int = 3, count: int = 1, patterns: list[dict[str, Any]] = PATTERNS
) -> dict:
    return make_alert(
        i,
        count=count,
        revision=revision,
        patterns=patterns,
        threat={"technique": {"id": ["T1620", "T1027.011", "T1027"]}},
    )


def test_console_line_lists_every_pattern_id() -> None:
    line = format_alert(incident())
    assert line.startswith(
        "CRITICAL MT-FILELESS-001+2+MT-FILELESS-MEMFD-001 memfd exec [T1620,T1027.011,T1027] container=web("
    )
    assert line.endswith("count=1")
    assert rule_label(make_alert(1)) == "MT-FILELESS-001"  # an alert without patterns: its rule
    assert (
        rule_label({"patterns": [{"id": "MT-A-010"}, {"id": "MT-A-002"}, {"id": "MT-B-1"}]})
        == "MT-A-010+2+MT-B-1"
    )


def test_jsonl_line_carries_the_patterns(tmp_path) -> None:
    sink = JsonlSink(tmp_path / "a.jsonl")
    sink.write(incident())
    sink.close()
    (line,) = (tmp_path / "a.jsonl").read_bytes().splitlines()
    doc = orjson.loads(line)
    assert [p["id"] for p in doc["patterns"]] == [p["id"] for p in PATTERNS] and doc["revision"] == 3


def test_opensearch_document_has_the_primary_rule_and_every_pattern() -> None:
    doc = to_document(incident())
    assert doc["rule"]["id"] == "MT-FILELESS-001"
    assert doc["memtrail"]["patterns"] == ["MT-FILELESS-001", "MT-FILELESS-002", "MT-FILELESS-MEMFD-001"]
    assert [p["id"] for p in doc["memtrail"]["incident"]] == doc["memtrail"]["patterns"]
    assert to_document(make_alert(2))["memtrail"]["patterns"] == ["MT-FILELESS-001"]
    action = orjson.loads(bulk_body([incident(revision=7, count=2)]).splitlines()[0])
    assert action["index"]["version"] == 7  # the revision: grows when a pattern joins at the same count


async def test_opensearch_replaces_an_incident_that_grew_at_the_same_count(opensearch) -> None:
    rec, store = opensearch
    sink = OpenSearchSink(
        OpenSearchSettings(url=rec.url, backoff_initial=0.01, backoff_max=0.05, setup=False)
    )
    try:
        await sink.deliver(incoming([incident(revision=1, patterns=PATTERNS[2:])]))
        await sink.deliver(incoming([incident(revision=3)]))  # two critical patterns joined
        assert (
            await sink.deliver(incoming([incident(revision=1, patterns=PATTERNS[2:])])) == []
        )  # replay: 409
    finally:
        await sink.close()
    (version, doc) = store.docs[("memtrail-alerts-2026.11.22", "alert-00001")]
    assert version == 3 and len(doc["memtrail"]["incident"]) == 3 and doc["memtrail"]["count"] == 1


def test_wazuh_payload_carries_every_pattern_id_and_technique() -> None:
    msg = orjson.loads(event_json(incident()))
    assert msg["integration"] == "memtrail"
    assert msg["incident"] == {
        "patterns": ["MT-FILELESS-001", "MT-FILELESS-002", "MT-FILELESS-MEMFD-001"],
        "techniques": ["T1620", "T1027.011", "T1027"],
    }
    assert msg["memtrail"]["rule"]["id"] == "MT-FILELESS-001"  # the child rule matched: the primary's
    assert socket_message(incident()).startswith(b"1:memtrail:{")
