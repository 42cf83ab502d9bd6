"""docs/sources.md examples and deploy/k8s-audit/ files: they must say what the code does."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.trails import parse_trail_list
from tests.paths import REPO
from tests.sensors.k8s_audit.sources_helpers import load_fixture

DOC = (REPO / "docs" / "sources.md").read_text()
# Ours, and the Helm chart's copy when it has one: each must keep what the patterns read.
POLICIES = [
    p
    for p in (
        REPO / "deploy" / "k8s-audit" / "audit-policy.yaml",
        REPO / "deploy" / "helm" / "memtrail" / "files" / "audit-policy.yaml",
    )
    if p.exists()
]
LEVELS = ["None", "Metadata", "Request", "RequestResponse"]


def test_doc_trail_list_example_parses() -> None:
    block = re.search(r"```text\n(.*?)```", DOC, re.S)
    assert block is not None
    tl, errors = parse_trail_list(block.group(1), "docs/sources.md")
    assert errors == []
    assert (tl.name, tl.severity, len(tl.entries)) == ("acme-c2", "critical", 3)


def _level(policy: dict[str, Any], item: dict[str, Any]) -> str:
    """The level a policy gives an audit event: first matching rule (as the API server does)."""
    ref = item.get("objectRef") or {}
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    for rule in policy["rules"]:
        if "users" in rule and item["user"]["username"] not in rule["users"]:
            continue
        if "verbs" in rule and item["verb"] not in rule["verbs"]:
            continue
        if "nonResourceURLs" in rule and (
            ref or not any(fnmatch(item["requestURI"], p) for p in rule["nonResourceURLs"])
        ):
            continue
        if "resources" in rule:
            groups = [g for g in rule["resources"] if g.get("group", "") == (ref.get("apiGroup") or "")]
            if not ref or not any(resource in g.get("resources", [resource]) for g in groups):
                continue
        return str(rule["level"])
    return "None"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: str(p.relative_to(REPO)))
def test_policy_records_what_the_patterns_need(path: Path) -> None:
    policy = yaml.safe_load(path.read_text())
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["kind"] == "Policy"
    assert "RequestReceived" in policy["omitStages"] and "ResponseStarted" not in policy["omitStages"]
    assert all(r["level"] in LEVELS for r in policy["rules"])
    at_least = {
        "6f01": "Request",  # pod spec
        "6f02": "Request",  # DaemonSet template
        "6f03": "Request",  # ephemeral container spec
        "6f05": "Request",  # ClusterRole rules
        "6f06": "Request",  # ConfigMap data (redacted by the webhook)
        "6f07": "Metadata",  # attach
    }
    items = {i["auditID"][-4:]: i for i in load_fixture("audit_attacks.json")["items"]}
    got = {k: _level(policy, items[k]) for k in at_least}
    assert all(LEVELS.index(got[k]) >= LEVELS.index(v) for k, v in at_least.items()), got
    assert _level(policy, items["6f04"]) == "Metadata"  # secrets: never their bodies
    exec_item = load_fixture("audit_exec.json")["items"][0]
    assert _level(policy, exec_item) in ("Metadata", "Request")
    secret_write = {**exec_item, "verb": "create", "objectRef": {"resource": "secrets", "namespace": "x"}}
    assert _level(policy, secret_write) == "Metadata"


def test_webhook_kubeconfig_points_at_the_webhook() -> None:
    cfg = yaml.safe_load((REPO / "deploy" / "k8s-audit" / "webhook-kubeconfig.yaml").read_text())
    assert cfg["kind"] == "Config" and cfg["current-context"] == "memtrail-audit"
    server = cfg["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://") and server.endswith("/k8s-audit")
    flags = (REPO / "deploy" / "k8s-audit" / "kube-apiserver-flags.txt").read_text()
    assert "--audit-webhook-config-file=" in flags and "--audit-policy-file=" in flags
