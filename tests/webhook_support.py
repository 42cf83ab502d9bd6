"""The real audit webhook (uvicorn + TLS) in a thread, for tests in several directories."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from memtrail.core.broker import free_port
from memtrail.core.settings import Settings
from sensors.k8s_audit.server import build_server
from sensors.k8s_audit.settings import AuditWebhookSettings
from sensors.k8s_audit.tls import self_signed

#: The bearer token the test webhook requires (authentication is on by default).
TOKEN = "audit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def running_webhook(
    settings: Settings, tls_dir: Path, **cfg_overrides: object
) -> Iterator[tuple[str, str, Path]]:
    """Yield (base URL, webhook path, CA cert) of a webhook publishing to ``settings``' topics;
    posts need ``AUTH`` headers."""
    cert, key = self_signed(tls_dir, ["localhost", "127.0.0.1"])
    cfg = AuditWebhookSettings(
        host="127.0.0.1",
        port=free_port(),
        cert_file=cert,
        key_file=key,
        cluster_name="test-cluster",
        token=TOKEN,  # type: ignore[arg-type]
        **cfg_overrides,  # type: ignore[arg-type]
    )
    server = build_server(settings, cfg)
    t = threading.Thread(target=server.run, name="audit-webhook", daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "webhook did not start"
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{cfg.port}", cfg.path, cert
    finally:
        server.should_exit = True
        t.join(10)
