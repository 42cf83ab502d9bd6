"""Builds the periodic SensorHeartbeat (pure; the runner publishes it)."""

from __future__ import annotations

import os
import time

from memtrail import __version__
from schemas.heartbeat import SensorHeartbeat


class HeartbeatState:
    def __init__(self, host: str, programs: list[str], interval_s: float) -> None:
        self.host = host
        self.sensor_id = f"{host}:{os.getpid()}:{int(time.time())}"
        self.started = time.time()
        self.programs = programs
        self.interval_s = interval_s
        self._last_events = 0
        self._last_time = time.monotonic()

    def build(self, events_total: int, lost: int, spool_depth: int, producer_errors: int) -> SensorHeartbeat:
        now = time.monotonic()
        rate = (events_total - self._last_events) / max(now - self._last_time, 1e-6)
        self._last_events, self._last_time = events_total, now
        return SensorHeartbeat(
            host=self.host,
            sensor_id=self.sensor_id,
            time=time.time(),
            started=self.started,
            kernel=os.uname().release,
            version=__version__,
            programs=self.programs,
            events_total=events_total,
            events_per_s=round(rate, 1),
            lost_total=lost,
            spool_depth=spool_depth,
            producer_errors_total=producer_errors,
            interval_s=self.interval_s,
        )
