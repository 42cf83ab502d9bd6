"""Kill a real sink process with SIGKILL mid-batch, restart it: nothing lost, no double writes.

The sinks run as `memtrail sink ...` subprocesses on the real local broker. OpenSearch and
the Wazuh manager cannot run here, so recording stand-in servers take their place; the
OpenSearch one applies external versioning per ``_id`` like OpenSearch does, which is what
makes the replay after the restart idempotent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from memtrail.core.broker import free_port
from memtrail.core.kafka import ensure_topics, producer_config
from memtrail.core.settings import Settings
from tests.sinks.sinkfakes import make_alert

pytestmark = [pytest.mark.broker, pytest.mark.slow]

MEMTRAIL = [str(Path(sys.executable).parent / "memtrail")]
N = 150
UPDATED = range(0, N, 10)  # these alerts are re-published grouped, with count=3


def _env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "MEMTRAIL_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
        "MEMTRAIL_KAFKA__LOCAL_BROKER": "true",
    }
    for name, topic in settings.topics.model_dump().items():
        env[f"MEMTRAIL_TOPICS__{name.upper()}"] = topic
    return env


def _produce_alerts(settings: Settings) -> dict[str, int]:
    ensure_topics(settings)
    p = Producer(producer_config(settings.kafka))
    expected: dict[str, int] = {}
    for i in range(N):
        a = make_alert(i)
        p.produce(settings.topics.alerts, key=a["id"].encode(), value=orjson.dumps(a))
        expected[a["id"]] = 1
    for i in UPDATED:
        a = make_alert(i, count=3)
        p.produce(settings.topics.alerts, key=a["id"].encode(), value=orjson.dumps(a))
        expected[a["id"]] = 3
    assert p.flush(15) == 0
    return expected


def _start(args: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([*MEMTRAIL, *args], env=_env(settings), stdout=fh, stderr=subprocess.STDOUT)


def _wait(cond, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return 0, ""
    return r.status_code, r.text


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_opensearch_sink_killed_mid_batch_delivers_every_alert_exactly_once(
    settings: Settings, opensearch, tmp_path: Path
) -> None:
    rec, store = opensearch
    rec.delay = 0.3  # each bulk takes a while, so the kill lands while one is in flight
    expected = _produce_alerts(settings)
    args = [
        "sink",
        "opensearch",
        "--url",
        rec.url,
        "--no-setup",
        "--batch-size",
        "20",
        "--metrics-port",
        "-1",
    ]
    log = tmp_path / "sink.log"
    proc = _start(args, settings, log)
    try:
        assert _wait(lambda: sum(r.path == "/_bulk" for r in rec.requests) >= 3), log.read_text()
        proc.send_signal(signal.SIGKILL)  # the third bulk request is in flight, nothing of it committed
        proc.wait(10)
        sent_before = sum(r.path == "/_bulk" for r in rec.requests)
        assert len(store.docs) < len(expected)

        proc = _start(args, settings, log)
        assert _wait(lambda: {k[1]: v[0] for k, v in store.docs.items()} == expected), log.read_text()
        time.sleep(1.0)  # anything else it would still send
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.read_text()
    assert sum(r.path == "/_bulk" for r in rec.requests) > sent_before
    # Every id once, at its newest count; no (id, count) was ever written twice, although
    # the batch in flight at the kill was sent again (its items got 409 the second time).
    assert {k[1]: v[0] for k, v in store.docs.items()} == expected
    assert Counter(store.writes) == Counter({i: 2 if v == 3 else 1 for i, v in expected.items()})
    sent_ids = [
        orjson.loads(line)["index"]["_id"]
        for r in rec.requests
        if r.path == "/_bulk"
        for line in r.body.splitlines()[::2]
    ]
    assert len(sent_ids) > len(expected) + len(UPDATED)  # the replay happened


def test_wazuh_api_sink_killed_mid_batch_delivers_every_alert_at_least_once(
    settings: Settings, wazuh, tmp_path: Path
) -> None:
    rec, server = wazuh
    rec.delay = 0.3
    expected = _produce_alerts(settings)
    args = [
        "sink", "wazuh", "--mode", "api", "--url", rec.url, "--user", "wazuh-wui", "--password", "secret",
        "--requests-per-minute", "100000", "--batch-size", "20", "--metrics-port", "-1",
    ]  # fmt: skip
    log = tmp_path / "sink.log"
    proc = _start(args, settings, log)
    try:
        assert _wait(lambda: sum(r.path == "/events" for r in rec.requests) >= 3), log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _start(args, settings, log)

        def received() -> dict[str, int]:
            got: dict[str, int] = {}
            for ev in list(server.events):
                a = orjson.loads(ev)["memtrail"]
                got[a["id"]] = max(got.get(a["id"], 0), a["count"])
            return got

        assert _wait(lambda: received() == expected), log.read_text()
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.read_text()
    assert len(server.events) >= N + len(UPDATED)


def test_wazuh_file_sink_killed_and_restarted_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "wazuh" / "alerts.json"
    expected = _produce_alerts(settings)
    port = free_port()
    args = [
        "sink",
        "wazuh",
        "--mode",
        "file",
        "--file-path",
        str(out),
        "--batch-size",
        "7",
        "--metrics-port",
        str(port),
    ]
    log = tmp_path / "sink.log"
    proc = _start(args, settings, log)
    try:
        assert _wait(lambda: out.exists() and out.stat().st_size > 0), log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = _start(args, settings, log)
        assert _wait(lambda: _get(port, "/readyz") == (200, "ready\n")), log.read_text()

        def received() -> dict[str, int]:
            got: dict[str, int] = {}
            for line in out.read_bytes().splitlines():
                a = orjson.loads(line)["memtrail"]  # every line is whole JSON
                got[a["id"]] = max(got.get(a["id"], 0), a["count"])
            return got

        assert _wait(lambda: received() == expected), log.read_text()
        status, metrics = _get(port, "/metrics")
        assert status == 200
        assert 'memtrail_sink_deliveries_total{sink="wazuh-file"}' in metrics
        assert 'memtrail_sink_batch_seconds_count{sink="wazuh-file"}' in metrics
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.read_text()
