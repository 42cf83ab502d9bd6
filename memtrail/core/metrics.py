"""Prometheus exposition plus health endpoints for components without their own web server.

Naming: ``memtrail_`` prefix, base units (seconds, bytes), ``_total`` counters, bounded labels.
Default ports: sensor 9101, worker 9102, sink-opensearch 9103, sink-wazuh 9104; the shim
(8080) and the audit webhook serve /metrics from their own FastAPI apps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, MetricsHandler

DEFAULT_PORTS = {"sensor": 9101, "worker": 9102, "sink-opensearch": 9103, "sink-wazuh": 9104}


def serve_metrics(
    port: int,
    host: str = "0.0.0.0",
    ready: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry = REGISTRY,
    alive: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz (``alive()``: the component's loop turns) and /readyz (``ready()``)
    in a daemon thread. /metrics is prometheus_client's own handler: ``?name[]=a&name[]=b``
    gives only those series (a poller of one counter does not pay for a full exposition, ~2 ms
    of the worker's CPU), and the format and gzip follow the scraper's Accept headers."""

    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/metrics":
                super().do_GET()
                return
            if path == "/healthz":
                ok = alive()
                body, code = (b"ok\n" if ok else b"stalled\n"), 200 if ok else 503
            elif path == "/readyz":
                ok = ready()
                body, code = (b"ready\n" if ok else b"not ready\n"), 200 if ok else 503
            else:
                body, code = b"not found\n", 404
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    Handler.registry = registry
    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server
