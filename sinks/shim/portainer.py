"""Container ids → names, environments and links, through Portainer's own API (cached).

``GET /api/endpoints`` lists environments; ``GET /api/endpoints/{id}/docker/containers/json?all=1``
lists each one's containers (Docker Engine API proxied by Portainer). Auth: an access
token in ``X-API-Key``. A failing Portainer never breaks the API: the last good index is
kept and the error is reported in the collector status.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortainerContainer:
    container_id: str
    name: str | None
    image: str | None
    state: str | None
    endpoint_id: int
    endpoint_name: str
    url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "name": self.name,
            "image": self.image,
            "state": self.state,
            "endpoint_id": self.endpoint_id,
            "endpoint_name": self.endpoint_name,
            "url": self.url,
        }


class PortainerClient:
    def __init__(
        self,
        url: str,
        token: str,
        cache_s: float = 60.0,
        verify_tls: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.cache_s = cache_s
        self._http = httpx.Client(
            base_url=self.url, headers={"X-API-Key": token}, timeout=timeout, verify=verify_tls
        )
        self._index: dict[str, PortainerContainer] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.requests = 0

    def link(self, endpoint_id: int, container_id: str) -> str:
        return f"{self.url}/#!/{endpoint_id}/docker/containers/{container_id}"

    def _load(self) -> dict[str, PortainerContainer]:
        index: dict[str, PortainerContainer] = {}
        self.requests += 1
        r = self._http.get("/api/endpoints")
        r.raise_for_status()
        for ep in r.json():
            ep_id, ep_name = int(ep["Id"]), str(ep.get("Name", ep["Id"]))
            self.requests += 1
            cr = self._http.get(f"/api/endpoints/{ep_id}/docker/containers/json", params={"all": 1})
            if cr.status_code != 200:  # an environment that is down or not Docker: skip it
                log.info("portainer endpoint %s: containers HTTP %s", ep_id, cr.status_code)
                continue
            for c in cr.json():
                cid = str(c["Id"])
                names = c.get("Names") or []
                index[cid] = PortainerContainer(
                    container_id=cid,
                    name=names[0].lstrip("/") if names else None,
                    image=c.get("Image"),
                    state=c.get("State"),
                    endpoint_id=ep_id,
                    endpoint_name=ep_name,
                    url=self.link(ep_id, cid),
                )
        return index

    def index(self) -> dict[str, PortainerContainer]:
        with self._lock:
            if time.monotonic() - self._loaded_at >= self.cache_s or not self._loaded_at:
                try:
                    self._index = self._load()
                    self.last_error = None
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    self.last_error = f"portainer {self.url}: {exc}"
                    log.warning("%s (keeping %d cached containers)", self.last_error, len(self._index))
                self._loaded_at = time.monotonic()
            return self._index

    def resolve(self, container_id: str | None) -> PortainerContainer | None:
        if not container_id:
            return None
        index = self.index()
        hit = index.get(container_id)
        if hit is None and len(container_id) >= 12:  # short ids
            hit = next((c for cid, c in index.items() if cid.startswith(container_id)), None)
        return hit

    def close(self) -> None:
        self._http.close()
