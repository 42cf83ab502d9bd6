"""Kubernetes pod metadata. No API server can run here, so the watcher test serves a
recorded pod list from a local HTTP server (a mock, on purpose); Kafka is the real local broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memtrail.settings import Settings
from sensors.k8s import PodWatcher, metas_from_pod, split_container_id

from .test_pipeline import consume_all

CID = "e" * 64
POD: dict[str, Any] = {
    "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {
        "nodeName": "node-a",
        "containers": [{"name": "nginx", "securityContext": {"privileged": True}}, {"name": "sidecar"}],
    },
    "status": {
        "containerStatuses": [
            {
                "name": "nginx",
                "image": "nginx:1.25",
                "imageID": "sha256:1",
                "containerID": f"containerd://{CID}",
                "state": {"running": {}},
            },
            {"name": "sidecar", "image": "envoy", "state": {"waiting": {}}},  # not started: no id yet
        ]
    },
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"containerd://{CID}", (CID, "containerd")),
        (f"docker://{CID}", (CID, "docker")),
        (f"cri-o://{CID}", (CID, "cri-o")),
        (CID, (CID, None)),
    ],
)
def test_split_container_id(raw: str, expected: tuple[str, str | None]) -> None:
    assert split_container_id(raw) == expected


def test_metas_from_pod() -> None:
    [m] = metas_from_pod(POD)
    assert (m.id, m.name, m.image, m.runtime, m.state) == (
        CID,
        "nginx",
        "nginx:1.25",
        "containerd",
        "running",
    )
    assert (m.pod_name, m.pod_namespace, m.pod_uid, m.labels) == ("web-0", "prod", "u-1", {"app": "web"})
    assert m.privileged is True and m.host == "node-a"


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    """Serves GET /api/v1/pods like an API server would (recorded shape): a mock."""
    queries: list[str] = []
    state: dict[str, Any] = {"items": [POD]}

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            queries.append(self.path)
            body = json.dumps(state).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", queries, state
    srv.shutdown()


@pytest.mark.broker
def test_pod_watcher_publishes_changes(
    settings: Settings, fake_api: tuple[str, list[str], dict[str, Any]]
) -> None:
    url, queries, state = fake_api
    w = PodWatcher(settings, url, "tok", "node-a", interval_s=3600)
    try:
        assert w.sync() == 1
        assert "fieldSelector=spec.nodeName%3Dnode-a" in queries[0]
        assert w.sync() == 0  # unchanged: nothing re-published
        state["items"] = []
        assert w.sync() == 1  # the pod is gone: a "removed" record
    finally:
        w.stop()
    msgs = consume_all(
        settings.kafka.bootstrap or "", settings.topics.containers, until=lambda out: len(out) >= 2
    )
    assert [m["key"] for m in msgs] == [CID.encode(), CID.encode()]
    assert msgs[0]["value"]["pod_name"] == "web-0" and msgs[1]["value"]["state"] == "removed"
