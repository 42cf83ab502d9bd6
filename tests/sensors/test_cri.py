"""CRI container-metadata source: pure mapping, generated bindings, and a real containerd end to end."""

from __future__ import annotations

import queue
import re
import subprocess
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from memtrail.core.settings import Settings
from sensors.config import SensorSettings
from sensors.cri import CriError, CriWatcher, connect, image_name, meta_from_cri, runtime_name
from sensors.cri_api import api_pb2 as pb
from sensors.cri_api import api_pb2_grpc as pb_grpc
from tests.sensors.conftest import Collector
from tests.sensors.cri_containerd import IMAGE, Containerd, require
from tests.sensors.test_cli import _run
from tests.sensors.test_pipeline import consume_all

CID = "a" * 64
IMAGE_ID = "sha256:" + "b" * 64


# -- pure mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("containerd", "containerd"), ("cri-o", "cri-o"), ("CRI-O", "cri-o"), ("docker", "docker"), ("", "cri")],
)
def test_runtime_name(name: str, expected: str) -> None:
    assert runtime_name(pb.VersionResponse(runtime_name=name)) == expected


def test_image_name_prefers_what_the_user_wrote() -> None:
    c = pb.Container(id=CID, image=pb.ImageSpec(image=IMAGE_ID))
    assert image_name(c) == IMAGE_ID  # nothing better known: the id
    st = pb.ContainerStatus(id=CID, image=pb.ImageSpec(image="docker.io/library/nginx:1.25"))
    assert image_name(c, st) == "docker.io/library/nginx:1.25"  # containerd: first repo tag
    c.annotations["io.kubernetes.cri.image-name"] = "nginx:1.25"
    assert image_name(c, st) == "nginx:1.25"
    st.image.user_specified_image = "nginx:1.25-alpine"
    assert image_name(c, st) == "nginx:1.25-alpine"
    assert image_name(pb.Container(id=CID, image=pb.ImageSpec(image="b" * 64))) == "b" * 64


def test_meta_from_cri_sandbox_metadata() -> None:
    c = pb.Container(
        id=CID,
        pod_sandbox_id="s1",
        metadata=pb.ContainerMetadata(name="web"),
        image=pb.ImageSpec(image=IMAGE_ID),
        image_ref=IMAGE_ID,
        state=pb.CONTAINER_RUNNING,
        labels={"app": "shop"},
    )
    sandbox = pb.PodSandbox(
        id="s1",
        metadata=pb.PodSandboxMetadata(name="web-0", namespace="prod", uid="u-1"),
        labels={"app": "pod-level", "team": "payments"},
    )
    status = pb.ContainerStatus(
        id=CID,
        image=pb.ImageSpec(image="nginx:1.25"),
        image_ref=IMAGE_ID,
        mounts=[pb.Mount(container_path="/data", host_path="/srv/data", readonly=True)],
    )
    m = meta_from_cri(c, sandbox, status, runtime="containerd", host="node1")
    assert (m.id, m.name, m.image, m.image_id, m.runtime, m.host, m.state) == (
        CID,
        "web",
        "nginx:1.25",
        IMAGE_ID,
        "containerd",
        "node1",
        "running",
    )
    assert (m.pod_name, m.pod_namespace, m.pod_uid) == ("web-0", "prod", "u-1")
    assert m.labels == {"app": "shop", "team": "payments"}  # pod labels, container's win
    assert m.mounts == [{"source": "/srv/data", "destination": "/data", "mode": "ro"}]


def test_meta_from_cri_kubelet_labels_without_sandbox() -> None:
    labels = {
        "io.kubernetes.container.name": "sidecar",
        "io.kubernetes.pod.name": "api-7",
        "io.kubernetes.pod.namespace": "ns1",
        "io.kubernetes.pod.uid": "u-7",
    }
    c = pb.Container(id=CID, state=pb.CONTAINER_EXITED, labels=labels)
    m = meta_from_cri(c)
    assert (m.name, m.pod_name, m.pod_namespace, m.pod_uid) == ("sidecar", "api-7", "ns1", "u-7")
    assert m.state == "exited" and m.image is None and m.image_id is None


def test_generated_bindings_match_the_proto() -> None:
    from sensors.cri_api import generate

    assert generate.stale() == [], "run: .venv/bin/python -m sensors.cri_api.generate"


# -- socket selection and errors --------------------------------------------------------------


def test_given_socket_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CriError, match=r"^CRI socket .*nope\.sock: no such file$"):
        connect(tmp_path / "nope.sock")


def test_given_socket_not_answering_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: connection refused
    try:
        with pytest.raises(CriError) as err:
            connect(path, timeout=2)
    finally:
        s.close()
    msg = str(err.value)
    assert msg.startswith(f"CRI socket {path}: unavailable") and "\n" not in msg


def test_auto_mode_skips_absent_and_dead_sockets(tmp_path: Path) -> None:
    import socket

    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    try:
        cfg = SensorSettings(cri_candidates=[tmp_path / "absent.sock", dead])
        assert CriWatcher.from_settings(Settings(), cfg) is None  # logged, not raised
    finally:
        s.close()
    assert CriWatcher.from_settings(Settings(), SensorSettings(cri=False, cri_socket=dead)) is None


def test_given_socket_is_used_even_if_dead(tmp_path: Path) -> None:
    with pytest.raises(CriError, match="no such file"):
        CriWatcher.from_settings(Settings(), SensorSettings(cri_socket=tmp_path / "gone.sock"))


@pytest.mark.ebpf
def test_sensor_refuses_an_unreachable_cri_socket(tmp_path: Path) -> None:
    p = _run(
        "--bootstrap",
        "127.0.0.1:1",
        "--spool-dir",
        str(tmp_path / "spool"),
        "--cri-socket",
        str(tmp_path / "missing.sock"),
    )
    assert p.returncode == 2, p.stderr
    assert "CRI socket" in p.stderr and "missing.sock: no such file" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


# -- a real containerd ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    require()
    c = Containerd()
    try:
        c.start()
    except Exception as exc:
        tail = c.log_tail()
        c.stop()
        pytest.fail(f"containerd with CRI could not start here: {exc}\n{tail}")
    yield c
    c.stop()


def test_connect_reports_containerd(containerd: Containerd) -> None:
    client, runtime = connect(containerd.socket)
    try:
        assert runtime == "containerd"
        assert client.version().runtime_api_version == "v1"
    finally:
        client.close()


def _by_key(msgs: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    return [m["value"] for m in msgs if m["key"] == cid.encode()]


@pytest.mark.broker
@pytest.mark.slow
def test_watcher_publishes_pod_containers_and_removal(settings: Settings, containerd: Containerd) -> None:
    client, runtime = connect(containerd.socket)
    w = CriWatcher(settings, client, runtime, poll_s=0.3, resync_s=3600)
    w.start()
    try:
        pod = containerd.run_pod("shop-0", "prod", labels={"app": "shop", "team": "payments"})
        cid = containerd.run_container(
            pod, "web", ["/bin/sleep", "300"], labels={"tier": "front", "app": "shop"}
        )
        msgs = consume_all(
            settings.kafka.bootstrap or "",
            settings.topics.containers,
            timeout=20,
            until=lambda out: any(v["state"] == "running" for v in _by_key(out, cid)),
        )
        assert w.events_supported is False  # containerd 1.6 has no GetContainerEvents: polled
        containerd.remove_container(cid)
        msgs = consume_all(
            settings.kafka.bootstrap or "",
            settings.topics.containers,
            timeout=20,
            until=lambda out: any(v["state"] == "removed" for v in _by_key(out, cid)),
        )
    finally:
        w.stop()
    metas = _by_key(msgs, cid)
    running = next(m for m in metas if m["state"] == "running")
    assert re.fullmatch(r"[0-9a-f]{64}", cid) and running["id"] == cid
    assert running["name"] == "web" and running["image"] == IMAGE
    assert running["image_id"].startswith("sha256:")
    assert (running["pod_name"], running["pod_namespace"], running["pod_uid"]) == ("shop-0", "prod", pod.uid)
    assert running["labels"] == {"tier": "front", "app": "shop", "team": "payments"}
    assert running["runtime"] == "containerd" and running["host"] == settings.host_name
    removed = metas[-1]
    assert removed["state"] == "removed" and removed["name"] == "web" and removed["pod_name"] == "shop-0"


@pytest.mark.ebpf
@pytest.mark.slow
def test_sensor_attributes_a_syscall_in_the_cri_container(containerd: Containerd) -> None:
    """An exec inside the CRI container carries its id, parsed from containerd's cgroupfs path
    (``/kubepods…/pod<uid>/<id>``); the same exec on the host carries none."""
    marker = f"mt{uuid.uuid4().hex[:8]}"
    collector = Collector()
    try:
        pod = containerd.run_pod("probe-0", "default")
        cid = containerd.run_container(pod, "probe", ["/bin/sh", "-c", f"/bin/true {marker}; sleep 30"])
        found = collector.wait_for(
            lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", marker], timeout=15
        )
        subprocess.run(["/bin/true", marker + "-host"], check=True)
        on_host = collector.wait_for(
            lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", marker + "-host"]
        )
        containerd.remove_pod(pod)
    finally:
        collector.close()
    assert found, "no exec event from inside the containerd container"
    assert found[0]["container_id"] == cid
    assert found[0]["cgroup_name"].endswith(f"pod{pod.uid}/{cid}")
    assert on_host and on_host[0]["container_id"] is None


# -- a runtime with an event stream -----------------------------------------------------------


class _EventedRuntime(pb_grpc.RuntimeServiceServicer):
    """A CRI server (real gRPC on a unix socket) that streams events, as containerd ≥ 1.7 and
    CRI-O do — containerd 1.6 here cannot show the watcher's event-driven path."""

    def __init__(self) -> None:
        self.containers: list[pb.Container] = []
        self.events: queue.Queue[pb.ContainerEventResponse] = queue.Queue()
        self.sandbox = pb.PodSandbox(
            id="s1", metadata=pb.PodSandboxMetadata(name="db-0", namespace="data", uid="u9")
        )

    def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(runtime_name="cri-o", runtime_version="1.30.0", runtime_api_version="v1")

    def ListContainers(self, request: Any, context: Any) -> pb.ListContainersResponse:
        return pb.ListContainersResponse(containers=self.containers)

    def ListPodSandbox(self, request: Any, context: Any) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=[self.sandbox])

    def ContainerStatus(self, request: Any, context: Any) -> pb.ContainerStatusResponse:
        for c in self.containers:
            if c.id == request.container_id:
                return pb.ContainerStatusResponse(
                    status=pb.ContainerStatus(id=c.id, image=pb.ImageSpec(image="postgres:16"))
                )
        context.abort(grpc.StatusCode.NOT_FOUND, "no such container")
        raise AssertionError("unreachable")

    def GetContainerEvents(self, request: Any, context: Any) -> Iterator[pb.ContainerEventResponse]:
        while context.is_active():
            try:
                yield self.events.get(timeout=0.1)
            except queue.Empty:
                continue


@pytest.mark.broker
def test_event_stream_wakes_the_watcher(settings: Settings, tmp_path: Path) -> None:
    runtime = _EventedRuntime()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    sock = tmp_path / "crio.sock"
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    cid = "e" * 64
    try:
        client, name = connect(sock)
        w = CriWatcher(settings, client, name, poll_s=3600, resync_s=3600)  # only events can wake it
        w.start()
        try:
            runtime.containers.append(
                pb.Container(
                    id=cid,
                    pod_sandbox_id="s1",
                    metadata=pb.ContainerMetadata(name="db"),
                    image=pb.ImageSpec(image=IMAGE_ID),
                    state=pb.CONTAINER_RUNNING,
                )
            )
            runtime.events.put(
                pb.ContainerEventResponse(container_id=cid, container_event_type=pb.CONTAINER_STARTED_EVENT)
            )
            bootstrap = settings.kafka.bootstrap or ""
            msgs = consume_all(
                bootstrap, settings.topics.containers, timeout=15, until=lambda o: _by_key(o, cid)
            )
            assert w.events_supported is True
            runtime.containers.clear()
            runtime.events.put(
                pb.ContainerEventResponse(container_id=cid, container_event_type=pb.CONTAINER_DELETED_EVENT)
            )
            msgs = consume_all(
                bootstrap,
                settings.topics.containers,
                timeout=15,
                until=lambda o: any(v["state"] == "removed" for v in _by_key(o, cid)),
            )
        finally:
            w.stop()
    finally:
        server.stop(0)
    first, last = _by_key(msgs, cid)[0], _by_key(msgs, cid)[-1]
    assert (first["runtime"], first["name"], first["image"], first["image_id"]) == (
        "cri-o",
        "db",
        "postgres:16",
        IMAGE_ID,
    )
    assert (first["pod_name"], first["pod_namespace"], first["pod_uid"], first["state"]) == (
        "db-0",
        "data",
        "u9",
        "running",
    )
    assert last["state"] == "removed" and last["image"] == "postgres:16"
