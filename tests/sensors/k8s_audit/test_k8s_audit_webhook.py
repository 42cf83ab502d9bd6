"""The audit webhook over real HTTPS, publishing to the real local broker."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest

from memtrail.core.children import stop_process
from memtrail.core.settings import Settings
from schemas.events import Event
from tests.sensors.k8s_audit.sources_helpers import consume, load_fixture
from tests.webhook_support import AUTH

pytestmark = pytest.mark.broker


def test_eventlist_lands_on_topic_keyed_by_pod(webhook, settings: Settings) -> None:
    body = load_fixture("audit_attacks.json")
    r = httpx.post(webhook.url, json=body, verify=webhook.verify, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 8, "deadlettered": 0, "errors": []}

    msgs = consume(settings, settings.topics.k8s_audit, 8)
    by_id = {v["id"]: (k, v) for k, v in msgs}
    assert len(by_id) == 8
    key, ev = by_id["k8s:8f0a6c1e-1b6d-4c5e-9a11-2d3c4b5a6f01:ResponseComplete"]
    assert key == "shop/debug-root"
    Event.model_validate(ev)  # the worker validates audit events like any event
    assert ev["source"] == ev["syscall"] == "k8s_audit"
    assert ev["host"] == "test-cluster"
    assert ev["time"] == pytest.approx(1795341600.14)
    assert ev["ka"]["req"]["pod"]["privileged"] is True
    assert ev["ka"]["req"]["pod"]["hostpath"] == ["/var/run/docker.sock", "/"]
    # The attach and the ephemeral container are about the same pod: same key, same partition.
    assert by_id["k8s:8f0a6c1e-1b6d-4c5e-9a11-2d3c4b5a6f07:ResponseStarted"][0] == "shop/web-7d9f8-abcde"
    assert by_id["k8s:8f0a6c1e-1b6d-4c5e-9a11-2d3c4b5a6f03:ResponseComplete"][0] == "shop/web-7d9f8-abcde"
    # ConfigMap values never leave the webhook; their names do.
    cm = by_id["k8s:8f0a6c1e-1b6d-4c5e-9a11-2d3c4b5a6f06:ResponseComplete"][1]
    assert "Sup3rS3cret!" not in orjson.dumps(cm).decode()
    assert "AKIAEXAMPLE" not in orjson.dumps(cm).decode()
    assert "db.password" in cm["ka"]["req"]["configmap"]["value_keys"]


def test_bad_items_are_deadlettered_not_lost(webhook, settings: Settings) -> None:
    body = load_fixture("audit_exec.json")
    good = body["items"][0]
    bad = {k: v for k, v in good.items() if k != "verb"} | {"auditID": "broken-1"}
    body["items"] = [bad, good, "not an object"]
    r = httpx.post(webhook.url, json=body, verify=webhook.verify, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["deadlettered"]) == (1, 2)
    assert out["errors"][0]["auditID"] == "broken-1" and "verb" in out["errors"][0]["reason"]

    ((_, ev),) = consume(settings, settings.topics.k8s_audit, 1)
    assert ev["ka"]["exec"] == {"command": ["sh", "-c", "id"], "container": "web"}
    dead = consume(settings, settings.topics.deadletter, 2)
    keyed = {k: v for k, v in dead}
    assert keyed["broken-1"]["source_topic"] == "http:audit-webhook"
    assert "verb" in keyed["broken-1"]["reason"]
    assert orjson.loads(keyed["broken-1"]["value"]) == bad  # the original, whole
    assert keyed[None]["value"] == '"not an object"'


@pytest.mark.parametrize(
    ("content", "ctype", "code", "needle"),
    [
        (b"{not json", "application/json", 400, "not JSON"),
        (
            orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []}),
            "application/json",
            422,
            "apiVersion",
        ),
        (orjson.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1"}), "application/json", 422, "kind"),
        (
            orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {}}),
            "application/json",
            422,
            "items",
        ),
        (b"kind=EventList", "application/x-www-form-urlencoded", 415, "application/json required"),
        (b"{}", "text/evil+json", 415, "application/json required"),
        (b"{}", "", 415, "application/json required"),
    ],
)
def test_bad_envelopes_get_clear_errors(webhook, content: bytes, ctype: str, code: int, needle: str) -> None:
    r = httpx.post(
        webhook.url,
        content=content,
        headers={**AUTH, "content-type": ctype},
        verify=webhook.verify,
        timeout=30,
    )
    assert r.status_code == code, r.text
    assert needle in r.text


def test_health_metrics_and_tls_only(webhook) -> None:
    with httpx.Client(verify=webhook.verify, timeout=30) as c:
        assert c.get(webhook.base + "/healthz").text == "ok\n"
        assert c.get(webhook.base + "/readyz").status_code == 200
        c.post(webhook.url, content=b"[", headers={**AUTH, "content-type": "application/json"})
        metrics = c.get(webhook.base + "/metrics").text
    assert 'memtrail_audit_requests_total{code="400"} 1.0' in metrics
    with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
        httpx.get(webhook.base.replace("https", "http") + "/healthz", timeout=5)


def test_cli_self_signed_serves_and_publishes(settings: Settings) -> None:
    """`memtrail audit-webhook --self-signed` as an operator runs it (a subprocess)."""
    import os
    import subprocess
    import sys
    import time

    from memtrail.core.broker import free_port

    port = free_port()
    env = {**os.environ, "MEMTRAIL_TOPICS__K8S_AUDIT": settings.topics.k8s_audit}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memtrail.cli",
            "audit-webhook",
            "--self-signed",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--bootstrap",
            settings.kafka.bootstrap or "",
            "--cluster-name",
            "cli",
            "--insecure-no-auth",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the webhook did not come up"
            time.sleep(0.2)
        r = httpx.post(
            f"https://127.0.0.1:{port}/k8s-audit",
            json=load_fixture("audit_exec.json"),
            verify=False,
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        ((key, ev),) = consume(settings, settings.topics.k8s_audit, 1)
        assert key == "shop/web-7d9f8-abcde" and ev["host"] == "cli"
    finally:
        stop_process(proc)


def test_kafka_down_answers_503_so_the_api_server_retries() -> None:
    """A real producer aimed at a port where no broker listens: nothing is acknowledged."""
    from fastapi.testclient import TestClient

    from memtrail.core.broker import free_port
    from memtrail.core.settings import KafkaSettings
    from sensors.k8s_audit.app import create_app
    from sensors.k8s_audit.publisher import AuditPublisher

    dead = Settings(kafka=KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"))
    publisher = AuditPublisher(dead, timeout_s=1.0)
    client = TestClient(create_app(publisher, "c1", ready=publisher.ready))
    r = client.post("/k8s-audit", json=load_fixture("audit_exec.json"))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "retry" in r.json()["error"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'memtrail_audit_requests_total{code="503"} 1.0' in metrics


def test_a_post_without_the_token_is_refused(webhook) -> None:
    body = load_fixture("audit_exec.json")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + "x" * 20}):
        r = httpx.post(webhook.url, json=body, headers=headers, verify=webhook.verify, timeout=30)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text


def test_no_authentication_configured_is_refused_at_start(settings: Settings, tmp_path) -> None:
    from sensors.k8s_audit.server import ConfigError, build_server
    from sensors.k8s_audit.settings import AuditWebhookSettings

    with pytest.raises(ConfigError, match="authentication required"):
        build_server(settings, AuditWebhookSettings(host="127.0.0.1"), make_self_signed=True)


def test_oversized_and_deep_items_are_deadlettered_and_the_rest_accepted(webhook, settings: Settings) -> None:
    """A 2 MB item (over a Kafka message) and a 300-deep one must not make the whole batch fail
    forever (the API server retries 5xx): they go to the dead letters, the rest is published."""
    good = load_fixture("audit_exec.json")["items"][0]
    big = {**good, "auditID": "big-1", "requestObject": {"blob": "x" * 2_000_000}}
    deep: dict[str, Any] = {"v": 1}
    for _ in range(300):
        deep = {"d": deep}
    nested = {**good, "auditID": "deep-1", "requestObject": deep}
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [big, good, nested]}
    r = httpx.post(webhook.url, content=json.dumps(body), headers={**AUTH, "content-type": "application/json"},
                   verify=webhook.verify, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["deadlettered"] == 2
    reasons = {e["auditID"]: e["reason"] for e in r.json()["errors"]}
    assert "exceeds" in reasons["big-1"] and "nested deeper than 64" in reasons["deep-1"]
    dead = {k: v for k, v in consume(settings, settings.topics.deadletter, 2)}
    assert set(dead) == {"big-1", "deep-1"}
