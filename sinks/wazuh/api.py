"""Wazuh manager API route: ``POST /events`` with a JWT, ≤100 events a request, 30 requests a minute.

* Auth: ``POST /security/user/authenticate`` with basic auth returns ``data.token``; a 401
  on ``/events`` (token expired) re-authenticates once and sends again.
* Rate: a token bucket (capacity and refill from ``requests_per_minute``) spaces requests;
  a 429 anyway (another client shares the limit) backs off, honouring ``Retry-After``.
* Per-event failures come back in ``data.failed_items`` (``{"error": {...}, "id": [event]}``,
  the id being the event string sent): they are sent again up to ``max_retries`` times,
  then dead-lettered with the manager's error message.
* Timeouts, refused connections and 5xx back off; when retries are used up the batch is
  handed back to the loop as backpressure (paused, never dropped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from sinks.base import Incoming, Rejected, SinkBackpressure
from sinks.metrics import FAILURES, RETRIES
from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.payload import event_json

log = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, at most ``capacity`` saved up."""

    def __init__(self, rate: float, per: float = 60.0, capacity: float | None = None) -> None:
        self.capacity = capacity if capacity is not None else rate
        self.fill_rate = rate / per
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.fill_rate)
        self.stamp = now

    def delay(self) -> float:
        """Seconds until one token is available (0 when there is one now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.fill_rate

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.tokens -= 1

    def drain(self) -> None:
        """The server said 429: assume the minute's budget is spent."""
        self._refill()
        self.tokens = min(self.tokens, 0.0)


class WazuhApiSink:
    name = "wazuh-api"

    def __init__(self, cfg: WazuhSettings, client: httpx.AsyncClient | None = None) -> None:
        if cfg.password is None or not cfg.password.get_secret_value():
            raise ValueError("the Wazuh API needs a password (MEMTRAIL_WAZUH_PASSWORD or --password)")
        self.cfg = cfg
        self._client = client
        self._token: str | None = None
        self.bucket = TokenBucket(cfg.requests_per_minute)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: bool | str = str(self.cfg.ca_certs) if self.cfg.ca_certs else self.cfg.verify_certs
            self._client = httpx.AsyncClient(
                base_url=self.cfg.url.rstrip("/"), timeout=self.cfg.request_timeout, verify=verify
            )
        return self._client

    async def start(self) -> None:
        try:
            await self._authenticate()
        except httpx.TransportError as exc:
            raise SinkBackpressure(f"wazuh API unreachable: {exc}", 2.0) from exc

    async def _authenticate(self) -> str:
        assert self.cfg.password is not None
        await self.bucket.acquire()
        resp = await self.client.post(
            "/security/user/authenticate", auth=(self.cfg.user, self.cfg.password.get_secret_value())
        )
        if resp.status_code != 200:
            raise SinkBackpressure(
                f"wazuh authentication failed: HTTP {resp.status_code}", self.cfg.backoff_max
            )
        self._token = str(resp.json()["data"]["token"])
        return self._token

    async def _post_events(self, events: list[str]) -> httpx.Response:
        """One request (rate-limited); re-authenticates once on 401."""
        for attempt in (1, 2):
            token = self._token or await self._authenticate()
            await self.bucket.acquire()
            resp = await self.client.post(
                "/events", json={"events": events}, headers={"Authorization": f"Bearer {token}"}
            )
            if resp.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return resp
        return resp

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        rejected: list[Rejected] = []
        size = self.cfg.max_events_per_request
        for start in range(0, len(batch), size):
            rejected += await self._deliver_chunk(batch[start : start + size])
        return rejected

    async def _deliver_chunk(self, chunk: Sequence[Incoming]) -> list[Rejected]:
        pending = {event_json(it.alert).decode(): it for it in chunk}
        tries: dict[str, int] = dict.fromkeys(pending, 0)
        errors: dict[str, str] = {}
        rejected: list[Rejected] = []
        delay = self.cfg.backoff_initial
        failures = 0
        while pending:
            try:
                resp = await self._post_events(list(pending))
            except httpx.TransportError as exc:
                reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
                failures = await self._backoff(failures, reason, delay, f"wazuh API {reason}: {exc!r}")
                delay = min(delay * 2, self.cfg.backoff_max)
                continue
            if resp.status_code == 429:
                self.bucket.drain()
                retry_after = _retry_after(resp) or delay
                failures = await self._backoff(failures, "http_429", retry_after, "wazuh API rate limit")
                delay = min(delay * 2, self.cfg.backoff_max)
                continue
            if resp.status_code >= 500 or resp.status_code in (401, 403):
                failures = await self._backoff(
                    failures, f"http_{resp.status_code}", delay, f"wazuh API HTTP {resp.status_code}"
                )
                delay = min(delay * 2, self.cfg.backoff_max)
                continue
            if resp.status_code >= 400:  # the request itself is refused: keep the alerts in dead letters
                reason = f"wazuh API HTTP {resp.status_code}: {resp.text[:300]}"
                return rejected + [Rejected(it, reason) for it in pending.values()]
            failed = _failed_items(resp.json())
            still: dict[str, Incoming] = {}
            for ev, message in failed.items():
                if ev not in pending:
                    continue
                tries[ev] += 1
                errors[ev] = message
                if tries[ev] > self.cfg.max_retries:
                    rejected.append(Rejected(pending[ev], f"wazuh failed item: {message}"))
                else:
                    still[ev] = pending[ev]
            if still:
                FAILURES.labels(self.name, "item_retry").inc(len(still))
                RETRIES.labels(self.name).inc()
                await asyncio.sleep(delay)
            pending = still
        return rejected

    async def _backoff(self, failures: int, reason: str, wait: float, message: str) -> int:
        FAILURES.labels(self.name, reason).inc()
        if failures >= self.cfg.max_retries:
            raise SinkBackpressure(message, wait)
        RETRIES.labels(self.name).inc()
        log.warning("%s; retry in %.1fs", message, wait)
        await asyncio.sleep(wait)
        return failures + 1

    async def flush(self) -> None:
        """The manager answered after handing the events to analysisd: nothing buffered here."""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _failed_items(body: dict[str, Any]) -> dict[str, str]:
    """Event string → error message for each failed item of a ``POST /events`` answer."""
    out: dict[str, str] = {}
    for item in (body.get("data") or {}).get("failed_items") or []:
        err = item.get("error") or {}
        message = err.get("message") if isinstance(err, dict) else str(err)
        ids = item.get("id") or []
        for ev in ids if isinstance(ids, list) else [ids]:
            out[ev if isinstance(ev, str) else str(ev)] = str(message or "failed")
    return out
