"""Container metadata watcher: pure mapping, and a real podman Docker-API socket end to end."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from memtrail.core.children import stop_process
from memtrail.core.settings import Settings
from sensors.containers import ContainerWatcher, meta_from_inspect
from tests.sensors.rootfs import OPTS, PODMAN
from tests.sensors.test_pipeline import consume_all

CID = "c" * 64


def test_meta_from_inspect_k8s_labels() -> None:
    doc = {
        "Id": CID,
        "Name": "/k8s_app_web-0_prod_uid_0",
        "Image": "sha256:abc",
        "Config": {
            "Image": "nginx:1.25",
            "Labels": {
                "io.kubernetes.pod.name": "web-0",
                "io.kubernetes.pod.namespace": "prod",
                "io.kubernetes.pod.uid": "uid-1",
            },
        },
        "State": {"Status": "running"},
        "HostConfig": {"Privileged": True},
        "Mounts": [{"Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "Mode": "rw"}],
    }
    m = meta_from_inspect(doc, host="node1", runtime="docker")
    assert (m.id, m.name, m.image, m.image_id) == (
        CID,
        "k8s_app_web-0_prod_uid_0",
        "nginx:1.25",
        "sha256:abc",
    )
    assert (m.pod_name, m.pod_namespace, m.pod_uid) == ("web-0", "prod", "uid-1")
    assert m.privileged is True and m.state == "running" and m.host == "node1"
    assert m.mounts[0]["source"] == "/var/run/docker.sock"


def test_meta_from_inspect_minimal() -> None:
    m = meta_from_inspect({"Id": CID})
    assert m.name is None and m.labels == {} and m.state is None


@pytest.fixture
def podman_socket(tmp_path: Path) -> Iterator[Path]:
    sock = tmp_path / "podman.sock"
    p = subprocess.Popen(
        [*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sock.exists(), "podman system service did not create its socket"
        yield sock
    finally:
        stop_process(p)


@pytest.mark.podman
@pytest.mark.broker
@pytest.mark.slow
def test_watcher_publishes_snapshot_and_changes(settings: Settings, podman_socket: Path, image: str) -> None:
    name = f"memtrail-watch-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [*PODMAN, "run", "-d", *OPTS, "--name", name, "--label", "app=demo", image, "/bin/sleep", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip().splitlines()[-1]
    w = ContainerWatcher(settings, podman_socket, resync_s=3600)
    try:
        w.start()
        assert w.runtime == "podman"
        deadline = time.monotonic() + 30  # the start-up snapshot first (a loaded machine is slow)
        while w.published < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], check=True, capture_output=True, timeout=60)

        def mine(out: list[dict]) -> list[dict]:
            return [m["value"] for m in out if m["key"] == cid.encode()]

        msgs = consume_all(
            settings.kafka.bootstrap or "",
            settings.topics.containers,
            timeout=20,
            until=lambda out: any(v["state"] in ("removed", "exited") for v in mine(out)),
        )
    finally:
        w.stop()
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)
    metas = mine(msgs)
    assert metas, "no ContainerMeta for the container"
    first = metas[0]
    assert first["name"] == name and first["labels"]["app"] == "demo" and first["state"] == "running"
    assert first["runtime"] == "podman" and first["image"].startswith("localhost/memtrail-test-busybox")
    assert metas[-1]["state"] in ("removed", "exited")
