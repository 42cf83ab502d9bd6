"""The Helm chart: rendered with Helm's engine for default and full values, every manifest
schema-checked offline, values.schema.json and the template checks rejecting bad values."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    CHART,
    KUBE_VERSIONS,
    MEMTRAIL,
    PROMETHEUS_DIR,
    REPO,
    by_kind,
    containers,
    env_of,
    full_values,
    helm,
    manifests,
    one,
    process,
    render,
    validate_manifest,
    wait_http,
)


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return manifests(render())


@pytest.fixture(scope="module")
def full_docs() -> list[dict[str, Any]]:
    return manifests(render(full_values()))


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("which", ["default", "full"])
def test_every_rendered_manifest_matches_the_kubernetes_schemas(
    which: str, kube: str, default_docs: list[dict[str, Any]], full_docs: list[dict[str, Any]]
) -> None:
    docs = default_docs if which == "default" else full_docs
    assert docs, "the chart rendered nothing"
    errors = [err for doc in docs for err in validate_manifest(doc, kube)]
    assert not errors, "\n".join(errors)


def test_default_values_render_the_core_components(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in default_docs)
    names = {n for _, n in kinds}
    assert {"mt-memtrail-sensor", "mt-memtrail-worker", "mt-memtrail-shim"} <= names, kinds
    assert not any(n.startswith("mt-memtrail-sink") for n in names if "metrics" not in n), kinds
    assert by_kind(default_docs, "Job"), "the topic Job is on by default"
    assert not [d for d in default_docs if d["apiVersion"].startswith("monitoring.coreos.com")]


def test_full_values_render_every_optional_part(full_docs: list[dict[str, Any]]) -> None:
    got = {(d["kind"], d["metadata"]["name"]) for d in full_docs}
    for kind, name in [
        ("Deployment", "mt-memtrail-sink-opensearch"),
        ("Deployment", "mt-memtrail-sink-wazuh"),
        ("Deployment", "mt-memtrail-audit-webhook"),
        ("Ingress", "mt-memtrail-shim"),
        ("Service", "mt-memtrail-shim"),
        ("ConfigMap", "mt-memtrail-patterns"),
        ("ServiceMonitor", "mt-memtrail"),
        ("PodMonitor", "mt-memtrail-sensor"),
        ("PrometheusRule", "mt-memtrail"),
        ("ClusterRole", "mt-memtrail"),
        ("Secret", "mt-memtrail"),
    ]:
        assert (kind, name) in got, f"{kind}/{name} missing from {sorted(got)}"


def test_sensor_daemonset_has_what_the_sensor_needs(default_docs: list[dict[str, Any]]) -> None:
    ds = one(default_docs, "DaemonSet", "-sensor")
    pod = ds["spec"]["template"]["spec"]
    (c,) = containers(ds)
    assert pod["hostPID"] is True
    assert c["securityContext"]["privileged"] is True
    assert c["command"] == ["memtrail", "sensor"]
    env = env_of(c)
    assert env["MEMTRAIL_HOST_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["MEMTRAIL_KAFKA__BOOTSTRAP"] == "kafka:9092"
    # The node's /run (docker, containerd, CRI-O and podman sockets) is mounted at /host/run.
    assert env["MEMTRAIL_SENSOR_DOCKER_SOCKET"] == "/host/run/docker.sock"
    assert env["MEMTRAIL_SENSOR_SPOOL_DIR"] == "/var/lib/memtrail/spool"
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for host, inside in [
        ("/sys/kernel/tracing", "/sys/kernel/tracing"),
        ("/sys/kernel/debug", "/sys/kernel/debug"),
        ("/lib/modules", "/lib/modules"),
        ("/usr/src", "/usr/src"),
        ("/proc", "/host/proc"),
        ("/sys/fs/cgroup", "/sys/fs/cgroup"),
        ("/run", "/host/run"),
        ("/var/lib/memtrail/spool", "/var/lib/memtrail/spool"),
    ]:
        vol = next((n for n, p in host_paths.items() if p == host), None)
        assert vol, f"no hostPath volume for {host}"
        assert mounts[vol]["mountPath"] == inside
    assert mounts[next(n for n, p in host_paths.items() if p == "/lib/modules")]["readOnly"] is True
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {"containerPort": 9101, "name": "metrics", "protocol": "TCP"} in c["ports"]
    assert c["resources"]["limits"] and c["resources"]["requests"]
    assert pod["tolerations"] == [{"operator": "Exists"}]  # control plane and tainted pools too


def test_sensor_without_privileged_gets_the_documented_capabilities(full_docs: list[dict[str, Any]]) -> None:
    (c,) = containers(one(full_docs, "DaemonSet", "-sensor"))
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["capabilities"] == {
        "drop": ["ALL"],
        "add": ["BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "SYS_ADMIN"],
    }
    assert c["image"].endswith("@sha256:" + "0123456789abcdef" * 4)


def test_worker_replicas_may_equal_but_not_exceed_partitions() -> None:
    docs = manifests(render({"kafka": {"partitions": 3}, "worker": {"replicas": 3}}))
    assert one(docs, "Deployment", "-worker")["spec"]["replicas"] == 3
    with pytest.raises(
        helm().HelmRenderError, match=r"worker.replicas \(4\) must not exceed kafka.partitions \(3\)"
    ):
        render({"kafka": {"partitions": 3}, "worker": {"replicas": 4}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker": {"replicas": "two"}}, r"/worker/replicas.*want integer"),
        ({"kafka": {"bootstrap": ""}}, r"/kafka/bootstrap"),
        ({"kafka": {"bootstrap": "kafka"}}, r"/kafka/bootstrap.*does not match"),
        ({"kafka": {"partitions": 0}}, r"/kafka/partitions"),
        ({"sensor": {"privileged": "yes"}}, r"/sensor/privileged.*want boolean"),
        ({"sensor": {"capabilities": ["CAP_BPF"]}}, r"/sensor/capabilities/0"),
        ({"sensor": {"hostPath": {}}}, r"additional properties 'hostPath' not allowed"),
        ({"sensor": {"resources": {"limits": {"memory": "1 GB"}}}}, r"/sensor/resources/limits/memory"),
        ({"image": {"pullPolicy": "Sometimes"}}, r"/image/pullPolicy"),
        ({"logLevel": "LOUD"}, r"/logLevel"),
        ({"sinks": {"wazuh": {"mode": "smtp"}}}, r"/sinks/wazuh/mode"),
        ({"sinks": {"opensearch": {"url": "opensearch:9200"}}}, r"/sinks/opensearch/url"),
        ({"shim": {"databaseUrl": "mysql://x"}}, r"/shim/databaseUrl"),
        ({"patterns": {"custom": {"bad name!": "x"}}}, r"invalid propertyName 'bad name!'"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, r"/metrics/serviceMonitor/interval"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    h = helm()
    with h.Chart.load(str(CHART)) as chart, pytest.raises(h.HelmValuesError, match=message):
        chart.validate_schema(values)
    # And an install/template with them fails the same way, before any manifest exists.
    with pytest.raises(h.HelmValuesError, match=message):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sinks": {"opensearch": {"enabled": True}}}, "sinks.opensearch.enabled needs sinks.opensearch.url"),
        ({"sinks": {"wazuh": {"enabled": True}}}, "sinks.wazuh.mode=api needs sinks.wazuh.url"),
        (
            {"sinks": {"wazuh": {"enabled": True, "mode": "socket"}}},
            "sinks.wazuh.mode=socket needs sinks.wazuh.hostPath",
        ),
        ({"shim": {"replicas": 2}}, r"shim.replicas > 1 needs a shared store"),
        ({"auditWebhook": {"enabled": True}}, "auditWebhook.enabled needs auditWebhook.tlsSecret"),
        ({"auditWebhook": {"enabled": True, "tlsSecret": "t"}}, "auditWebhook.enabled needs authentication"),
        ({"patterns": {"builtin": False}}, "no patterns"),
        (
            {"sensor": {"dockerSocket": "/srv/docker.sock"}},
            r"sensor.dockerSocket \(/srv/docker.sock\) must be under",
        ),
    ],
)
def test_template_checks_reject_inconsistent_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm().HelmRenderError, match=message):
        render(values)


def test_strict_validation_catches_a_misspelt_field(default_docs: list[dict[str, Any]]) -> None:
    """Helm passes `readonly:` (for `readOnly:`) through unchecked; the strict schema check does not."""
    ds = copy.deepcopy(one(default_docs, "DaemonSet", "-sensor"))
    mount = ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    mount["readonly"] = mount.pop("readOnly")
    errors = validate_manifest(ds)
    assert errors and "readonly" in errors[0], errors
    sm = copy.deepcopy(next(d for d in manifests(render(full_values())) if d["kind"] == "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("intervall" in e for e in validate_manifest(sm))


def test_secrets_stay_in_secret_objects(full_docs: list[dict[str, Any]]) -> None:
    values = full_values()
    secrets = [  # every secret value of ci/full-values.yaml
        values["sinks"]["opensearch"]["password"],
        values["shim"]["token"],
        values["shim"]["adminToken"],
        values["shim"]["portainer"]["apiKey"],
        "secret@postgres",
    ]
    for doc in full_docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{doc['kind']}/{doc['metadata']['name']} holds {leaked}"
    import base64

    (secret,) = by_kind(full_docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert json.loads(data["MEMTRAIL_KAFKA__EXTRA"]) == {"client.rack": "eu-west-1a"}
    assert data["MEMTRAIL_SHIM_TOKEN"] == "a-long-random-token-for-ci"
    assert data["MEMTRAIL_SHIM_ADMIN_TOKEN"] == "another-long-admin-token-for-ci"
    # The Wazuh credentials come from the user's existing Secret, not the chart's.
    (sink,) = containers(one(full_docs, "Deployment", "-sink-wazuh"))
    assert env_of(sink)["MEMTRAIL_WAZUH_PASSWORD"]["secretKeyRef"]["name"] == "wazuh-api-credentials"


def test_every_kafka_client_gets_the_one_security_block(full_docs: list[dict[str, Any]]) -> None:
    """SASL_SSL with a CA from a Secret reaches every component, the Faust workers included."""
    kafka_pods = [d for d in full_docs if d["kind"] in ("DaemonSet", "Deployment", "Job")]
    names = {d["metadata"]["name"].rsplit("-", 1)[-1] for d in kafka_pods}
    assert {"sensor", "worker", "opensearch", "wazuh", "shim", "webhook"} <= names, names
    assert any(d["kind"] == "Job" and "topics" in d["metadata"]["name"] for d in kafka_pods)
    for doc in kafka_pods:
        c = next(containers(doc))
        env = env_of(c)
        where = doc["metadata"]["name"]
        assert env["MEMTRAIL_KAFKA__SECURITY__PROTOCOL"] == "SASL_SSL", where
        assert env["MEMTRAIL_KAFKA__SECURITY__CA_FILE"] == "/etc/memtrail/kafka-tls/ca.crt", where
        assert env["MEMTRAIL_KAFKA__SECURITY__SASL_MECHANISM"] == "SCRAM-SHA-512", where
        ref = env["MEMTRAIL_KAFKA__SECURITY__SASL_PASSWORD"]["secretKeyRef"]
        assert ref == {"name": "memtrail-kafka-user", "key": "password"}, where
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert (
            mounts["kafka-tls"]["mountPath"] == "/etc/memtrail/kafka-tls" and mounts["kafka-tls"]["readOnly"]
        )
        vols = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        assert vols["kafka-tls"]["secret"]["secretName"] == "memtrail-kafka-cluster-ca", where


def test_mutual_tls_mounts_the_client_certificate() -> None:
    values = full_values()
    values["kafka"]["security"] = {
        "protocol": "SSL",
        "tls": {"secret": "memtrail-user", "caKey": "ca.crt", "certKey": "user.crt", "keyKey": "user.key"},
    }
    worker = one(manifests(render(values)), "Deployment", "-worker")
    env = env_of(next(containers(worker)))
    assert env["MEMTRAIL_KAFKA__SECURITY__CERT_FILE"] == "/etc/memtrail/kafka-tls/user.crt"
    assert env["MEMTRAIL_KAFKA__SECURITY__KEY_FILE"] == "/etc/memtrail/kafka-tls/user.key"
    assert "MEMTRAIL_KAFKA__SECURITY__SASL_USERNAME" not in env


def test_grafana_dashboard_is_a_sidecar_config_map(full_docs: list[dict[str, Any]]) -> None:
    cm = one(full_docs, "ConfigMap", "-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    dash = json.loads(cm["data"]["memtrail.json"])
    assert dash["uid"] == "memtrail-overview" and dash["panels"]


def test_the_shim_token_is_required_never_generated() -> None:
    """A generated token would change on every GitOps render (no `lookup` there) and lock users out."""
    with pytest.raises(helm().HelmRenderError, match=r"shim\.token or shim\.existingSecret is required"):
        render(shim_token=False)
    docs = manifests(render({"shim": {"existingSecret": "memtrail-shim"}}, shim_token=False))
    (shim,) = containers(one(docs, "Deployment", "-shim"))
    assert env_of(shim)["MEMTRAIL_SHIM_TOKEN"]["secretKeyRef"]["name"] == "memtrail-shim"
    assert not any("MEMTRAIL_SHIM_TOKEN" in d.get("data", {}) for d in by_kind(docs, "Secret"))
    # the admin token from the same Secret, optional (a read-only API without it)
    admin = env_of(shim)["MEMTRAIL_SHIM_ADMIN_TOKEN"]["secretKeyRef"]
    assert admin["name"] == "memtrail-shim" and admin["optional"] is True
    docs = manifests(render())
    (shim,) = containers(one(docs, "Deployment", "-shim"))
    assert "MEMTRAIL_SHIM_ADMIN_TOKEN" not in env_of(shim)  # no adminToken: read-only


def test_least_privilege_service_accounts(full_docs: list[dict[str, Any]]) -> None:
    """One ServiceAccount per component; only the sensor's mounts a token and reads pods."""
    accounts = {d["metadata"]["name"]: d for d in by_kind(full_docs, "ServiceAccount")}
    pods = [d for d in full_docs if d["kind"] in ("DaemonSet", "Deployment", "Job")]
    used = set()
    for doc in pods:
        spec = doc["spec"]["template"]["spec"]
        sa = spec["serviceAccountName"]
        used.add(sa)
        assert sa in accounts, (doc["metadata"]["name"], sa)
        if doc["kind"] == "DaemonSet":
            assert sa.endswith("-sensor") and accounts[sa]["automountServiceAccountToken"] is True
            assert spec.get("automountServiceAccountToken") is not False
        else:
            assert spec["automountServiceAccountToken"] is False, doc["metadata"]["name"]
            assert accounts[sa]["automountServiceAccountToken"] is False
    assert len(used) == len(pods), "components share a ServiceAccount"
    (role,) = by_kind(full_docs, "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    (binding,) = by_kind(full_docs, "ClusterRoleBinding")
    assert [s["name"] for s in binding["subjects"]] == [n for n in used if n.endswith("-sensor")]


def test_sensor_restarts_only_for_its_own_configuration() -> None:
    def sensor_checksum(values: dict[str, Any]) -> str:
        ds = one(manifests(render(values)), "DaemonSet", "-sensor")
        return str(ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = full_values()
    rotated = full_values()
    rotated["shim"]["token"] = "another-long-random-token-for-ci"
    rotated["sinks"]["opensearch"]["password"] = "rotated"
    assert sensor_checksum(base) == sensor_checksum(rotated)
    moved = full_values()
    moved["kafka"]["bootstrap"] = "kafka-9.kafka:9093"
    assert sensor_checksum(base) != sensor_checksum(moved)


def test_sensor_runs_on_every_node_and_probes_its_loop(default_docs: list[dict[str, Any]]) -> None:
    ds = one(default_docs, "DaemonSet", "-sensor")
    spec = ds["spec"]["template"]["spec"]
    assert {"operator": "Exists"} in spec["tolerations"]  # every taint, as Tetragon's DaemonSet
    (c,) = containers(ds)
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 300
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_custom_patterns_are_mounted_and_listed(full_docs: list[dict[str, Any]]) -> None:
    cm = one(full_docs, "ConfigMap", "-patterns")
    spec = yaml.safe_load(cm["data"]["site-rules.yaml"])
    assert spec["patterns"][0]["id"] == "SITE-001"
    for kind, suffix in [("DaemonSet", "-sensor"), ("Deployment", "-worker"), ("Deployment", "-shim")]:
        (c,) = containers(one(full_docs, kind, suffix))
        assert json.loads(env_of(c)["MEMTRAIL_PATTERNS_DIRS"]) == [
            "/opt/memtrail/patterns/library",
            "/etc/memtrail/patterns/custom",
            "/etc/memtrail/patterns/extra",
        ]
        assert {"/etc/memtrail/patterns/custom", "/etc/memtrail/patterns/extra"} <= {
            m["mountPath"] for m in c["volumeMounts"]
        }


def test_topic_job_creates_topics_with_the_partition_count(full_docs: list[dict[str, Any]]) -> None:
    (job,) = by_kind(full_docs, "Job")
    (c,) = containers(job)
    env = env_of(c)
    assert env["MEMTRAIL_KAFKA__PARTITIONS"] == "12"
    assert env["MEMTRAIL_KAFKA__REPLICATION_FACTOR"] == "3"
    assert "ensure_topics" in c["command"][-1]
    compile(c["command"][-1], "topics-job", "exec")  # the inline script is valid Python


def test_prometheus_rule_is_the_checked_alert_file(full_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    assert (CHART / "files" / "alerts.yaml").read_text() == (PROMETHEUS_DIR / "alerts.yaml").read_text(), (
        "deploy/helm/memtrail/files/alerts.yaml must be a copy of deploy/prometheus/alerts.yaml"
    )
    (rule,) = by_kind(full_docs, "PrometheusRule")
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool missing: it comes with Debian's prometheus package (bootstrap APT_TEST)")
    f = tmp_path / "rule.yaml"
    f.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_helm_lint_is_clean() -> None:
    for values in ({}, full_values()):
        report = helm().lint(str(CHART), values, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
        assert not problems, problems


def test_notes_tell_how_to_reach_the_page() -> None:
    notes = render()["memtrail/templates/NOTES.txt"]
    assert "port-forward svc/mt-memtrail-shim 8080:8080" in notes
    assert "MEMTRAIL_SHIM_TOKEN" in notes
    notes_full = render(full_values())["memtrail/templates/NOTES.txt"]
    assert "https://memtrail.example.com/" in notes_full


def test_podman_socket_maps_into_the_host_run_mount() -> None:
    docs = manifests(render({"sensor": {"dockerSocket": "/var/run/podman/podman.sock"}}))
    (c,) = containers(one(docs, "DaemonSet", "-sensor"))
    assert env_of(c)["MEMTRAIL_SENSOR_DOCKER_SOCKET"] == "/host/run/podman/podman.sock"
    docs = manifests(render({"sensor": {"dockerSocket": ""}}))
    (c,) = containers(one(docs, "DaemonSet", "-sensor"))
    assert "MEMTRAIL_SENSOR_DOCKER_SOCKET" not in env_of(c)


def test_component_settings_use_the_components_variable_names(full_docs: list[dict[str, Any]]) -> None:
    """Names read by sinks/*/config.py, sinks/shim/config.py, streams/config.py (pydantic-settings)."""
    (w,) = containers(one(full_docs, "Deployment", "-worker"))
    assert {"MEMTRAIL_STREAM_METRICS_PORT", "MEMTRAIL_STREAM_WEB_PORT", "MEMTRAIL_STREAM_DATADIR"} <= set(
        env_of(w)
    )
    (shim,) = containers(one(full_docs, "Deployment", "-shim"))
    env = env_of(shim)
    assert env["MEMTRAIL_SHIM_DB"]["secretKeyRef"]["key"] == "MEMTRAIL_SHIM_DB"
    assert env["MEMTRAIL_SHIM_PORTAINER_TOKEN"]["secretKeyRef"]["key"] == "MEMTRAIL_SHIM_PORTAINER_TOKEN"
    assert env["MEMTRAIL_SHIM_PORTAINER_URL"] == "https://portainer.example.com:9443"
    assert shim["args"] == ["--host=0.0.0.0", "--port=8080"]
    (os_sink,) = containers(one(full_docs, "Deployment", "-sink-opensearch"))
    assert os_sink["args"] == ["--metrics-port=9103", "--index-prefix=memtrail-alerts", "--no-verify"]
    assert env_of(os_sink)["MEMTRAIL_OPENSEARCH_URL"] == "https://opensearch-cluster-master:9200"
    (hook,) = containers(one(full_docs, "Deployment", "-audit-webhook"))
    assert env_of(hook)["MEMTRAIL_AUDIT_CERT_FILE"] == "/etc/memtrail/tls/tls.crt"


def test_audit_policy_is_a_valid_policy_that_records_what_the_patterns_read() -> None:
    """docs/deploy.md installs deploy/k8s-audit/ on the API servers: check what it promises."""
    audit = REPO / "deploy" / "k8s-audit"
    policy = yaml.safe_load((audit / "audit-policy.yaml").read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    allowed = {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs", "omitStages",
               "omitManagedFields"}  # fmt: skip
    for rule in policy["rules"]:
        assert set(rule) <= allowed, rule
        assert rule["level"] in {"None", "Metadata", "Request", "RequestResponse"}
        for res in rule.get("resources", []):
            assert set(res) <= {"group", "resources", "resourceNames"}, res

    def level_for(group: str, resource: str, verb: str, user: str = "alice") -> str:
        """First matching rule wins, as in the API server."""
        for rule in policy["rules"]:
            if "nonResourceURLs" in rule or ("users" in rule and user not in rule["users"]):
                continue
            if "verbs" in rule and verb not in rule["verbs"]:
                continue
            res = rule.get("resources")
            if res is None or any(
                r.get("group", "") == group and ("resources" not in r or resource in r["resources"])
                for r in res
            ):
                return str(rule["level"])
        raise AssertionError("no rule matched")

    assert level_for("", "pods", "create") == "Request"  # privileged / hostPath pod specs
    assert level_for("apps", "daemonsets", "patch") == "Request"
    assert level_for("rbac.authorization.k8s.io", "clusterroles", "create") == "Request"
    assert level_for("", "pods/exec", "create") != "None"
    assert level_for("", "secrets", "create") == "Metadata"  # never secret contents
    kubeconfig = yaml.safe_load((audit / "webhook-kubeconfig.yaml").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"].endswith("/k8s-audit")
    flags = (audit / "kube-apiserver-flags.txt").read_text()
    assert "--audit-policy-file=/etc/kubernetes/memtrail/audit-policy.yaml" in flags
    # The chart's webhook listens where that kubeconfig points (port and path).
    (c,) = containers(one(manifests(render(full_values())), "Deployment", "-audit-webhook"))
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    assert server.endswith(f":{env_of(c)['MEMTRAIL_AUDIT_PORT']}{env_of(c)['MEMTRAIL_AUDIT_PATH']}")


@pytest.mark.slow
def test_helm_test_pod_passes_against_a_running_shim(tmp_path: Path) -> None:
    """The `helm test` Pod's script, run against a real `memtrail shim` with a token."""
    from memtrail.core.broker import free_port

    port = free_port()
    docs = manifests(render({"shim": {"service": {"port": port}}}))
    (check,) = one(docs, "Pod", "-helm-test")["spec"]["containers"]
    script = check["command"][-1].replace(f"http://mt-memtrail-shim:{port}", f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in script
    token = "helm-test-token-0123456789"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    cmd = [str(MEMTRAIL), "shim", "--host", "127.0.0.1", "--port", str(port), "--no-consume",
           "--db", str(tmp_path / "shim.sqlite3")]  # fmt: skip
    log = tmp_path / "shim.log"
    with process(cmd, log, {**base_env, "MEMTRAIL_SHIM_TOKEN": token}) as shim:
        wait_http(f"http://127.0.0.1:{port}/healthz", shim, log)
        ok = subprocess.run(
            [sys.executable, "-c", script], env={**base_env, "MEMTRAIL_SHIM_TOKEN": token},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        bad = subprocess.run(
            [sys.executable, "-c", script], env={**base_env, "MEMTRAIL_SHIM_TOKEN": "wrong"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode != 0 and "401" in bad.stderr, bad.stderr
