"""End to end through `memtrail up`: a real fileless exec on the host and POST /test reach the page.

Real parts only: the embedded broker, the eBPF sensor, the Faust worker, the shim and Chromium.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from memtrail.core.broker import free_port
from tests.paths import REPO
from tests.sinks.shim.shimkit import chromium

pytestmark = [pytest.mark.ebpf, pytest.mark.slow, pytest.mark.browser]

SHOTS = REPO / "test-artifacts" / "screenshots"
TOKEN = "e2e-token-9f8e7d6c5b4a3210"
ADMIN_TOKEN = "e2e-admin-token-0a1b2c3d4e5f"
FILELESS = """
import os
fd = os.memfd_create("mt-shim-e2e", 0)
os.write(fd, open("/bin/true", "rb").read())
os.execv(f"/proc/self/fd/{fd}", ["mt-shim-e2e"])
"""


class Up:
    def __init__(self, tmp: Path, shim_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
        env.update(
            MEMTRAIL_SHIM_TOKEN=TOKEN,
            MEMTRAIL_SHIM_ADMIN_TOKEN=ADMIN_TOKEN,
            MEMTRAIL_SHIM_PORT=str(shim_port),
            XDG_STATE_HOME=str(tmp / "state"),
        )
        ports = [str(free_port()) for _ in range(3)]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from memtrail.cli import main; main()",
                "up",
                "--worker-metrics-port",
                ports[0],
                "--worker-web-port",
                ports[1],
                "--sensor-metrics-port",
                ports[2],
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any("memtrail up: ready" in x for x in self.lines):
                return
            time.sleep(0.2)
        raise AssertionError("memtrail up not ready:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _find(base: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(
        base + "/api/v1/security-events",
        params={"container_mode": "all", "limit": 200, **params},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    r.raise_for_status()
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_fileless_exec_and_selftest_reach_the_page(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    up = Up(tmp_path, port)
    try:
        up.wait_ready(150)
        assert httpx.get(base + "/", timeout=5).status_code == 200
        r = httpx.post(base + "/api/v1/security-events/test", headers={"X-API-Key": TOKEN}, timeout=15)
        assert r.status_code == 403, r.text  # the read token only reads
        r = httpx.post(base + "/api/v1/security-events/test", headers={"X-API-Key": ADMIN_TOKEN}, timeout=15)
        assert r.status_code == 202, r.text
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", FILELESS], check=True, timeout=30)

        def arrived() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            items = _find(base, technique="T1620")
            mine = [i for i in items if "mt-shim-e2e" in (i["process"].get("executable") or "")]
            selftest = [i for i in items if i["host"]["name"] == "memtrail-selftest"]
            return mine, selftest

        mine, selftest = arrived()
        while not (mine and selftest) and time.monotonic() - start < 60:
            time.sleep(0.5)
            mine, selftest = arrived()
        latency = time.monotonic() - start
        assert mine, "the host's fileless exec did not reach the shim:\n" + "\n".join(up.lines[-30:])
        assert selftest, "POST /test did not come back as a T1620 alert"
        print(f"fileless exec → shim API in {latency:.1f}s")
        assert mine[0]["rule"]["severity"] == "critical" and mine[0]["container"].get("id") is None

        status = httpx.get(base + "/api/v1/collector/status", headers={"X-API-Key": TOKEN}, timeout=5).json()
        assert status["status"] == "up" and status["sensors"][0]["programs"]

        _see_on_page(base, mine[0]["id"])
    finally:
        up.stop()


def _see_on_page(base: str, alert_id: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as d:
        d.get(f"{base}/#token={TOKEN}")
        WebDriverWait(d, 15).until(
            lambda x: (
                x.find_element(By.CSS_SELECTOR, '[data-testid="collector-status"]').get_attribute(
                    "data-status"
                )
                == "up"
            )
        )
        d.find_element(By.CSS_SELECTOR, '[data-mode="without"]').click()
        WebDriverWait(d, 15).until(lambda x: x.find_elements(By.CSS_SELECTOR, f'tr[data-id="{alert_id}"]'))
        SHOTS.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(SHOTS / "shim-e2e-live.png"))
