"""Kubernetes pod metadata. No API server can run here, so the watcher test talks to a stand-in
that speaks the API server's list and watch protocol (resourceVersion, watch event lines, 410
Gone, 401 on a stale token) from a local HTTP server, on purpose; the client is the real
lightkube and Kafka the real local broker."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User

from memtrail.core.settings import Settings
from sensors.k8s import PodWatcher, metas_from_pod, split_container_id
from tests.sensors.test_pipeline import consume_all

CID = "e" * 64
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-0",
        "namespace": "prod",
        "uid": "u-1",
        "labels": {"app": "web"},
        "resourceVersion": "100",
    },
    "spec": {
        "nodeName": "node-a",
        "containers": [
            {"name": "nginx", "image": "nginx:1.25", "securityContext": {"privileged": True}},
            {"name": "sidecar", "image": "envoy"},
        ],
    },
    "status": {
        "containerStatuses": [
            {
                "name": "nginx",
                "image": "nginx:1.25",
                "imageID": "sha256:1",
                "containerID": f"containerd://{CID}",
                "state": {"running": {}},
                "ready": True,
                "restartCount": 0,
            },
            # not started: no id yet
            {
                "name": "sidecar",
                "image": "envoy",
                "imageID": "",
                "state": {"waiting": {}},
                "ready": False,
                "restartCount": 0,
            },
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


@dataclass
class ApiStandIn:
    """The API server's pod list/watch for one test: what the client asked, what it is sent."""

    url: str = ""
    token: str = "tok-1"
    pods: list[dict[str, Any]] = field(default_factory=lambda: [POD])
    version: int = 100
    events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    requests: list[str] = field(default_factory=list)
    unauthorized: int = 0

    def send(self, op: str, pod: dict[str, Any]) -> None:
        self.version += 1
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["resourceVersion"] = str(self.version)
        self.events.put({"type": op, "object": pod})

    def expire(self) -> None:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
                  "message": "too old resource version", "code": 410}  # fmt: skip
        self.events.put({"type": "ERROR", "object": status})

    def close_watch(self) -> None:
        self.events.put(None)


@pytest.fixture
def api() -> Iterator[ApiStandIn]:
    state = ApiStandIn()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                state.unauthorized += 1
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401,
                                   "reason": "Unauthorized", "message": "Unauthorized"}).encode()  # fmt: skip
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if q.get("watch") != ["true"]:
                lst = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(state.version)},
                       "items": state.pods}  # fmt: skip
                self.wfile.write(json.dumps(lst).encode())
                return
            deadline = time.monotonic() + float(q.get("timeoutSeconds", ["30"])[0])
            while time.monotonic() < deadline:
                try:
                    ev = state.events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if ev is None:
                    return  # the server ends the watch: the client reconnects
                self.wfile.write(json.dumps(ev).encode() + b"\n")
                self.wfile.flush()
                if ev["type"] == "ERROR":
                    return

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    state.close_watch()
    srv.shutdown()


def _wait(cond: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.broker
def test_pod_watcher_lists_once_then_watches(settings: Settings, api: ApiStandIn, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    config = KubeConfig.from_one(cluster=Cluster(server=api.url), user=User(token_file=str(token)))
    w = PodWatcher(settings, Client(config=config), "node-a", watch_timeout_s=30)
    w.start()
    try:
        assert _wait(lambda: any("watch=true" in r for r in api.requests)), api.requests
        lists = [r for r in api.requests if "watch=true" not in r]
        assert len(lists) == 1 and "fieldSelector=spec.nodeName%3Dnode-a" in lists[0]
        watch = next(r for r in api.requests if "watch=true" in r)
        assert "resourceVersion=100" in watch and "fieldSelector=spec.nodeName%3Dnode-a" in watch

        relabelled = json.loads(json.dumps(POD))
        relabelled["metadata"]["labels"] = {"app": "web", "tier": "front"}
        api.send("MODIFIED", relabelled)
        api.send("MODIFIED", relabelled)  # nothing changed: nothing published

        api.token = "tok-2"  # the kubelet rotates the projected token ...
        token.write_text("tok-2\n")
        api.close_watch()  # ... and the next request (the watch's reconnect) is refused once
        assert _wait(lambda: api.unauthorized >= 1 and sum("watch=true" in r for r in api.requests) >= 3)
        api.send("DELETED", relabelled)

        api.expire()  # 410 Gone: list again, then watch from the new version
        assert _wait(lambda: w.relists == 2), api.requests
    finally:
        w.stop()
    msgs = consume_all(
        settings.kafka.bootstrap or "", settings.topics.containers, until=lambda out: len(out) >= 4
    )
    values = [m["value"] for m in msgs]
    assert [v["state"] for v in values][:3] == ["running", "running", "removed"], values
    assert values[0]["pod_name"] == "web-0" and values[1]["labels"] == {"app": "web", "tier": "front"}
    assert values[3]["state"] == "running"  # the relist finds the pod again (the stand-in still lists it)
    lists = [r for r in api.requests if "watch=true" not in r]
    assert len(lists) == 2, "a list per start and per expiry, not per interval"
