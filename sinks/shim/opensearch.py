"""A thin read adapter: alerts indexed by the OpenSearch sink, pulled into the shim's store.

The sink writes each alert as a document with ``_id`` = alert id into daily
``memtrail-alerts-*`` indices (ECS documents, ``sinks.opensearch.documents``) and re-indexes it
when its ``count`` grows, so ``memtrail.last_seen`` moves forward on every update. Polling
``memtrail.last_seen >= cursor`` (sorted by it, then
``event.id``, paged with ``search_after``) therefore sees new and updated alerts; the store's
upsert-by-count makes re-reads harmless. This fills the shim with history it never
consumed from Kafka (a new shim, or alerts older than the topic's retention).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
from pydantic import ValidationError

from schemas.alerts import Alert
from sinks.opensearch.documents import from_document
from sinks.shim.store import Store

log = logging.getLogger(__name__)


class OpenSearchReader:
    def __init__(
        self,
        url: str,
        index: str = "memtrail-alerts*",
        verify_tls: bool = True,
        page_size: int = 500,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.index = index
        self.page_size = page_size
        self._http = httpx.Client(timeout=timeout, verify=verify_tls)  # basic auth from user:pw@ in the URL
        self.cursor: Any = None  # last_seen sort value (epoch ms) of the newest alert read
        self.invalid = 0
        self.last_error: str | None = None

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self._http.post(
            f"{self.url}/{self.index}/_search", json=body, params={"ignore_unavailable": "true"}
        )
        if r.status_code == 404:  # no index yet: nothing indexed so far
            return {"hits": {"hits": []}}
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def pull(self, store: Store, max_pages: int = 100) -> int:
        """Read alerts newer than the cursor into ``store``; returns how many were upserted."""
        query: dict[str, Any] = {"match_all": {}}
        if self.cursor is not None:
            query = {"range": {"memtrail.last_seen": {"gte": self.cursor, "format": "epoch_millis"}}}
        body: dict[str, Any] = {
            "size": self.page_size,
            "query": query,
            "sort": [{"memtrail.last_seen": "asc"}, {"event.id": "asc"}],
        }
        total = 0
        for _ in range(max_pages):
            hits = self._search(body)["hits"]["hits"]
            if not hits:
                break
            alerts = []
            for h in hits:
                try:
                    alerts.append(Alert.model_validate(from_document(h["_source"])))
                except ValidationError as exc:
                    self.invalid += 1
                    log.warning("OpenSearch document %s is not an alert: %s", h.get("_id"), exc)
            total += store.upsert_alerts(alerts)
            self.cursor = hits[-1]["sort"][0]
            if len(hits) < self.page_size:
                break
            body["search_after"] = hits[-1]["sort"]
        return total

    def close(self) -> None:
        self._http.close()


class OpenSearchPoller:
    """Pull every ``interval_s`` in a daemon thread; errors are reported, never fatal."""

    def __init__(self, reader: OpenSearchReader, store: Store, interval_s: float = 5.0) -> None:
        self.reader = reader
        self.store = store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OpenSearchPoller:
        self._thread = threading.Thread(target=self._run, name="shim-opensearch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reader.pull(self.store)
                self.reader.last_error = None
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.reader.last_error = f"opensearch {self.reader.url}: {exc}"
                log.warning("%s", self.reader.last_error)
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.reader.close()
