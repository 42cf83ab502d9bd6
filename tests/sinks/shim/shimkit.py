"""Shim test kit: sample alerts and heartbeats, an API client factory (imported by tests and conftest)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from memtrail.core.settings import Settings
from schemas.alerts import Alert
from schemas.heartbeat import SensorHeartbeat
from sinks.shim.app import create_app
from sinks.shim.config import ShimSettings
from sinks.shim.context import ShimContext
from sinks.shim.store import Store

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TOKEN = "test-token-0123456789abcdef"
#: The admin credential (deletes, pattern changes, self-test); TOKEN only reads.
ADMIN_TOKEN = "test-admin-token-fedcba9876543210"
CID_WEB = "a" * 64
CID_DB = "b" * 64
NOW = datetime.now(UTC).replace(microsecond=0)

TECHNIQUES = {
    "MT-FILELESS-001": (["T1620"], ["Reflective Code Loading"], ["TA0005"], ["Defense Evasion"], "critical"),
    "MT-INJECT-PTRACE": (
        ["T1055.008", "T1055"],
        ["Ptrace System Calls", "Process Injection"],
        ["TA0004", "TA0005"],
        ["Privilege Escalation", "Defense Evasion"],
        "error",
    ),
    "MT-LDPRELOAD-001": (["T1574.006"], ["Dynamic Linker Hijacking"], ["TA0003"], ["Persistence"], "warning"),
    "MT-NS-UNSHARE": (["T1611"], ["Escape to Host"], ["TA0004"], ["Privilege Escalation"], "info"),
}


def make_alert(
    alert_id: str,
    rule: str = "MT-FILELESS-001",
    container_id: str | None = CID_WEB,
    container_name: str | None = "web",
    minutes_ago: float = 5,
    count: int = 1,
    host: str = "node-1",
    exe: str = "/memfd:payload (deleted)",
    severity: str | None = None,
) -> Alert:
    tids, tnames, tac_ids, tac_names, sev = TECHNIQUES[rule]
    t = NOW - timedelta(minutes=minutes_ago)
    doc: dict[str, Any] = {
        "id": alert_id,
        "@timestamp": t.isoformat(),
        "rule": {"id": rule, "name": f"{rule} name", "severity": severity or sev, "description": "d"},
        "threat": {
            "technique": {
                "id": tids,
                "name": tnames,
                "reference": [f"https://attack.mitre.org/techniques/{x.replace('.', '/')}/" for x in tids],
            },
            "tactic": {"id": tac_ids, "name": tac_names},
        },
        "container": {"id": container_id, "name": container_name, "image": "localhost/app:1"}
        if container_id
        else {},
        "process": {
            "pid": 4242,
            "ppid": 4200,
            "executable": exe,
            "command_line": "/proc/self/fd/3",
            "name": "3",
            "ancestors": [
                {"pid": 4200, "exe": "/usr/bin/python3", "comm": "python3", "cmdline": "python3 loader.py"},
                {"pid": 1, "exe": "/sbin/init", "comm": "init", "cmdline": "/sbin/init"},
            ],
        },
        "host": {"name": host},
        "message": f"{rule}: fileless exec of {exe} in {container_name or 'host'}",
        "evidence": [
            {"syscall": "memfd_create", "args": {"name": "payload", "flags": ["MFD_CLOEXEC"]}, "ret": 3},
            {"syscall": "execve", "args": {"filename": "/proc/self/fd/3", "exe_memfd": True}, "ret": 0},
        ],
        "count": count,
        "first_seen": t.isoformat(),
        "last_seen": (t + timedelta(seconds=30 * (count - 1))).isoformat(),
    }
    return Alert.model_validate(doc)


def sample_alerts() -> list[Alert]:
    """Ten alerts: 3 rules in 2 containers, 2 on the host, one grouped (count 7)."""
    return [
        make_alert("a1", "MT-FILELESS-001", CID_WEB, "web", minutes_ago=50, count=7),
        make_alert("a2", "MT-FILELESS-001", CID_WEB, "web", minutes_ago=20),
        make_alert("a3", "MT-FILELESS-001", CID_DB, "db", minutes_ago=10),
        make_alert("a4", "MT-INJECT-PTRACE", CID_WEB, "web", minutes_ago=40, exe="/usr/bin/gdb"),
        make_alert("a5", "MT-INJECT-PTRACE", CID_DB, "db", minutes_ago=5, exe="/tmp/inj"),
        make_alert("a6", "MT-LDPRELOAD-001", CID_DB, "db", minutes_ago=30, exe="/usr/bin/curl"),
        make_alert("a7", "MT-LDPRELOAD-001", CID_DB, "db_replica_1", minutes_ago=3, exe="/usr/bin/wget"),
        make_alert("a8", "MT-NS-UNSHARE", CID_WEB, "web", minutes_ago=2, exe="/usr/bin/unshare"),
        make_alert(
            "h1", "MT-FILELESS-001", None, None, minutes_ago=15, host="node-1", exe="/memfd:x (deleted)"
        ),
        make_alert("h2", "MT-INJECT-PTRACE", None, None, minutes_ago=1, host="node-2", exe="/usr/bin/strace"),
    ]


def heartbeat(host: str, age_s: float, interval: float = 10.0, sensor: str | None = None) -> SensorHeartbeat:
    now = time.time()
    return SensorHeartbeat(
        host=host,
        sensor_id=sensor or f"{host}-sensor",
        time=now - age_s,
        started=now - 3600,
        kernel="6.18.0-cloud-amd64",
        version="0.1.0",
        programs=["syscalls:sys_enter_execve", "syscalls:sys_enter_memfd_create"],
        events_total=123456,
        events_per_s=42.5,
        lost_total=3,
        interval_s=interval,
    )


def make_client(
    store: Store,
    settings: Settings | None = None,
    publisher: Any = None,
    portainer: Any = None,
    as_token: str = ADMIN_TOKEN,
    **cfg: Any,
) -> TestClient:
    """A client on the real app; its requests carry ``as_token`` (the admin token by default)."""
    cfg.setdefault("admin_token", ADMIN_TOKEN)
    shim_cfg = ShimSettings(token=TOKEN, **cfg)
    ctx = ShimContext(
        cfg=shim_cfg,
        settings=settings or Settings(),
        store=store,
        registry=CollectorRegistry(),
        publisher=publisher,
        portainer=portainer,
    )
    return TestClient(create_app(ctx), headers={"Authorization": f"Bearer {as_token}"})


# Debian's Chromium, headless, with its background traffic off (this machine has no internet).
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A selenium driver for headless Chromium with a throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="memtrail-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    d = webdriver.Chrome(options=opts, service=service)
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


class JsonHandler(BaseHTTPRequestHandler):
    """Base of the local stand-in servers (OpenSearch, Portainer cannot run here): JSON replies, no log."""

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Start ``handler`` on a free loopback port in a daemon thread; returns (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def serve_page(
    db: Path, alerts: list[Alert], heartbeats: list[SensorHeartbeat] | None = None
) -> Iterator[str]:
    """The real shim app (uvicorn, read token ``TOKEN``) over a store holding ``alerts``; yields its URL."""
    import uvicorn

    from memtrail.core.broker import free_port

    store = Store(str(db))
    store.upsert_alerts(alerts)
    if heartbeats:
        store.upsert_heartbeats(list(heartbeats))
    ctx = ShimContext(
        cfg=ShimSettings(token=TOKEN), settings=Settings(), store=store, registry=CollectorRegistry()
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "shim did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
