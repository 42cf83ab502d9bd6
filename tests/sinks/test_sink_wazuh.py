"""Wazuh sink contract for the three routes: manager API, analysisd socket, agent JSON file.

The Wazuh manager cannot run here: a local recording HTTP server stands in for its API
(tests/sinks/sinkfakes.py). The socket route uses a real AF_UNIX datagram socket and the
file route a real file.
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
from pathlib import Path

import orjson
import pytest

from sinks.base import SinkBackpressure
from sinks.wazuh.api import TokenBucket, WazuhApiSink
from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.file_sink import WazuhFileSink
from sinks.wazuh.payload import MAX_MESSAGE_BYTES, event_json, incident_fields
from sinks.wazuh.socket_sink import WazuhSocketSink
from tests.sinks.sinkfakes import incoming, json_reply, make_alert


def _api(url: str, **kw: object) -> WazuhApiSink:
    cfg = WazuhSettings(
        url=url,
        password="secret",  # type: ignore[arg-type]
        requests_per_minute=6000,
        backoff_initial=0.01,
        backoff_max=0.05,
        **kw,  # type: ignore[arg-type]
    )
    return WazuhApiSink(cfg)


def _sent(events_request) -> list[dict]:
    return [orjson.loads(e) for e in events_request.json()["events"]]


async def test_api_authenticates_and_sends_events_as_json_strings(wazuh) -> None:
    rec, _ = wazuh
    sink = _api(rec.url)
    alerts = [make_alert(1), make_alert(2)]
    try:
        await sink.start()
        assert await sink.deliver(incoming(alerts)) == []
    finally:
        await sink.close()
    auth, events = rec.requests
    assert (auth.method, auth.path) == ("POST", "/security/user/authenticate")
    assert auth.headers["authorization"] == "Basic " + base64.b64encode(b"wazuh-wui:secret").decode()
    assert (events.method, events.path) == ("POST", "/events")
    assert events.headers["authorization"] == "Bearer jwt-1"
    assert events.headers["content-type"] == "application/json"
    body = events.json()
    assert list(body) == ["events"] and all(isinstance(e, str) for e in body["events"])
    assert _sent(events) == [
        {"integration": "memtrail", "incident": incident_fields(a), "memtrail": a} for a in alerts
    ]
    assert body["events"][0] == event_json(alerts[0]).decode()


async def test_api_sends_at_most_100_events_per_request(wazuh) -> None:
    rec, server = wazuh
    sink = _api(rec.url)
    try:
        await sink.deliver(incoming([make_alert(i) for i in range(250)]))
    finally:
        await sink.close()
    sizes = [len(r.json()["events"]) for r in rec.requests if r.path == "/events"]
    assert sizes == [100, 100, 50]
    assert len(server.events) == 250


async def test_api_reauthenticates_once_when_the_token_expired(wazuh) -> None:
    rec, server = wazuh
    sink = _api(rec.url)
    try:
        await sink.deliver(incoming([make_alert(1)]))
        server.expire_next = True
        await sink.deliver(incoming([make_alert(2)]))
    finally:
        await sink.close()
    assert rec.paths() == [
        "POST /security/user/authenticate",
        "POST /events",
        "POST /events",  # 401: token expired
        "POST /security/user/authenticate",
        "POST /events",
    ]
    assert rec.requests[-1].headers["authorization"] == "Bearer jwt-3"
    assert len(server.events) == 2


async def test_api_respects_the_request_rate_with_a_token_bucket(wazuh) -> None:
    rec, _ = wazuh
    sink = _api(rec.url, max_events_per_request=10)
    sink.bucket = TokenBucket(rate=20, per=1.0, capacity=2)  # 20 requests/s, bursts of 2
    try:
        await sink.deliver(incoming([make_alert(i) for i in range(50)]))  # auth + 5 requests
    finally:
        await sink.close()
    times = [r.time for r in rec.requests]
    assert len(times) == 6
    # 6 requests, 2 tokens at hand, 20/s refill: requests 3..6 each wait for a token (50 ms);
    # the first wait may overlap the set-up before the first request, so at least 3 * 50 ms.
    assert times[-1] - times[0] >= 0.145
    gaps = [b - a for a, b in itertools.pairwise(times[2:])]
    assert all(g >= 0.04 for g in gaps), gaps


def test_token_bucket_defaults_to_30_a_minute() -> None:
    bucket = TokenBucket(30)
    for _ in range(30):
        assert bucket.delay() == 0
        bucket.tokens -= 1
    assert 1.9 < bucket.delay() <= 2.0
    bucket.tokens = 5
    bucket.drain()
    assert bucket.delay() > 1.9


async def test_api_backs_off_on_429_and_honours_retry_after(wazuh) -> None:
    rec, server = wazuh
    replies = iter([json_reply(429, {"title": "Too Many Requests"}, {"Retry-After": "0.3"})])
    server.request_error = lambda r: next(replies, None)
    sink = _api(rec.url)
    try:
        await sink.deliver(incoming([make_alert(1)]))
    finally:
        await sink.close()
    first, second = [r for r in rec.requests if r.path == "/events"]
    assert second.time - first.time >= 0.3
    assert second.body == first.body and len(server.events) == 1


async def test_api_failed_items_are_retried_then_dead_lettered(wazuh) -> None:
    rec, server = wazuh
    attempts: dict[str, int] = {}

    def fail_event(ev: str) -> str | None:
        aid = orjson.loads(ev)["memtrail"]["id"]
        attempts[aid] = attempts.get(aid, 0) + 1
        if aid == "alert-00002" and attempts[aid] == 1:
            return "Error sending event to analysisd"  # transient: succeeds on retry
        if aid == "alert-00003":
            return "Event too long"
        return None

    server.fail_event = fail_event
    sink = _api(rec.url, max_retries=2)
    try:
        rejected = await sink.deliver(incoming([make_alert(1), make_alert(2), make_alert(3)]))
    finally:
        await sink.close()
    assert [(r.item.id, r.reason) for r in rejected] == [("alert-00003", "wazuh failed item: Event too long")]
    assert attempts == {"alert-00001": 1, "alert-00002": 2, "alert-00003": 3}
    sent = [[e["memtrail"]["id"] for e in _sent(r)] for r in rec.requests if r.path == "/events"]
    assert sent == [
        ["alert-00001", "alert-00002", "alert-00003"],
        ["alert-00002", "alert-00003"],
        ["alert-00003"],
    ]


async def test_api_5xx_and_timeouts_back_off_then_hand_back_the_batch(wazuh) -> None:
    rec, server = wazuh
    server.request_error = lambda r: json_reply(503, {"title": "Service Unavailable"})
    sink = _api(rec.url, max_retries=2)
    try:
        with pytest.raises(SinkBackpressure, match="HTTP 503"):
            await sink.deliver(incoming([make_alert(1)]))
        assert sum(r.path == "/events" for r in rec.requests) == 3
        server.request_error = lambda r: None
        rec.delay = 0.4
        sink.cfg.request_timeout = 0.1
        await sink.close()  # new client with the shorter timeout
        with pytest.raises(SinkBackpressure, match=r"wazuh API timeout: .*Timeout"):
            await sink.deliver(incoming([make_alert(1)]))
    finally:
        await sink.close()


async def test_api_wrong_credentials_are_backpressure_not_loss(wazuh) -> None:
    rec, _ = wazuh
    sink = WazuhApiSink(WazuhSettings(url=rec.url, password="wrong"))  # type: ignore[arg-type]
    try:
        with pytest.raises(SinkBackpressure, match="authentication failed: HTTP 401"):
            await sink.start()
    finally:
        await sink.close()
    with pytest.raises(ValueError, match="needs a password"):
        WazuhApiSink(WazuhSettings(url=rec.url))


@pytest.fixture
def dgram_server(tmp_path: Path):
    path = tmp_path / "queue"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(path))
    srv.settimeout(2)
    yield path, srv
    srv.close()


async def test_socket_sends_one_datagram_per_alert(dgram_server) -> None:
    path, srv = dgram_server
    sink = WazuhSocketSink(WazuhSettings(socket_path=path))
    alerts = [make_alert(1), make_alert(2)]
    try:
        await sink.start()
        assert await sink.deliver(incoming(alerts)) == []
    finally:
        await sink.close()
    got = [srv.recv(70000) for _ in alerts]
    assert got == [b"1:memtrail:" + event_json(a) for a in alerts]
    assert orjson.loads(got[0][len("1:memtrail:") :]) == {
        "integration": "memtrail",
        "incident": incident_fields(alerts[0]),
        "memtrail": alerts[0],
    }


async def test_socket_missing_or_restarted_manager_is_backpressure(dgram_server, tmp_path: Path) -> None:
    path, srv = dgram_server
    sink = WazuhSocketSink(WazuhSettings(socket_path=tmp_path / "absent"))
    with pytest.raises(SinkBackpressure, match="No such file"):
        await sink.deliver(incoming([make_alert(1)]))
    sink = WazuhSocketSink(WazuhSettings(socket_path=path))
    await sink.deliver(incoming([make_alert(1)]))
    srv.close()
    os.unlink(path)  # manager gone
    with pytest.raises(SinkBackpressure):
        await sink.deliver(incoming([make_alert(2)]))
    srv2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv2.bind(str(path))  # manager back: reconnects
    try:
        await sink.deliver(incoming([make_alert(2)]))
        assert b"alert-00002" in srv2.recv(70000)
    finally:
        srv2.close()
        await sink.close()


async def test_socket_oversize_alert_is_rejected_whole(dgram_server) -> None:
    path, srv = dgram_server
    sink = WazuhSocketSink(WazuhSettings(socket_path=path))
    big = make_alert(1, evidence=[{"blob": "x" * MAX_MESSAGE_BYTES}])
    try:
        rejected = await sink.deliver(incoming([big, make_alert(2)]))
    finally:
        await sink.close()
    assert [r.item.id for r in rejected] == ["alert-00001"] and "analysisd accepts" in rejected[0].reason
    assert b"alert-00002" in srv.recv(70000)


async def test_file_writes_json_lines_fsynced_and_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "wazuh" / "alerts.json"
    sink = WazuhFileSink(WazuhSettings(file_path=path))
    try:
        await sink.start()
        await sink.deliver(incoming([make_alert(1), make_alert(2)]))
        await sink.flush()
        lines = path.read_bytes().splitlines()
        assert [orjson.loads(x) for x in lines] == [
            {
                "integration": "memtrail",
                "incident": incident_fields(make_alert(1)),
                "memtrail": make_alert(1),
            },
            {
                "integration": "memtrail",
                "incident": incident_fields(make_alert(2)),
                "memtrail": make_alert(2),
            },
        ]
        path.rename(path.with_suffix(".json.1"))  # logrotate (create mode)
        await sink.deliver(incoming([make_alert(3)]))
        await sink.flush()
        assert [orjson.loads(x)["memtrail"]["id"] for x in path.read_bytes().splitlines()] == ["alert-00003"]
        path.unlink()  # removed outright
        await sink.deliver(incoming([make_alert(4)]))
        await sink.flush()
        assert b"alert-00004" in path.read_bytes()
        with open(path, "r+b") as fh:  # copytruncate
            fh.truncate(0)
        await sink.deliver(incoming([make_alert(5)]))
        await sink.flush()
        assert path.read_bytes().startswith(b'{"integration":"memtrail"')
    finally:
        await sink.close()
    assert len(path.with_suffix(".json.1").read_bytes().splitlines()) == 2


def test_wazuh_mode_is_validated() -> None:
    with pytest.raises(ValueError):
        WazuhSettings(mode="syslog")  # type: ignore[arg-type]
    assert WazuhSettings().max_events_per_request == 100
    with pytest.raises(ValueError):
        WazuhSettings(max_events_per_request=101)


async def test_file_torn_last_line_is_terminated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_bytes(event_json(make_alert(1)) + b"\n" + event_json(make_alert(2))[:40])  # crash mid-line
    sink = WazuhFileSink(WazuhSettings(file_path=path))
    try:
        await sink.start()
        await sink.deliver(incoming([make_alert(2)]))
        await sink.flush()
    finally:
        await sink.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    assert orjson.loads(lines[2])["memtrail"] == make_alert(2)
