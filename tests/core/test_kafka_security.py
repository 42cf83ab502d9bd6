"""Kafka TLS/SASL from one settings block, for librdkafka clients and the Faust worker.

TLS is tested for real: stunnel4 terminates mutual TLS in front of the local broker (Tansu has
no usable TLS or SASL listener here), and the whole pipeline (`memtrail up` with an external
bootstrap: sensor, worker, shim and up's own alert consumer) runs through it. SASL cannot be
tested against a real server on this machine: its translation is checked field by field.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from confluent_kafka import Consumer, Producer

from memtrail.core.children import stop_process
from memtrail.core.kafka import (
    BrokerUnreachable,
    KafkaSecurityError,
    check_reachable,
    consumer_config,
    ensure_topics,
    producer_config,
    security_config,
)
from memtrail.core.settings import KafkaSecurity, Settings, SettingsError, load_settings
from streams.kafka_auth import faust_credentials
from tests.core.tls_endpoint import TlsBroker
from tests.e2e.helpers import REPO, UpProc, port_args, read_jsonl

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    b = TlsBroker(tmp_path_factory.mktemp("tls")).start()
    yield b
    b.stop()


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def test_sasl_scram_over_tls_translates_for_both_client_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read by librdkafka's translation, only checked to exist")
    s = _settings(
        {
            "MEMTRAIL_KAFKA__SECURITY__PROTOCOL": "SASL_SSL",
            "MEMTRAIL_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
            "MEMTRAIL_KAFKA__SECURITY__SASL_USERNAME": "memtrail",
            "MEMTRAIL_KAFKA__SECURITY__SASL_PASSWORD": "s3cret",
            "MEMTRAIL_KAFKA__SECURITY__VERIFY_HOSTNAME": "false",
        },
        monkeypatch,
    )
    assert security_config(s.kafka.security) == {
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "none",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "memtrail",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(s.kafka.security)  # secrets stay out of logs
    cred = faust_credentials(s.kafka.security)
    assert isinstance(cred, faust.SASLCredentials)
    assert (cred.protocol.value, cred.mechanism.value, cred.username, cred.password) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "memtrail",
        "s3cret",
    )
    assert cred.ssl_context is not None and cred.ssl_context.check_hostname is False

    plain = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    cred = faust_credentials(plain)
    assert (cred.protocol.value, cred.mechanism.value, cred.ssl_context) == ("SASL_PLAINTEXT", "PLAIN", None)
    assert faust_credentials(KafkaSecurity()) is None
    assert security_config(KafkaSecurity()) == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROTOCOL": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"PROTOCOL": "SSL", "CERT_FILE": "/c.pem"}, "needs both cert_file and key_file"),
        ({"PROTOCOL": "PLAINTEXT", "CA_FILE": "/ca.pem"}, "are TLS settings but protocol is PLAINTEXT"),
        ({"PROTOCOL": "TLS"}, "MEMTRAIL_KAFKA__SECURITY__PROTOCOL"),
    ],
)
def test_bad_security_settings_are_one_line_errors(env: dict[str, str], message: str) -> None:
    environ = {f"MEMTRAIL_KAFKA__SECURITY__{k}": v for k, v in env.items()}
    with pytest.raises(SettingsError, match=message):
        _load_with(environ)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "from memtrail.cli import main; main()",
            "worker",
            "--bootstrap",
            "127.0.0.1:1",
        ],
        env={"PATH": "/usr/bin:/bin", **environ},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr, p.stderr


def _load_with(environ: dict[str, str]) -> Settings:
    mp = pytest.MonkeyPatch()
    try:
        for k, v in environ.items():
            mp.setenv(k, v)
        return load_settings()
    finally:
        mp.undo()


def test_librdkafka_clients_round_trip_over_mutual_tls(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(tls_broker.env(), monkeypatch)
    topic = f"memtrail.tls.{uuid.uuid4().hex[:8]}"
    s.topics.alerts = topic
    ensure_topics(s)
    p = Producer(producer_config(s.kafka))
    for i in range(10):
        p.produce(topic, key=b"k", value=f"m{i}".encode())
    assert p.flush(20) == 0
    c = Consumer(consumer_config(s.kafka, f"g-{uuid.uuid4().hex[:6]}"))
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        for m in c.consume(10, timeout=0.5):
            if not m.error():
                got.append(m.value())
    c.close()
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(10))


def test_a_client_without_its_certificate_is_refused(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(tls_broker.env(client_cert=False), monkeypatch)
    with pytest.raises(BrokerUnreachable, match=tls_broker.bootstrap):
        check_reachable(s.kafka, timeout=4)


def test_a_missing_ca_file_names_the_file(tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**tls_broker.env(), "MEMTRAIL_KAFKA__SECURITY__CA_FILE": "/nonexistent/ca.pem"}
    s = _settings(env, monkeypatch)
    with pytest.raises(KafkaSecurityError, match=re.escape("CA file /nonexistent/ca.pem: No such file")):
        check_reachable(s.kafka, timeout=4)


@pytest.mark.ebpf
@pytest.mark.slow
def test_the_whole_pipeline_runs_over_mutual_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    """`memtrail up --bootstrap`: sensor, Faust worker, shim and up's alert consumer all over mTLS."""
    jsonl = tmp_path / "alerts.jsonl"
    up = UpProc("--alerts-jsonl", str(jsonl), *port_args(), env=tls_broker.env())
    try:
        assert up.wait_for("memtrail up: ready", timeout=240), up.tail()
        p = subprocess.Popen([sys.executable, "-m", "tests.e2e.triggers", "memfd"], cwd=REPO)
        assert p.wait(30) == 0
        deadline = time.monotonic() + 30
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            found = [
                a
                for a in read_jsonl(jsonl)
                if "T1620" in a["threat"]["technique"]["id"] and a["process"]["pid"] == p.pid
            ]
            time.sleep(0.3)
        assert found, f"no T1620 alert for pid {p.pid} over TLS:\n{up.tail()}"
    finally:
        assert up.stop() == 0, up.tail()


def test_a_sink_worker_consumes_alerts_over_mutual_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    """`memtrail sink wazuh --mode file`: the sink loop's consumer and dead-letter producer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")} | tls_broker.env()
    topic = f"memtrail.alerts.tls.{uuid.uuid4().hex[:8]}"
    env["MEMTRAIL_TOPICS__ALERTS"] = topic
    s = _load_with(env)
    ensure_topics(s)
    alert = orjson.loads((REPO / "tests" / "core" / "alert_sample.json").read_bytes())
    p = Producer(producer_config(s.kafka))
    p.produce(topic, key=alert["id"].encode(), value=orjson.dumps(alert))
    assert p.flush(20) == 0
    out = tmp_path / "alerts.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memtrail.cli import main; main()", "sink", "wazuh", "--mode", "file",
         "--file-path", str(out), "--metrics-port", "-1"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (
            out.exists() and orjson.loads(out.read_bytes().splitlines()[0])["memtrail"]["id"] == alert["id"]
        )
    finally:
        stop_process(proc)


def test_the_audit_webhook_publishes_over_mutual_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    """The audit webhook's producer: an EventList posted over HTTPS lands on Kafka over mTLS."""
    import httpx

    from tests.webhook_support import AUTH, running_webhook

    s = _load_with(tls_broker.env())
    s.topics.k8s_audit = f"memtrail.k8s.audit.tls.{uuid.uuid4().hex[:8]}"
    body = orjson.loads(
        (REPO / "tests" / "sensors" / "k8s_audit" / "fixtures" / "audit_exec.json").read_bytes()
    )
    with running_webhook(s, tmp_path / "tls") as (base, path, cert):
        r = httpx.post(
            base + path,
            json=body,
            headers=AUTH,
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=30,
        )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    c = Consumer(consumer_config(s.kafka, f"g-{uuid.uuid4().hex[:6]}"))
    c.subscribe([s.topics.k8s_audit])
    got = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = [m for m in c.consume(10, timeout=0.5) if not m.error()]
    c.close()
    assert got and orjson.loads(got[0].value())["source"] == "k8s_audit"
