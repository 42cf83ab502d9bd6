"""Run the shim under uvicorn (used by ``memtrail shim`` and ``memtrail up``)."""

from __future__ import annotations

import logging
import secrets
import threading

import uvicorn

from memtrail.core.kafka import BrokerUnreachable, check_reachable, ensure_topics
from memtrail.core.settings import Settings
from sinks.shim.app import build_context, create_app
from sinks.shim.config import ShimSettings

log = logging.getLogger(__name__)


def generate_token() -> str:
    """A fresh API token for local runs (``memtrail up`` prints it)."""
    return secrets.token_urlsafe(24)


def make_server(cfg: ShimSettings, settings: Settings) -> uvicorn.Server:
    """A configured uvicorn server (call ``.run()``, or ``.serve()`` in a loop you own)."""
    if settings.kafka.bootstrap:
        try:
            check_reachable(settings.kafka, timeout=10)
            ensure_topics(settings)
        except BrokerUnreachable as exc:
            log.warning("%s: the shim serves stored events; consuming resumes when Kafka is back", exc)
    else:
        log.warning(
            "no Kafka bootstrap (MEMTRAIL_KAFKA__BOOTSTRAP): no consuming, no self-test, no custom patterns"
        )
    app = create_app(build_context(cfg, settings))
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve_in_thread(cfg: ShimSettings, settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    """Start the shim in a daemon thread; stop it with ``server.should_exit = True``."""
    server = make_server(cfg, settings)
    thread = threading.Thread(target=server.run, name="memtrail-shim", daemon=True)
    thread.start()
    return server, thread
