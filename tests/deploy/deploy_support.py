"""Helpers for the deployment checks: render the Helm chart offline and schema-check manifests.

Rendering uses Helm's own Go library (PyPI ``helm-python-sdk``, which bundles ``libhelm_c``):
the same template engine and values.schema.json validation as ``helm template``. Manifests
are checked against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate`` in
strict mode (unknown fields rejected, e.g. ``readonly`` for ``readOnly``), and Prometheus
Operator kinds against ``schemas/monitoring.coreos.com-v1.json``. Nothing needs a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.paths import REPO

CHART = REPO / "deploy" / "helm" / "memtrail"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DOCKER_DIR = REPO / "deploy" / "docker"
CRD_SCHEMAS = Path(__file__).parent / "schemas" / "monitoring.coreos.com-v1.json"

#: Kubernetes versions the chart supports (Chart.yaml kubeVersion >= 1.25): oldest and newest known.
KUBE_VERSIONS = ("1.25.0", "latest")

#: The console command of this venv (the project installed by scripts/bootstrap.sh).
MEMTRAIL = Path(sys.executable).with_name("memtrail")

RELEASE = "mt"
NAMESPACE = "security"


def helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:  # installed by `make test` (pyproject dev extra)
        pytest.fail(f"helm-python-sdk is not installed (run `bash scripts/bootstrap.sh test`): {exc}")
    return helm_python


#: The shim token the chart requires (it never generates one): added by render() unless told not to.
TEST_SHIM_TOKEN = "a-test-token-of-forty-characters-000000"


def render(values: dict[str, Any] | None = None, *, shim_token: bool = True) -> dict[str, str]:
    """`helm template` equivalent: template path → rendered text (values.schema.json is enforced)."""
    values = dict(values or {})
    shim = dict(values.get("shim") or {})
    if shim_token and not (shim.get("token") or shim.get("existingSecret")):
        values["shim"] = {**shim, "token": TEST_SHIM_TOKEN}
    with helm().Chart.load(str(CHART)) as chart:
        return dict(chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True))


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered output (NOTES.txt and empty documents left out)."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__source__", path)
                docs.append(doc)
    return docs


def full_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(FULL_VALUES.read_text())
    return loaded


@cache
def _crd_schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CRD_SCHEMAS.read_text())
    return loaded


def _latest_kube() -> str:
    import kubernetes_validate.utils as kvu

    return str(kvu.latest_version())


def validate_manifest(doc: dict[str, Any], kube_version: str = "latest") -> list[str]:
    """Schema errors of one object; an object with no known schema is an error too."""
    import kubernetes_validate

    obj = {k: v for k, v in doc.items() if k != "__source__"}
    where = f"{doc.get('__source__', '?')}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        crds = _crd_schemas()
        schema = crds["kinds"].get(obj.get("kind", ""))
        if schema is None:
            return [f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')}"]
        schema = {**schema, "definitions": crds["definitions"]}
        validator = jsonschema.Draft7Validator(schema)
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    version = _latest_kube() if kube_version == "latest" else kube_version
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where} (k8s {version}): {'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    return []


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from workload["spec"]["template"]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value (or the valueFrom dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@contextmanager
def process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a component in its own session; always stopped (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Wait for a 200 from ``url``; fail with the component's log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"component exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"{url} not ready in {timeout} s:\n{log.read_text()[-3000:]}")
