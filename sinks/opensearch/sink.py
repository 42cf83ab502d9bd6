"""The OpenSearch sink: async bulk with ``_id`` = alert id, retries with backoff, dead letters.

Retries: a whole request failing with 429/5xx, a timeout or a refused connection is sent
again with exponential backoff; inside a successful bulk response only the items that
got 429/5xx are sent again. After ``max_retries`` the batch is handed back to the loop as
backpressure (paused, not dropped). Items rejected with any other 4xx (mapping errors)
are returned as rejections, which the loop writes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import orjson
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from sinks.base import Incoming, Rejected, SinkBackpressure
from sinks.metrics import FAILURES, RETRIES
from sinks.opensearch.config import OpenSearchSettings
from sinks.opensearch.documents import bulk_body, classify

log = logging.getLogger(__name__)
#: index template and ISM policy, shipped as package data
DATA = files("sinks.opensearch") / "data"
TEMPLATE_NAME = "memtrail-alerts"
ISM_POLICY_ID = "memtrail-alerts-retention"


class SetupRefused(RuntimeError):
    """The cluster refused the template or ISM policy for a reason retrying will not fix."""


def index_template(prefix: str = "memtrail-alerts") -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((DATA / "index-template.json").read_bytes())
    body["index_patterns"] = [f"{prefix}-*"]
    return body


def ism_policy(retention_days: int, prefix: str = "memtrail-alerts") -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((DATA / "ism-policy.json").read_bytes())
    policy = body["policy"]
    policy["states"][0]["transitions"][0]["conditions"]["min_index_age"] = f"{retention_days}d"
    policy["ism_template"][0]["index_patterns"] = [f"{prefix}-*"]
    return body


def make_client(cfg: OpenSearchSettings) -> AsyncOpenSearch:
    kwargs: dict[str, Any] = {
        "hosts": [cfg.url],
        "timeout": cfg.request_timeout,
        "max_retries": 0,  # retries are ours: per item, with backoff and metrics
        "retry_on_timeout": False,
        "verify_certs": cfg.verify_certs,
        "http_compress": False,
    }
    if cfg.user and cfg.password:
        kwargs["http_auth"] = (cfg.user, cfg.password.get_secret_value())
    if cfg.api_key:
        kwargs["headers"] = {"Authorization": f"ApiKey {cfg.api_key.get_secret_value()}"}
    if cfg.ca_certs:
        kwargs["ca_certs"] = str(cfg.ca_certs)
    if not cfg.verify_certs:
        kwargs["ssl_show_warn"] = False
    return AsyncOpenSearch(**kwargs)


def _retryable(exc: TransportError) -> bool:
    if isinstance(exc, OSConnectionError):  # refused, reset, timeout (ConnectionTimeout)
        return True
    status = exc.status_code
    return isinstance(status, int) and (status == 429 or status >= 500)


def _reason(exc: TransportError) -> str:
    if isinstance(exc, OSConnectionError):
        return "timeout" if "Timeout" in type(exc).__name__ else "connection"
    return f"http_{exc.status_code}"


class OpenSearchSink:
    name = "opensearch"

    def __init__(self, cfg: OpenSearchSettings, client: AsyncOpenSearch | None = None) -> None:
        self.cfg = cfg
        self._client = client

    @property
    def client(self) -> AsyncOpenSearch:
        if self._client is None:
            self._client = make_client(self.cfg)
        return self._client

    async def start(self) -> None:
        if not self.cfg.setup:
            return
        try:
            await self.install_template()
            await self.install_ism_policy()
        except TransportError as exc:
            if _retryable(exc):
                raise SinkBackpressure(f"opensearch setup: {exc}", 2.0) from exc
            raise SetupRefused(
                f"OpenSearch refused the index template / ISM policy (HTTP {exc.status_code}: {exc.error}); "
                "give the sink's user the cluster privileges, or install them once as an admin and run "
                "with --no-setup"
            ) from exc

    async def install_template(self) -> None:
        body = index_template(self.cfg.index_prefix)
        await self.client.transport.perform_request("PUT", f"/_index_template/{TEMPLATE_NAME}", body=body)

    async def install_ism_policy(self) -> None:
        """Create the retention policy, or update it when the retention changed."""
        body = ism_policy(self.cfg.retention_days, self.cfg.index_prefix)
        path = f"/_plugins/_ism/policies/{ISM_POLICY_ID}"
        try:
            current = await self.client.transport.perform_request("GET", path)
        except NotFoundError:
            await self.client.transport.perform_request("PUT", path, body=body)
            return
        old = copy.deepcopy(current.get("policy", {}))
        wanted = body["policy"]
        if (
            all(old.get(k) == v for k, v in wanted.items() if k != "ism_template")
            and [
                {"index_patterns": t.get("index_patterns"), "priority": t.get("priority")}
                for t in old.get("ism_template") or []
            ]
            == wanted["ism_template"]
        ):
            return
        params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
        await self.client.transport.perform_request("PUT", path, params=params, body=body)

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        pending = list(range(len(batch)))
        rejected: list[Rejected] = []
        delay = self.cfg.backoff_initial
        attempt = 0
        last = ""
        while pending:
            if attempt > self.cfg.max_retries:
                raise SinkBackpressure(f"opensearch: {len(pending)} alert(s) not accepted: {last}", delay)
            if attempt:
                RETRIES.labels(self.name).inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.cfg.backoff_max)
            attempt += 1
            body = bulk_body([batch[i].alert for i in pending], self.cfg.index_prefix)
            try:
                resp = await self.client.bulk(body=body)
            except TransportError as exc:
                if not _retryable(exc):
                    raise SinkBackpressure(f"opensearch bulk refused: {exc}", self.cfg.backoff_max) from exc
                last = _reason(exc)
                FAILURES.labels(self.name, last).inc()
                log.warning("opensearch bulk failed (%s), attempt %d", exc, attempt)
                continue
            outcome = classify(resp, len(pending))
            for pos, reason in outcome.rejected.items():
                rejected.append(Rejected(batch[pending[pos]], reason))
            if outcome.retry:
                last = "item_retry"
                FAILURES.labels(self.name, last).inc(len(outcome.retry))
            pending = [pending[pos] for pos in outcome.retry]
        return rejected

    async def flush(self) -> None:
        """Bulk responses come after the write is durable in the translog: nothing to do."""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
