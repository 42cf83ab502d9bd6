"""OpenSearch read adapter contract, against a local stand-in ``_search`` endpoint.

A stand-in because no OpenSearch server can run here (no image registry, no package).
It holds documents as the OpenSearch sink writes them (the ECS document of
``sinks.opensearch.documents.to_document``, ``_id`` = alert id) and implements the subset of
``_search`` the adapter uses: ``range`` on ``memtrail.last_seen`` (epoch_millis), sort by
``memtrail.last_seen`` then ``event.id``, ``search_after``, ``size`` — rejecting any other body, so
the adapter cannot drift silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sinks.opensearch.documents import to_document
from sinks.shim.opensearch import OpenSearchReader
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import NOW, JsonHandler, make_alert, serve

ALLOWED_KEYS = {"size", "query", "sort", "search_after"}


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class StandIn:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        stand_in = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path.split("?", 1)[0]
                stand_in.requests.append((path, body))
                if not path.endswith("/_search") or set(body) - ALLOWED_KEYS:
                    return self._send(400, {"error": f"unsupported request {path} {sorted(body)}"})
                if body["sort"] != [{"memtrail.last_seen": "asc"}, {"event.id": "asc"}]:
                    return self._send(400, {"error": "unsupported sort"})

                def key(d: dict[str, Any]) -> tuple[int, str]:
                    return _ms(d["memtrail"]["last_seen"]), d["event"]["id"]

                docs = sorted(stand_in.docs.values(), key=key)
                rng = body["query"].get("range")
                if rng:
                    assert rng["memtrail.last_seen"]["format"] == "epoch_millis"
                    docs = [d for d in docs if key(d)[0] >= int(rng["memtrail.last_seen"]["gte"])]
                if "search_after" in body:
                    after = tuple(body["search_after"])
                    docs = [d for d in docs if key(d) > after]
                hits = [
                    {
                        "_index": "memtrail-alerts-2026.01.01",
                        "_id": d["event"]["id"],
                        "_source": d,
                        "sort": list(key(d)),
                    }
                    for d in docs[: body["size"]]
                ]
                self._send(200, {"hits": {"total": {"value": len(docs)}, "hits": hits}})

        self.server, self.url = serve(Handler)

    def index(self, alert: dict[str, Any]) -> None:
        self.docs[alert["id"]] = to_document(alert)


@pytest.fixture
def opensearch() -> Iterator[StandIn]:
    s = StandIn()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def test_pulls_new_and_updated_alerts_in_pages(opensearch: StandIn, tmp_path: Path) -> None:
    for i in range(7):
        opensearch.index(make_alert(f"o{i}", minutes_ago=30 - i).to_json_dict())
    # not an alert: skipped, counted
    opensearch.docs["junk"] = {"event": {"id": "junk"}, "memtrail": {"last_seen": "2026-01-01T00:00:00Z"}}
    store = Store(str(tmp_path / "o.sqlite3"))
    reader = OpenSearchReader(opensearch.url, page_size=3)
    assert reader.pull(store) == 7
    assert reader.invalid == 1
    assert store.stats_count() == 7
    paths = {p for p, _ in opensearch.requests}
    assert paths == {"/memtrail-alerts*/_search"}
    assert "search_after" in opensearch.requests[1][1]  # paged, not one huge response

    # the sink re-indexes a grouped alert with a higher count (and a later last_seen)
    updated = make_alert("o2", minutes_ago=28, count=5).to_json_dict()
    updated["last_seen"] = NOW.isoformat()
    opensearch.index(updated)
    opensearch.requests.clear()
    reader.pull(store)
    assert "range" in opensearch.requests[0][1]["query"]  # incremental from the cursor
    assert (store.get_alert("o2") or {})["count"] == 5
    assert "event" not in (store.get_alert("o2") or {})  # the sink's extra ECS fields are not needed
    store.close()


def test_missing_index_is_empty(tmp_path: Path) -> None:
    class NotFound(JsonHandler):
        def do_POST(self) -> None:
            self._send(404, {})

    server, url = serve(NotFound)
    try:
        store = Store(str(tmp_path / "o.sqlite3"))
        assert OpenSearchReader(url).pull(store) == 0
    finally:
        server.shutdown()
        server.server_close()
