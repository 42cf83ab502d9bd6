"""Periodic sensor heartbeat on ``memtrail.sensors.heartbeat``: the collector status."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SensorHeartbeat(BaseModel):
    v: int = 1
    host: str
    sensor_id: str
    time: float = Field(description="Epoch seconds")
    started: float
    kernel: str
    version: str
    programs: list[str] = Field(default_factory=list, description="Attached tracepoints")
    events_total: int = 0
    events_per_s: float = 0.0
    lost_total: int = 0
    rate_limited_total: int = 0
    spool_depth: int = 0
    producer_errors_total: int = 0
    interval_s: float = 10.0
