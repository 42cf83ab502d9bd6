"""The FastAPI app: routers behind auth, health and metrics open, the page at ``/``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from memtrail import __version__
from memtrail.core.settings import Settings
from sinks.shim.auth import require_read
from sinks.shim.config import ShimSettings
from sinks.shim.consumer import ShimConsumer
from sinks.shim.context import ShimContext
from sinks.shim.opensearch import OpenSearchPoller, OpenSearchReader
from sinks.shim.portainer import PortainerClient
from sinks.shim.publisher import Publisher
from sinks.shim.routers import audit, collector, events, patterns
from sinks.shim.store import Store

log = logging.getLogger(__name__)


def build_context(
    cfg: ShimSettings, settings: Settings, registry: CollectorRegistry | None = None
) -> ShimContext:
    """Open the store and the optional parts (Kafka publisher/consumer, Portainer) from settings."""
    registry = registry or CollectorRegistry()
    store = Store(cfg.db)
    if cfg.portainer_url and not cfg.portainer_token:
        log.warning(
            "Portainer URL set without an access token (MEMTRAIL_SHIM_PORTAINER_TOKEN): no container links"
        )
    publisher = Publisher(settings) if settings.kafka.bootstrap else None
    consumer = (
        ShimConsumer(settings, store, group_id=cfg.group_id, registry=registry)
        if settings.kafka.bootstrap and cfg.consume
        else None
    )
    portainer = None
    if cfg.portainer_url and cfg.portainer_token:
        portainer = PortainerClient(
            cfg.portainer_url, cfg.portainer_token, cfg.portainer_cache_s, cfg.portainer_verify_tls
        )
    opensearch = None
    if cfg.opensearch_url:
        reader = OpenSearchReader(cfg.opensearch_url, cfg.opensearch_index, cfg.opensearch_verify_tls)
        opensearch = OpenSearchPoller(reader, store, cfg.opensearch_poll_s)
    return ShimContext(
        opensearch=opensearch,
        cfg=cfg,
        settings=settings,
        store=store,
        registry=registry,
        publisher=publisher,
        portainer=portainer,
        consumer=consumer,
    )


def create_app(ctx: ShimContext) -> FastAPI:
    app = FastAPI(
        title="Memtrail security events",
        version=__version__,
        description="Security events (alerts) from the Memtrail pipeline, for Portainer users. "
        "Everything under /api needs `Authorization: Bearer <token>`, `X-API-Key: <token>` or basic auth. "
        "The read token (or basic auth) reads; deleting events, changing patterns, the self-test and "
        "the audit log need the admin token.",
        lifespan=_lifespan,
    )
    app.state.ctx = ctx
    if ctx.cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.cfg.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    requests = Counter(
        "memtrail_shim_http_requests_total",
        "HTTP requests",
        ["method", "route", "code"],
        registry=ctx.registry,
    )
    latency = Histogram(
        "memtrail_shim_http_request_seconds", "HTTP latency", ["route"], registry=ctx.registry
    )
    alerts_stored = Gauge("memtrail_shim_alerts_stored", "Alerts in the store", registry=ctx.registry)
    alerts_stored.set_function(lambda: float(ctx.store.stats_count()))

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(request.method, path, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - start)
        return response

    auth = [Depends(require_read)]
    app.include_router(events.router, dependencies=auth)
    app.include_router(collector.router, dependencies=auth)
    app.include_router(patterns.router, dependencies=auth)
    app.include_router(audit.router, dependencies=auth)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> PlainTextResponse:
        if not ctx.store.ping():
            return PlainTextResponse("store unavailable\n", status_code=503)
        consumer = ctx.consumer
        if consumer is not None and consumer.runner.broker_error is not None:
            return PlainTextResponse(f"broker unreachable: {consumer.runner.broker_error}\n", status_code=503)
        return PlainTextResponse("ready\n")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)

    static = ctx.cfg.static_dir

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static), name="static")

    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start consuming with the server; stop and flush with it."""
    ctx: ShimContext = app.state.ctx
    if ctx.consumer is not None and not ctx.consumer.running:
        ctx.consumer.start()
    if ctx.opensearch is not None:
        ctx.opensearch.start()
    try:
        yield
    finally:
        if ctx.consumer is not None:
            ctx.consumer.stop()
        if ctx.opensearch is not None:
            ctx.opensearch.stop()
        if ctx.publisher is not None:
            ctx.publisher.close()
        if ctx.portainer is not None:
            ctx.portainer.close()
