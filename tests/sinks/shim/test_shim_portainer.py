"""Portainer client contract, against a local stand-in HTTP server.

A stand-in because no Portainer server can run here (no Docker engine, no image registry);
it answers the two Portainer API calls the shim makes, with Portainer's field names
(``Id``/``Name`` for endpoints; Docker's ``Id``/``Names``/``Image``/``State`` for containers)
and checks the ``X-API-Key`` header and the ``all=1`` query like Portainer would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from sinks.shim.portainer import PortainerClient
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import CID_DB, CID_WEB, TOKEN, JsonHandler, make_alert, make_client, serve

API_KEY = "ptr_portainer-access-token"
ENDPOINTS = [{"Id": 1, "Name": "local", "Type": 1}, {"Id": 3, "Name": "edge-prod", "Type": 4}]
CONTAINERS: dict[int, list[dict[str, Any]]] = {
    1: [{"Id": CID_WEB, "Names": ["/web-frontend"], "Image": "nginx:1.27", "State": "running"}],
    3: [{"Id": CID_DB, "Names": ["/postgres-main"], "Image": "postgres:16", "State": "exited"}],
}


class StandIn:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False
        stand_in = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                stand_in.calls.append(url.path)
                if self.headers.get("X-API-Key") != API_KEY:
                    return self._send(401, {"message": "Unauthorized"})
                if stand_in.fail:
                    return self._send(500, {"message": "boom"})
                if url.path == "/api/endpoints":
                    return self._send(200, ENDPOINTS)
                parts = url.path.split("/")
                if url.path.endswith("/docker/containers/json") and parts[2] == "endpoints":
                    if parse_qs(url.query).get("all") != ["1"]:
                        return self._send(400, {"message": "expected all=1"})
                    ep = int(parts[3])
                    return self._send(200, CONTAINERS[ep]) if ep in CONTAINERS else self._send(404, {})
                self._send(404, {"message": "not found"})

        self.server, self.url = serve(Handler)


@pytest.fixture
def portainer() -> Iterator[StandIn]:
    s = StandIn()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def test_resolves_names_environments_and_links(portainer: StandIn) -> None:
    client = PortainerClient(portainer.url + "/", API_KEY, cache_s=60)
    web = client.resolve(CID_WEB)
    assert web is not None
    assert (web.name, web.endpoint_id, web.endpoint_name, web.image) == (
        "web-frontend",
        1,
        "local",
        "nginx:1.27",
    )
    assert web.url == f"{portainer.url}/#!/1/docker/containers/{CID_WEB}"
    db = client.resolve(CID_DB[:12])  # short ids resolve too
    assert db is not None and db.endpoint_name == "edge-prod" and db.state == "exited"
    assert client.resolve("c" * 64) is None and client.resolve(None) is None
    # one listing per environment, then served from the cache
    assert portainer.calls == [
        "/api/endpoints",
        "/api/endpoints/1/docker/containers/json",
        "/api/endpoints/3/docker/containers/json",
    ]
    client.close()


def test_cache_expiry_and_failures_keep_last_index(portainer: StandIn) -> None:
    client = PortainerClient(portainer.url, API_KEY, cache_s=0)
    assert client.resolve(CID_WEB) is not None
    portainer.fail = True
    assert client.resolve(CID_WEB) is not None  # stale but useful
    assert client.last_error and "500" in client.last_error
    portainer.fail = False
    client.resolve(CID_WEB)
    assert client.last_error is None
    bad = PortainerClient(portainer.url, "wrong", cache_s=60)
    assert bad.resolve(CID_WEB) is None and "401" in (bad.last_error or "")


def test_api_items_and_detail_link_to_portainer(portainer: StandIn, tmp_path: Any) -> None:
    store = Store(str(tmp_path / "p.sqlite3"))
    store.upsert_alerts(
        [make_alert("p1", container_id=CID_WEB, container_name=None), make_alert("p2", container_id=None)]
    )
    client = PortainerClient(portainer.url, API_KEY)
    with make_client(store, portainer=client) as c:
        items = c.get("/api/v1/security-events", params={"container_mode": "all", "sort": "rule"}).json()[
            "items"
        ]
        by_id = {i["id"]: i for i in items}
        assert by_id["p1"]["portainer"]["url"] == f"{portainer.url}/#!/1/docker/containers/{CID_WEB}"
        assert by_id["p1"]["container"]["name"] == "web-frontend"  # name filled from Portainer
        assert by_id["p2"]["portainer"] is None
        detail = c.get("/api/v1/security-events/p1").json()
        assert detail["portainer"]["endpoint_name"] == "local"
        status = c.get("/api/v1/collector/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert status["shim"]["portainer"] == {"url": portainer.url, "last_error": None}
    store.close()
