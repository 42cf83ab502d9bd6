"""Real-format audit EventLists → HTTPS webhook → local broker → pattern engine → alerts with techniques."""

from __future__ import annotations

import httpx
import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR, Settings
from patterns.engine.api import load_engine
from tests.sensors.k8s_audit.sources_helpers import consume, load_fixture
from tests.webhook_support import AUTH

pytestmark = pytest.mark.broker

# auditID suffix → the patterns (and their first technique) each attack event must raise
EXPECTED = {
    "6f01": {
        "MT-K8S-001": "T1610",  # privileged
        "MT-K8S-002": "T1611",  # hostPID
        "MT-K8S-003": "T1611",  # hostNetwork
        "MT-K8S-004": "T1611",  # hostIPC
        "MT-K8S-005": "T1611",  # hostPath /
        "MT-K8S-006": "T1611",  # docker.sock
        "MT-K8S-007": "T1611",  # SYS_ADMIN
        "MT-K8S-015": "T1204.003",  # registry.evil.example.net
    },
    "6f02": {"MT-K8S-005": "T1611"},  # DaemonSet mounting /var/lib/kubelet
    "6f03": {"MT-K8S-010": "T1609"},  # ephemeral container
    # anonymous allowed; it read kube-system secrets
    "6f04": {"MT-K8S-011": "T1078.001", "MT-K8SX-SECRETS-KUBESYSTEM-001": "T1552.007"},
    "6f05": {"MT-K8S-012": "T1098.006", "MT-K8S-013": "T1098.006"},  # write + wildcard ClusterRole
    "6f06": {"MT-K8S-014": "T1552.001"},  # ConfigMap with db.password / aws_access_key_id
    "6f07": {"MT-K8S-009": "T1609"},  # attach
    "6f08": {"MT-K8S-016": "T1098.006"},  # ClusterRoleBinding to cluster-admin
}


@pytest.fixture(scope="module")
def engine():
    eng = load_engine([DEFAULT_PATTERNS_DIR])
    assert not [e for e in eng.errors if "k8s_audit" in e.file], eng.errors
    return eng


def _post_and_read(webhook, settings: Settings, fixture: str) -> list[dict]:
    body = load_fixture(fixture)
    r = httpx.post(webhook.url, json=body, verify=webhook.verify, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    events = [v for _, v in consume(settings, settings.topics.k8s_audit, len(body["items"]))]
    return sorted(events, key=lambda e: e["time"])


def test_attacks_raise_alerts_with_techniques(webhook, settings: Settings, engine) -> None:
    events = _post_and_read(webhook, settings, "audit_attacks.json")
    got: dict[str, dict[str, list[str]]] = {}
    for ev in events:
        alerts = [a for a in engine.process(ev) if a.rule.id.startswith("MT-K8S")]
        got[ev["ka"]["auditid"][-4:]] = {a.rule.id: a.threat.technique.id for a in alerts}
        for a in alerts:
            assert a.source == "k8s_audit" and a.host.name == "test-cluster"
            assert a.evidence[0]["ka"]["auditid"] == ev["ka"]["auditid"]
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in EXPECTED.items()}
    for suffix, rules in EXPECTED.items():
        for rule, technique in rules.items():
            assert got[suffix][rule][0] == technique, (suffix, rule)
    privileged = engine.process(events[0])  # same event again: same deterministic alert ids
    assert privileged == [] or all(a.rule.id.startswith("MT-K8S") for a in privileged)


def test_exec_alerts_once_and_benign_requests_do_not(webhook, settings: Settings, engine) -> None:
    events = _post_and_read(webhook, settings, "audit_benign.json")
    assert [a.rule.id for e in events for a in engine.process(e) if a.rule.id.startswith("MT-K8S")] == []
    body = load_fixture("audit_exec.json")
    started = body["items"][0]
    completed = {**started, "stage": "ResponseComplete", "stageTimestamp": "2026-11-22T10:09:12.000000Z"}
    body["items"] = [started, completed]
    r = httpx.post(webhook.url, json=body, verify=webhook.verify, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    everything = [v for _, v in consume(settings, settings.topics.k8s_audit, len(events) + 2)]
    execs = [v for v in everything if v["ka"]["auditid"] == started["auditID"]]
    assert [e["ka"]["stage"] for e in execs] == ["ResponseStarted", "ResponseComplete"]
    alerts = [a for e in execs for a in engine.process(e) if a.rule.id.startswith("MT-K8S")]
    assert [(a.rule.id, a.threat.technique.id) for a in alerts] == [("MT-K8S-008", ["T1609"])]
    assert "dev-alice exec into shop/web-7d9f8-abcde container web" in alerts[0].message
