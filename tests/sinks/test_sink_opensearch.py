"""OpenSearch sink contract: the exact requests sent, and what happens on errors and timeouts.

OpenSearch cannot run on this machine, so a local recording HTTP server stands in for it
(tests/sinks/sinkfakes.py); test_sink_integration.py runs against a real one when
MEMTRAIL_TEST_OPENSEARCH_URL is set.
"""

from __future__ import annotations

import base64

import orjson
import pytest

from sinks.base import SinkBackpressure
from sinks.metrics import RETRIES
from sinks.opensearch.config import OpenSearchSettings
from sinks.opensearch.documents import bulk_body, index_name
from sinks.opensearch.sink import ISM_POLICY_ID, TEMPLATE_NAME, OpenSearchSink
from tests.sinks.sinkfakes import incoming, json_reply, make_alert


def _sink(url: str, **kw: object) -> OpenSearchSink:
    cfg = OpenSearchSettings(url=url, backoff_initial=0.01, backoff_max=0.05, **kw)  # type: ignore[arg-type]
    return OpenSearchSink(cfg)


def test_index_name_is_daily_by_alert_date() -> None:
    assert index_name(make_alert(1)) == "memtrail-alerts-2026.11.22"
    assert index_name(make_alert(1, day_offset=1), "x") == "x-2026.11.23"
    assert index_name({"@timestamp": "2026-01-02T23:59:59-02:00"}) == "memtrail-alerts-2026.01.03"


async def test_bulk_request_is_ndjson_with_id_and_external_version(opensearch) -> None:
    rec, _ = opensearch
    alerts = [make_alert(1), make_alert(2, count=3, day_offset=1)]
    sink = _sink(rec.url, setup=False)
    try:
        assert await sink.deliver(incoming(alerts)) == []
    finally:
        await sink.close()
    (req,) = rec.requests
    assert (req.method, req.path) == ("POST", "/_bulk")
    assert req.headers["content-type"].startswith("application/")
    lines = req.body.decode().splitlines()
    assert req.body.endswith(b"\n") and len(lines) == 4
    assert orjson.loads(lines[0]) == {
        "index": {
            "_index": "memtrail-alerts-2026.11.22",
            "_id": "alert-00001",
            "version": 1,
            "version_type": "external",
        }
    }
    assert orjson.loads(lines[2])["index"] == {
        "_index": "memtrail-alerts-2026.11.23",
        "_id": "alert-00002",
        "version": 3,
        "version_type": "external",
    }
    doc = orjson.loads(lines[1])
    assert doc["@timestamp"] == alerts[0]["@timestamp"] and doc["rule"]["id"] == "MT-FILELESS-001"
    assert doc["event"] == {
        "kind": "alert",
        "category": ["intrusion_detection", "process"],
        "type": ["info"],
        "module": "memtrail",
        "dataset": "memtrail.alerts",
        "provider": "syscall",
        "severity": 4,
        "id": "alert-00001",
        "start": alerts[0]["first_seen"],
        "end": alerts[0]["last_seen"],
    }
    assert doc["ecs"] == {"version": "9.4.0"} and doc["memtrail"]["severity"] == "critical"
    assert bulk_body(alerts) == req.body


async def test_grouped_update_replaces_and_replay_is_accepted_as_delivered(opensearch) -> None:
    rec, store = opensearch
    sink = _sink(rec.url, setup=False)
    try:
        await sink.deliver(incoming([make_alert(1)]))
        await sink.deliver(incoming([make_alert(1, count=5)]))
        # A replay of older updates after a restart: 409 from the server, not an error.
        assert await sink.deliver(incoming([make_alert(1), make_alert(1, count=5)])) == []
    finally:
        await sink.close()
    (version, doc) = store.docs[("memtrail-alerts-2026.11.22", "alert-00001")]
    assert version == 5 and doc["memtrail"]["count"] == 5
    assert store.writes == ["alert-00001", "alert-00001"]


async def test_template_and_ism_policy_requests(opensearch) -> None:
    rec, _ = opensearch
    sink = _sink(rec.url, retention_days=14)
    try:
        await sink.start()
        await sink.start()  # same policy: only a GET the second time
        sink.cfg.retention_days = 7
        await sink.start()  # retention changed: updated with optimistic concurrency
    finally:
        await sink.close()
    assert rec.paths() == [
        f"PUT /_index_template/{TEMPLATE_NAME}",
        f"GET /_plugins/_ism/policies/{ISM_POLICY_ID}",
        f"PUT /_plugins/_ism/policies/{ISM_POLICY_ID}",
        f"PUT /_index_template/{TEMPLATE_NAME}",
        f"GET /_plugins/_ism/policies/{ISM_POLICY_ID}",
        f"PUT /_index_template/{TEMPLATE_NAME}",
        f"GET /_plugins/_ism/policies/{ISM_POLICY_ID}",
        f"PUT /_plugins/_ism/policies/{ISM_POLICY_ID}",
    ]
    template = rec.requests[0].json()
    assert template["index_patterns"] == ["memtrail-alerts-*"]
    props = template["template"]["mappings"]["properties"]
    for name in (
        "@timestamp",
        "ecs",
        "rule",
        "threat",
        "container",
        "orchestrator",
        "process",
        "host",
        "event",
    ):
        assert name in props, name
    assert props["@timestamp"]["type"] == "date"
    assert props["threat"]["properties"]["technique"]["properties"]["id"]["type"] == "keyword"
    first_policy = rec.requests[2].json()["policy"]
    assert first_policy["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "14d"
    assert first_policy["ism_template"] == [{"index_patterns": ["memtrail-alerts-*"], "priority": 100}]
    assert first_policy["states"][1]["actions"] == [{"delete": {}}]
    assert rec.requests[2].query == {}
    update = rec.requests[7]
    assert update.query == {"if_seq_no": ["7"], "if_primary_term": ["1"]}
    assert update.json()["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "7d"


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({"user": "admin", "password": "pw"}, "Basic " + base64.b64encode(b"admin:pw").decode()),
        ({"api_key": "k3y"}, "ApiKey k3y"),
    ],
)
async def test_auth_headers(opensearch, auth, expected) -> None:
    rec, _ = opensearch
    sink = _sink(rec.url, setup=False, **auth)
    try:
        await sink.deliver(incoming([make_alert(1)]))
    finally:
        await sink.close()
    assert rec.requests[0].headers["authorization"] == expected


def test_auth_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        OpenSearchSettings(user="a", password="b", api_key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="go together"):
        OpenSearchSettings(user="a")


async def test_429_and_5xx_on_the_request_are_retried_with_backoff(opensearch) -> None:
    rec, store = opensearch
    replies = iter([json_reply(429, {"error": "too many"}), json_reply(503, {"error": "unavailable"})])
    store.request_error = lambda r: next(replies, None)
    before = RETRIES.labels("opensearch")._value.get()
    sink = _sink(rec.url, setup=False)
    try:
        assert await sink.deliver(incoming([make_alert(1), make_alert(2)])) == []
    finally:
        await sink.close()
    assert len(rec.requests) == 3
    assert rec.requests[0].body == rec.requests[2].body
    assert len(store.docs) == 2
    assert RETRIES.labels("opensearch")._value.get() - before == 2


async def test_only_items_with_429_are_sent_again_and_mapping_errors_are_rejected(opensearch) -> None:
    rec, store = opensearch
    seen: set[str] = set()

    def item_error(meta, doc):
        if meta["_id"] == "alert-00002" and "alert-00002" not in seen:
            seen.add("alert-00002")
            return 429, {"type": "es_rejected_execution_exception", "reason": "queue full"}
        if meta["_id"] == "alert-00003":
            return 400, {"type": "mapper_parsing_exception", "reason": "failed to parse field [process.pid]"}
        return None

    store.item_error = item_error
    sink = _sink(rec.url, setup=False)
    batch = incoming([make_alert(1), make_alert(2), make_alert(3)])
    try:
        rejected = await sink.deliver(batch)
    finally:
        await sink.close()
    assert [r.item.id for r in rejected] == ["alert-00003"]
    assert (
        rejected[0].reason == "opensearch 400 mapper_parsing_exception: failed to parse field [process.pid]"
    )
    second = rec.requests[1].body.decode().splitlines()
    assert [orjson.loads(x)["index"]["_id"] for x in second[::2]] == ["alert-00002"]
    assert sorted(k[1] for k in store.docs) == ["alert-00001", "alert-00002"]


async def test_timeouts_retry_then_backpressure_not_drop(opensearch) -> None:
    rec, _ = opensearch
    rec.delay = 0.5
    sink = _sink(rec.url, setup=False, request_timeout=0.1, max_retries=2)
    try:
        with pytest.raises(SinkBackpressure, match="not accepted: timeout"):
            await sink.deliver(incoming([make_alert(1)]))
        rec.delay = 0
        assert await sink.deliver(incoming([make_alert(1)])) == []
    finally:
        await sink.close()
    assert sum(r.path == "/_bulk" for r in rec.requests) == 4  # 1 + 2 retries, then the later batch


async def test_unreachable_server_is_backpressure(opensearch) -> None:
    rec, _ = opensearch
    url = rec.url
    rec.stop()
    sink = _sink(url, max_retries=1)
    try:
        with pytest.raises(SinkBackpressure):
            await sink.start()
        with pytest.raises(SinkBackpressure, match="connection"):
            await sink.deliver(incoming([make_alert(1)]))
    finally:
        await sink.close()


async def test_setup_refused_for_good_is_a_clear_error(opensearch) -> None:
    from sinks.opensearch.sink import SetupRefused

    rec, store = opensearch
    store.request_error = lambda r: json_reply(403, {"error": {"type": "security_exception"}, "status": 403})
    sink = _sink(rec.url)
    try:
        with pytest.raises(SetupRefused, match=r"HTTP 403: security_exception.*--no-setup"):
            await sink.start()
    finally:
        await sink.close()
