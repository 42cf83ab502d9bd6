"""The audit webhook HTTP app (FastAPI): the API server's webhook backend posts EventLists here.

Answers, as the API server's webhook backend understands them (it retries 5xx and
connection failures, and drops a batch on 4xx, logging the error):

- 200 ``{"accepted", "deadlettered", "errors"}``: every event is on Kafka; items that are
  not valid audit events, larger than ``max_item_bytes`` or nested deeper than ``max_depth``
  went to ``memtrail.deadletter`` with the reason (nothing lost, nothing retried forever).
- 401 no or a wrong bearer token (when one is configured; mutual TLS is checked by the TLS
  layer before any request).
- 400 body not JSON, 413 body too large, 415 content type not ``application/json``, 422 not
  an ``audit.k8s.io/v1`` ``EventList``: nothing published, the reason in the body.
- 503 Kafka did not acknowledge in time: retried by the API server.

Also serves ``/healthz``, ``/readyz`` (Kafka acknowledged recently or the startup check
passed) and ``/metrics``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaException
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from schemas.deadletter import build_dead_letter
from sensors.k8s_audit.models import AuditEvent, EventList
from sensors.k8s_audit.normalize import normalize
from sensors.k8s_audit.publisher import PublishError

SOURCE_LABEL = "http:audit-webhook"


class Publisher(Protocol):
    def publish(
        self, events: Sequence[Mapping[str, Any]], deadletters: Sequence[Mapping[str, Any]] = ()
    ) -> None: ...


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "memtrail_audit_requests", "Webhook requests by HTTP status", ["code"], registry=registry
        )
        self.events = Counter(
            "memtrail_audit_events",
            "Audit events received, by result (published | deadlettered | rejected)",
            ["result"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "memtrail_audit_publish_seconds",
            "Time for Kafka to acknowledge one request's events",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class _Refused(ValueError):
    """An audit event refused before normalising (too large, too deep): dead-lettered."""


def _problem(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=code)


def _depth_over(obj: Any, limit: int) -> bool:
    """Nested deeper than ``limit`` (iterative: a hostile object cannot exhaust the stack)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return True
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values() if isinstance(v, dict | list))
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o if isinstance(v, dict | list))
    return False


def _oversized(item: Any, limit: int) -> int:
    """The item's JSON size when over ``limit``, else 0."""
    try:
        n = len(orjson.dumps(item))
    except TypeError:
        return 0
    return n if n > limit else 0


def create_app(
    publisher: Publisher,
    cluster: str,
    path: str = "/k8s-audit",
    max_body_bytes: int = 32 * 1024 * 1024,
    ready: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
    max_item_bytes: int = 900 * 1024,
    max_depth: int = 64,
) -> FastAPI:
    registry = registry or CollectorRegistry()
    metrics = _Metrics(registry)
    app = FastAPI(title="Memtrail Kubernetes audit webhook", docs_url=None, redoc_url=None, openapi_url=None)

    def handle(obj: Any) -> tuple[int, dict[str, Any]]:
        try:
            envelope = EventList.model_validate(obj)
        except ValidationError as exc:
            details = [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]
            ]
            return 422, {"error": "not an audit.k8s.io/v1 EventList", "details": details}
        events: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(envelope.items):
            try:
                if _depth_over(item, max_depth):
                    raise _Refused(f"audit event nested deeper than {max_depth} levels")
                if size := _oversized(item, max_item_bytes):
                    raise _Refused(f"audit event of {size} bytes exceeds {max_item_bytes}")
                events.append(normalize(AuditEvent.model_validate(item), cluster))
                continue
            except _Refused as exc:
                reason = str(exc)
            except ValidationError as exc:
                reason = "invalid audit event: " + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors()[:5]
                )
            except Exception as exc:  # an object shape the normaliser did not expect: keep it, say why
                reason = f"cannot normalise audit event: {exc!r}"
            audit_id = item.get("auditID") if isinstance(item, Mapping) else None
            errors.append({"index": i, "auditID": audit_id, "reason": reason})
            dead.append(
                build_dead_letter(
                    reason,
                    "audit-webhook",
                    SOURCE_LABEL,
                    None,
                    i,
                    str(audit_id) if audit_id else None,
                    item,
                    max_value_chars=65536,
                )
            )
        t0 = time.perf_counter()
        publisher.publish(events, dead)  # raises on failure: answered 503 by the caller
        metrics.publish_seconds.observe(time.perf_counter() - t0)
        metrics.events.labels("published").inc(len(events))
        metrics.events.labels("deadlettered").inc(len(dead))
        return 200, {"accepted": len(events), "deadlettered": len(dead), "errors": errors}

    expected = f"Bearer {token}".encode() if token else None

    @app.post(path)
    async def receive(request: Request) -> Response:
        if expected is not None:
            got = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                metrics.requests.labels("401").inc()
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":  # what the API server sends; nothing else is accepted
            metrics.requests.labels("415").inc()
            return _problem(415, f"content-type {ctype or 'missing'!r}: application/json required")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            metrics.requests.labels("413").inc()
            return _problem(413, f"body of {declared} bytes exceeds {max_body_bytes}")
        body = await request.body()
        if len(body) > max_body_bytes:
            metrics.requests.labels("413").inc()
            return _problem(413, f"body of {len(body)} bytes exceeds {max_body_bytes}")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            metrics.requests.labels("400").inc()
            metrics.events.labels("rejected").inc()
            return _problem(400, f"body is not JSON: {exc}")
        try:
            code, payload = await run_in_threadpool(handle, obj)
        except (PublishError, KafkaException) as exc:  # not stored: the API server retries on 5xx
            metrics.requests.labels("503").inc()
            return JSONResponse(
                {"error": f"events not stored, retry: {exc}"}, status_code=503, headers={"Retry-After": "5"}
            )
        if code != 200:
            n = (
                len(obj.get("items") or [])
                if isinstance(obj, dict) and isinstance(obj.get("items"), list)
                else 1
            )
            metrics.events.labels("rejected").inc(n)
        metrics.requests.labels(str(code)).inc()
        return JSONResponse(payload, status_code=code)

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz")
    def readyz() -> PlainTextResponse:
        ok = ready()
        return PlainTextResponse("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
