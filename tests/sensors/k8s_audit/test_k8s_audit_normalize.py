"""Audit event normalisation (pure): the ka.* fields patterns rely on, on hand-written audit.k8s.io/v1 events."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import Event
from sensors.k8s_audit.models import AuditEvent, EventList
from sensors.k8s_audit.normalize import message_key, normalize, pod_facts, pod_key, split_image
from tests.sensors.k8s_audit.sources_helpers import load_fixture


def _events(name: str) -> dict[str, dict[str, Any]]:
    el = EventList.model_validate(load_fixture(name))
    out = {}
    for item in el.items:
        ev = normalize(AuditEvent.model_validate(item), "c1")
        out[ev["ka"]["auditid"][-2:]] = ev
    return out


ATTACKS = _events("audit_attacks.json")
BENIGN = _events("audit_benign.json")


def test_every_event_fits_the_event_schema() -> None:
    for ev in [*ATTACKS.values(), *BENIGN.values()]:
        Event.model_validate(ev)
        assert ev["source"] == ev["syscall"] == "k8s_audit"
        assert ev["id"].startswith("k8s:") and ev["host"] == "c1"


def test_privileged_pod_facts() -> None:
    ev = ATTACKS["01"]
    pod = ev["ka"]["req"]["pod"]
    assert (pod["privileged"], pod["host_pid"], pod["host_network"], pod["host_ipc"]) == (
        True,
        True,
        True,
        True,
    )
    assert pod["hostpath"] == ["/var/run/docker.sock", "/"]
    assert pod["add_capabilities"] == ["SYS_ADMIN", "SYS_PTRACE"]  # CAP_ prefix dropped
    assert pod["image_registries"] == ["registry.evil.example.net"]
    assert ev["ka"]["user"]["name"] == "dev-alice" and ev["ka"]["auth"]["decision"] == "allow"
    assert ev["ret"] == 201 and ev["ka"]["response"]["code"] == 201
    assert ev["kubernetes"] == {"namespace": "shop", "pod_name": "debug-root", "pod_key": "shop/debug-root"}
    assert message_key(ev) == "shop/debug-root"


def test_workload_templates_and_generate_name() -> None:
    ds = ATTACKS["02"]["ka"]["req"]["pod"]
    assert ds["kind"] == "DaemonSet" and ds["hostpath"] == ["/var/lib/kubelet", "/etc/kubernetes/manifests"]
    assert message_key(ATTACKS["02"]) == "kube-system/daemonsets/node-agent"
    created = BENIGN["01"]  # generateName: the final name comes from the response
    assert created["ka"]["target"]["name"] == "web-7d9f8-abcde"
    assert created["kubernetes"]["pod_key"] == "shop/web-7d9f8-abcde"
    assert created["ka"]["req"]["pod"]["run_as_root"] is False
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"hostPID": True, "containers": [{"image": "x"}]}}}}
        },
    }
    facts = pod_facts(cron)
    assert facts is not None and facts["host_pid"] is True and facts["name"] == "nightly"


def test_rbac_configmap_and_exec_facts() -> None:
    role = ATTACKS["05"]["ka"]["req"]["role"]
    assert role["wildcard"] is True and role["write"] is True and "*" in role["verbs"]
    assert BENIGN["03"]["ka"]["req"]["role"]["write"] is False
    binding = ATTACKS["08"]["ka"]["req"]["binding"]
    assert binding["role"] == "cluster-admin"
    assert binding["subjects"] == ["ServiceAccount:ci/deployer", "User:dev-alice"]
    cm = ATTACKS["06"]["ka"]["req"]["configmap"]
    assert cm["data_keys"] == ["application.properties", "aws_access_key_id"]
    assert cm["value_keys"] == ["server.port", "db.url", "db.password"]
    raw = ATTACKS["06"]["ka"]["event"]["requestObject"]["data"]
    assert raw == {
        "application.properties": "<redacted 80 bytes>",
        "aws_access_key_id": "<redacted 20 bytes>",
    }
    attach = ATTACKS["07"]
    assert attach["ka"]["exec"] == {"command": [], "container": "web"}
    assert attach["ka"]["uri_params"]["tty"] == "true"
    eph = ATTACKS["03"]["ka"]["req"]["ephemeral_containers"]
    assert [c["image"] for c in eph] == ["busybox:1.36"]


@pytest.mark.parametrize(
    ("image", "registry", "repository"),
    [
        ("nginx", "docker.io", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io", "docker.io/library/nginx"),
        ("bitnami/redis:7", "docker.io", "docker.io/bitnami/redis"),
        ("ghcr.io/acme/web:1.4.2", "ghcr.io", "ghcr.io/acme/web"),
        ("localhost:5000/x@sha256:abcd", "localhost:5000", "localhost:5000/x"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io", "registry.k8s.io/pause"),
        ("localhost/memtrail:dev", "localhost", "localhost/memtrail"),
    ],
)
def test_split_image(image: str, registry: str, repository: str) -> None:
    assert split_image(image) == (registry, repository)


def test_invalid_events_say_why() -> None:
    item = copy.deepcopy(load_fixture("audit_exec.json")["items"][0])
    del item["stageTimestamp"], item["requestReceivedTimestamp"]
    with pytest.raises(ValidationError, match="stageTimestamp"):
        AuditEvent.model_validate(item)
    with pytest.raises(ValidationError, match="apiVersion"):
        AuditEvent.model_validate(
            {**load_fixture("audit_exec.json")["items"][0], "apiVersion": "audit.k8s.io/v1beta1"}
        )
    with pytest.raises(ValidationError, match="stage"):
        AuditEvent.model_validate({**load_fixture("audit_exec.json")["items"][0], "stage": "Done"})


def test_pod_key() -> None:
    assert pod_key("shop", "web-1") == "shop/web-1"
    assert pod_key(None, "web-1") == "default/web-1"
    assert pod_key("shop", None) is None


def test_odd_request_bodies_never_break_normalisation() -> None:
    """Request bodies are user input: wrong types anywhere in them still normalise (seeded fuzz)."""
    import random

    import orjson

    rng = random.Random(3)
    junk: list[Any] = [None, 1, "x", [], {}, [1, "a", None, {"k": 1}], {"a": 1}, True, 2.5]
    items = [*load_fixture("audit_attacks.json")["items"], *load_fixture("audit_benign.json")["items"]]

    def mutate(o: Any) -> None:
        if isinstance(o, dict):
            for k in list(o):
                r = rng.random()
                if r < 0.15:
                    o[k] = copy.deepcopy(rng.choice(junk))
                elif r < 0.6:
                    mutate(o[k])
        elif isinstance(o, list):
            for i in range(len(o)):
                if rng.random() < 0.2:
                    o[i] = copy.deepcopy(rng.choice(junk))
                else:
                    mutate(o[i])

    for _ in range(2000):
        item = copy.deepcopy(rng.choice(items))
        for key in ("requestObject", "responseObject"):
            if key in item:
                mutate(item[key])
        try:
            ev = AuditEvent.model_validate(item)
        except ValidationError:
            continue  # the webhook dead-letters these with the reason
        orjson.dumps(normalize(ev, "c1"))
