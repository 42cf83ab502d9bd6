"""Per-credential rate limits (token buckets) for the calls that cost or change something."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, status


class RateLimiter:
    """``per_min`` calls a minute per key, in bursts of up to ``burst`` (default: ``per_min``).

    Buckets are kept per credential, so one token cannot starve another; the number of keys is
    bounded by the configured credentials (unauthenticated calls never reach a limiter)."""

    def __init__(self, per_min: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = per_min / 60.0
        self.burst = float(burst or per_min)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one call for ``key``: 0 when allowed, else the seconds until the next one is."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def check(self, key: str, what: str) -> None:
        """Raise 429 with ``Retry-After`` (whole seconds) when ``key`` is over its limit."""
        wait = self.take(key)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many {what} for this credential: retry in {retry}s",
                headers={"Retry-After": str(retry)},
            )
