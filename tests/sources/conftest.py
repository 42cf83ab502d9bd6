"""Fixtures for the extra sources: a real HTTPS audit webhook on the local broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sources_helpers import Webhook

from memtrail.broker import free_port
from memtrail.settings import Settings
from sensors.k8s_audit.server import build_server
from sensors.k8s_audit.settings import AuditWebhookSettings
from sensors.k8s_audit.tls import self_signed


@pytest.fixture
def webhook(settings: Settings, tmp_path: Path) -> Iterator[Webhook]:
    """The real webhook (uvicorn + TLS) in a thread, publishing to this test's topics."""
    cert, key = self_signed(tmp_path / "tls", ["localhost", "127.0.0.1"])
    cfg = AuditWebhookSettings(
        host="127.0.0.1", port=free_port(), cert_file=cert, key_file=key, cluster_name="test-cluster"
    )
    server = build_server(settings, cfg)
    t = threading.Thread(target=server.run, name="audit-webhook", daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "webhook did not start"
        time.sleep(0.02)
    base = f"https://127.0.0.1:{cfg.port}"
    try:
        yield Webhook(url=base + cfg.path, base=base, ca=cert)
    finally:
        server.should_exit = True
        t.join(10)
