"""Prometheus: the shipped configuration and rules pass promtool, and Debian's real Prometheus
server scrapes a running Memtrail component and answers a query for its metric."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrail.core.broker import LocalBroker, free_port, wait_for_port
from tests.deploy.deploy_support import MEMTRAIL, PROMETHEUS_DIR, process, wait_http


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if not exe:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} missing: Debian's prometheus package (bootstrap APT_TEST) ships it")
        pytest.skip(f"{name} not installed (bash scripts/bootstrap.sh test installs prometheus)")
    return exe


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS_DIR
    )


def test_alert_rules_pass_promtool_check() -> None:
    out = _promtool("check", "rules", "alerts.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 12 rules found" in out.stdout


def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    out = _promtool("test", "rules", "alerts_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_prometheus_config_passes_promtool() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@contextmanager
def _prometheus(tmp: Path, job: str, target: str) -> Iterator[str]:
    """Debian's prometheus on 127.0.0.1, scraping one target every second; yields its URL."""
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
    )
    cmd = [
        _tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with process(cmd, tmp / "prometheus.log") as proc:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready in 60 s:\n" + (tmp / "prometheus.log").read_text())
        yield url


def _query_until(url: str, promql: str, ok: Any, timeout: float = 60) -> list[dict[str, Any]]:
    """Poll /api/v1/query until ``ok(result)``; return the result vector."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        if ok(result):
            return result
        time.sleep(0.5)
    pytest.fail(f"{promql!r} never satisfied the check within {timeout} s; last result: {result}")


@pytest.mark.slow
def test_prometheus_scrapes_the_running_shim(tmp_path: Path) -> None:
    """`memtrail shim` (FastAPI /metrics) under the real Prometheus server."""
    if not MEMTRAIL.exists():
        pytest.fail(f"{MEMTRAIL} missing: the project is not installed in this venv")
    port = free_port()
    cmd = [str(MEMTRAIL), "shim", "--host", "127.0.0.1", "--port", str(port), "--no-consume",
           "--insecure-no-auth", "--db", str(tmp_path / "shim.sqlite3")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    with process(cmd, tmp_path / "shim.log", env) as shim:
        wait_http(f"http://127.0.0.1:{port}/healthz", shim, tmp_path / "shim.log")
        with _prometheus(tmp_path, "memtrail-shim", f"127.0.0.1:{port}") as prom:
            up = _query_until(prom, 'up{job="memtrail-shim"}', lambda r: r and r[0]["value"][1] == "1")
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            stored = _query_until(prom, "memtrail_shim_alerts_stored", lambda r: len(r) == 1)
            assert float(stored[0]["value"][1]) == 0.0
            # Prometheus's own scrapes pass through the shim's request counter.
            _query_until(
                prom,
                'sum(memtrail_shim_http_requests_total{job="memtrail-shim"})',
                lambda r: r and float(r[0]["value"][1]) >= 1,
            )


@pytest.mark.slow
@pytest.mark.ebpf
@pytest.mark.broker
def test_prometheus_scrapes_the_running_sensor(tmp_path: Path, local_broker: LocalBroker) -> None:
    """`memtrail sensor` (root, bcc) publishing to the local broker, scraped by the real
    Prometheus server; execs started here show up as memtrail_sensor_events_total{syscall}."""
    port = free_port()
    topic = f"memtrail.events.raw.deploy-prom-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    env.update({"MEMTRAIL_HOST_NAME": "deploy-test-node", "MEMTRAIL_TOPICS__RAW": topic})
    cmd = [str(MEMTRAIL), "sensor", "--bootstrap", local_broker.bootstrap, "--metrics-port", str(port),
           "--spool-dir", str(tmp_path / "spool")]  # fmt: skip
    log = tmp_path / "sensor.log"
    with process(cmd, log, env) as sensor:
        wait_http(f"http://127.0.0.1:{port}/readyz", sensor, log, timeout=180)
        assert wait_for_port("127.0.0.1", port, 5)
        with _prometheus(tmp_path, "memtrail-sensor", f"127.0.0.1:{port}") as prom:
            _query_until(prom, 'up{job="memtrail-sensor"}', lambda r: r and r[0]["value"][1] == "1")

            def execs_seen(result: list[dict[str, Any]]) -> bool:
                for _ in range(5):  # a small, bounded workload: a few short-lived processes
                    subprocess.run(["/bin/true"], check=True)
                return bool(result) and float(result[0]["value"][1]) > 0

            result = _query_until(
                prom,
                'sum by (syscall) (memtrail_sensor_events_total{syscall=~"execve|execveat"})',
                execs_seen,
            )
            assert result[0]["metric"]["syscall"] in {"execve", "execveat"}
            lost = _query_until(prom, "memtrail_sensor_events_lost_total", lambda r: len(r) == 1)
            assert float(lost[0]["value"][1]) >= 0
