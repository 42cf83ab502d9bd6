"""Prometheus exposition plus health endpoints for components without their own web server.

Naming: ``memtrail_`` prefix, base units (seconds, bytes), ``_total`` counters, bounded labels.
Default ports: sensor 9101, worker 9102, sink-opensearch 9103, sink-wazuh 9104; the shim
(8080) and the audit webhook serve /metrics from their own FastAPI apps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

DEFAULT_PORTS = {"sensor": 9101, "worker": 9102, "sink-opensearch": 9103, "sink-wazuh": 9104}


def serve_metrics(
    port: int,
    host: str = "0.0.0.0",
    ready: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry = REGISTRY,
    alive: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz (``alive()``: the component's loop turns) and /readyz (``ready()``)
    in a daemon thread. ``/metrics?name[]=a&name[]=b`` gives only those series, as
    prometheus_client's own handler does: a poller of one counter does not pay for a full
    exposition (~5 ms of the worker's CPU per scrape)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/metrics":
                names = parse_qs(query).get("name[]")
                source = registry.restricted_registry(names) if names else registry
                body, ctype, code = generate_latest(source), CONTENT_TYPE_LATEST, 200
            elif path == "/healthz":
                ok = alive()
                body, ctype, code = (b"ok\n" if ok else b"stalled\n"), "text/plain", 200 if ok else 503
            elif path == "/readyz":
                ok = ready()
                body, ctype, code = (b"ready\n" if ok else b"not ready\n"), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # no access log on stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server
