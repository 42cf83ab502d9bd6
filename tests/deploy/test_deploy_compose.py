"""The compose stack: validated by Debian's docker-compose (no engine needed), then its
resolved form checked for what each Memtrail service needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import COMPOSE, PROMETHEUS_DIR, REPO

ENV_EXAMPLE = COMPOSE.parent / ".env.example"


def _volumes(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """target → {source, read_only}: docker-compose 1.29 prints short "src:dst[:ro]" strings."""
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out[v["target"]] = {"source": v.get("source"), "read_only": bool(v.get("read_only"))}
        else:
            parts = str(v).split(":")
            out[parts[1]] = {"source": parts[0], "read_only": parts[2:3] == ["ro"]}
    return out


def _compose(*args: str, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if not exe:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose missing: bootstrap APT_TEST installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (bash scripts/bootstrap.sh test installs it)")
    cmd = [exe, "--project-directory", str(COMPOSE.parent), "-f", str(COMPOSE)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    # A clean environment: the user's own MEMTRAIL_* variables must not change the result.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMTRAIL_", "WAZUH_", "COMPOSE_"))}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    out = _compose("config")
    assert out.returncode == 0, out.stderr
    loaded: dict[str, Any] = yaml.safe_load(out.stdout)
    return loaded


def test_compose_file_is_valid() -> None:
    out = _compose("config", "-q")
    assert out.returncode == 0, out.stderr


def test_compose_without_env_names_the_missing_secret() -> None:
    out = _compose("config", "-q", env_file=None)
    assert out.returncode != 0
    assert "set WAZUH_API_PASSWORD in .env" in out.stderr


def test_stack_has_every_service(resolved: dict[str, Any]) -> None:
    services = set(resolved["services"])
    assert {
        "kafka", "opensearch", "opensearch-dashboards", "wazuh-manager", "portainer", "prometheus",
        "topics", "sensor", "worker", "sink-opensearch", "sink-wazuh", "shim",
    } <= services, services  # fmt: skip
    kafka = resolved["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_sensor_service_is_privileged_in_the_host_pid_namespace(resolved: dict[str, Any]) -> None:
    sensor = resolved["services"]["sensor"]
    assert sensor["privileged"] is True
    assert sensor["pid"] == "host"
    assert sensor["command"] == ["memtrail", "sensor"]
    targets = _volumes(sensor)
    for path in [
        "/lib/modules",
        "/usr/src",
        "/sys/kernel/tracing",
        "/sys/kernel/debug",
        "/sys/fs/cgroup",
        "/host/run",
    ]:
        assert path in targets, f"sensor lacks the mount {path}"
    assert targets["/lib/modules"]["read_only"] is True
    assert sensor["environment"]["MEMTRAIL_KAFKA__BOOTSTRAP"] == "kafka:9092"


def test_memtrail_services_share_broker_settings_and_commands(resolved: dict[str, Any]) -> None:
    expected = {
        "worker": ["memtrail", "worker"],
        "sink-opensearch": ["memtrail", "sink", "opensearch"],
        "sink-wazuh": ["memtrail", "sink", "wazuh"],
        "shim": ["memtrail", "shim"],
    }
    for name, command in expected.items():
        svc = resolved["services"][name]
        assert svc["command"][: len(command)] == command
        assert svc["environment"]["MEMTRAIL_KAFKA__BOOTSTRAP"] == "kafka:9092", name
        assert svc["environment"]["MEMTRAIL_KAFKA__PARTITIONS"] == "4", name
        assert "topics" in svc["depends_on"], name
    assert (
        resolved["services"]["shim"]["environment"]["MEMTRAIL_SHIM_TOKEN"]
        == "change-me-to-a-long-random-token"
    )


def test_published_ports_bind_to_localhost_only(resolved: dict[str, Any]) -> None:
    for name, svc in resolved["services"].items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond localhost"


def test_build_contexts_and_mounted_files_exist(resolved: dict[str, Any]) -> None:
    for name, svc in resolved["services"].items():
        if "build" in svc:
            ctx = Path(svc["build"]["context"])
            assert ctx.resolve() == REPO, f"{name}: build context {ctx}"
            assert (ctx / svc["build"]["dockerfile"]).is_file(), name
        for vol in _volumes(svc).values():
            src = Path(vol["source"])
            if src.is_absolute() and str(src).startswith(str(REPO)):
                assert src.exists(), f"{name}: bind source {src} missing from the repository"


def test_prometheus_config_scrapes_every_component() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["memtrail-sensor"] == ["sensor:9101"]
    assert targets["memtrail-worker"] == ["worker:9102"]
    assert targets["memtrail-sink-opensearch"] == ["sink-opensearch:9103"]
    assert targets["memtrail-sink-wazuh"] == ["sink-wazuh:9104"]
    assert targets["memtrail-shim"] == ["shim:8080"]
