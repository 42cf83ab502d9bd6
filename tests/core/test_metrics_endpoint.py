"""The components' /metrics, /healthz and /readyz server (``memtrail.core.metrics``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from memtrail.core.broker import free_port
from memtrail.core.metrics import serve_metrics


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served() -> Iterator[int]:
    registry = CollectorRegistry()
    events = Counter("t_events", "events", ["agent"], registry=registry)
    events.labels("correlate").inc(7)
    Gauge("t_lag", "lag", registry=registry).set(3)
    port = free_port()
    server = serve_metrics(port, host="127.0.0.1", registry=registry, ready=lambda: False)
    yield port
    server.shutdown()


def test_metrics_are_served_whole_or_by_the_names_asked(served: int) -> None:
    port = served
    status, whole = _get(port, "/metrics")
    assert status == 200
    assert 't_events_total{agent="correlate"} 7.0' in whole and "t_lag 3.0" in whole

    status, some = _get(port, "/metrics?name[]=t_events_total")
    assert status == 200
    assert 't_events_total{agent="correlate"} 7.0' in some
    assert "t_lag" not in some

    _, two = _get(port, "/metrics?name%5B%5D=t_lag&name%5B%5D=t_events_total")
    assert "t_lag 3.0" in two and "t_events_total" in two
    # A name nobody registered is an empty exposition, not an error.
    assert _get(port, "/metrics?name[]=nope") == (200, "")
    # A scraper that asks for OpenMetrics gets it (Prometheus does by default).
    status, om = _get(port, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and om.endswith("# EOF\n") and 't_events_total{agent="correlate"} 7.0' in om


def test_health_endpoints_and_unknown_paths(served: int) -> None:
    port = served
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz") == (503, "not ready\n")
    assert _get(port, "/nope") == (404, "not found\n")
