"""``/api/v1/collector/status``: every sensor from its last heartbeat, plus the shim's own inputs."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from sinks.shim.context import Ctx
from sinks.shim.models import CollectorStatus
from sinks.shim.store import redact_url as _redact

router = APIRouter(prefix="/api/v1/collector", tags=["collector"])


@router.get(
    "/status",
    summary="Sensors up/down (last heartbeat < factor × interval), rates, losses",
    response_model=CollectorStatus,
)
def collector_status(ctx: Ctx) -> dict[str, Any]:
    now = time.time()
    sensors = []
    for hb in ctx.store.heartbeats():
        age = max(now - hb.time, 0.0)
        up = age < ctx.cfg.heartbeat_factor * hb.interval_s
        sensors.append(
            {
                "host": hb.host,
                "sensor_id": hb.sensor_id,
                "status": "up" if up else "down",
                "last_heartbeat": hb.time,
                "age_s": round(age, 1),
                "interval_s": hb.interval_s,
                "uptime_s": round(max(hb.time - hb.started, 0.0), 1),
                "events_per_s": hb.events_per_s,
                "events_total": hb.events_total,
                "lost_total": hb.lost_total,
                "rate_limited_total": hb.rate_limited_total,
                "spool_depth": hb.spool_depth,
                "producer_errors_total": hb.producer_errors_total,
                "kernel": hb.kernel,
                "version": hb.version,
                "programs": hb.programs,
            }
        )
    n_up = sum(s["status"] == "up" for s in sensors)
    overall = "down" if n_up == 0 else ("up" if n_up == len(sensors) else "degraded")
    consumer = ctx.consumer
    return {
        "status": overall,
        "sensors_up": n_up,
        "sensors_total": len(sensors),
        "sensors": sensors,
        "shim": {
            "store": ctx.store.dialect,
            "store_ok": ctx.store.ping(),
            "consumer": None
            if consumer is None
            else {
                "running": consumer.running,
                "group_id": consumer.group_id,
                "last_error": consumer.last_error,
            },
            "portainer": None
            if ctx.portainer is None
            else {"url": ctx.portainer.url, "last_error": ctx.portainer.last_error},
            "opensearch": None
            if ctx.opensearch is None
            else {"url": _redact(ctx.opensearch.reader.url), "last_error": ctx.opensearch.reader.last_error},
        },
    }
