"""The Falco tutorial's four container scenarios alert on real podman containers of a corpus image.

The corpus ``web`` image (Debian + nginx, built by bench/noise) is also tagged
``localhost/nginx:memtrail-corpus`` so the image-aware patterns know it as an nginx image;
container metadata comes from a private ``podman system service`` socket, as on a node.
Each scenario is done as an intruder would, from outside with ``podman exec`` or at
``podman run``: (1) a terminal shell, (2) a program outside nginx's process tree,
(3) a write below /usr and /etc, (4) a container started with the host's /etc mounted.
The same image's normal runs stay silent: tests/corpus/test_noise_ci.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.noise import images
from bench.noise.runner import Pipeline, PodmanService
from bench.noise.workloads import recipe
from schemas.alerts import pattern_ids
from tests.e2e.helpers import ARTIFACTS

pytestmark = [pytest.mark.ebpf, pytest.mark.broker, pytest.mark.podman, pytest.mark.slow]

NGINX_TAG = "localhost/nginx:memtrail-corpus"
OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    if shutil.which("debootstrap") is None and os.environ.get("CI") != "true":
        pytest.skip("debootstrap not installed (scripts/bootstrap.sh test installs it)")
    tag = images.ensure(recipe("web"))
    subprocess.run([*images.PODMAN, "tag", tag, NGINX_TAG], check=True)
    out = ARTIFACTS / "falco-scenarios"
    out.mkdir(parents=True, exist_ok=True)
    service = PodmanService()
    pipe = Pipeline(out, {"MEMTRAIL_SENSOR_DOCKER_SOCKET": str(service.socket)})
    try:
        pipe.wait_ready()
        yield pipe
    finally:
        pipe.stop()
        service.close()


def _run(*args: str) -> str:
    name = f"memtrail-falco-{uuid.uuid4().hex[:8]}"
    p = subprocess.run(
        [*images.PODMAN, "run", "-d", "--name", name, *OPTS, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return p.stdout.strip().splitlines()[-1]


def _exec(cid: str, *cmd: str, stdin: str = "") -> None:
    subprocess.run([*images.PODMAN, "exec", "-i", cid, *cmd], input=stdin, capture_output=True, text=True)


Want = Callable[[dict[str, Any]], bool]


def _wait(pipe: Pipeline, cid: str, want: Want, act: Callable[[], None], timeout: float = 60) -> list[dict]:
    """Act, then wait for the alert; act again every 10 s (the intruder retries): the
    container's metadata (image, mounts) reaches the worker a moment after its start."""
    deadline = time.monotonic() + timeout
    next_act = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_act:
            act()
            next_act = time.monotonic() + 10
        found = [a for a in pipe.alerts() if a["container"].get("id") == cid and want(a)]
        if found:
            return found
        time.sleep(0.5)
    return []


@pytest.fixture
def nginx_container() -> Iterator[str]:
    cid = _run(NGINX_TAG, "nginx", "-g", "daemon off;")
    time.sleep(5)  # let the metadata watcher publish the container (image, mounts) first
    yield cid
    subprocess.run([*images.PODMAN, "rm", "-f", "-t", "1", cid], capture_output=True)


def _rule(*ids: str) -> Want:
    """Any pattern of the incident (one attack is one alert: its primary may be another pattern)."""
    return lambda a: any(p.startswith(i) for p in pattern_ids(a) for i in ids)


def test_terminal_shell_in_container(pipeline: Pipeline, nginx_container: str) -> None:
    found = _wait(
        pipeline,
        nginx_container,
        _rule("MT-CONT-SHELL-"),
        lambda: _exec(nginx_container, "/bin/bash", "-i", stdin="id\nexit\n"),
    )
    assert found, f"no terminal-shell alert:\n{pipeline.tail()}"


def test_unauthorized_process_for_the_image(pipeline: Pipeline, nginx_container: str) -> None:
    found = _wait(
        pipeline,
        nginx_container,
        lambda a: (
            a["rule"]["id"] == "MT-CONT-UNAUTH-001" and (a["process"]["executable"] or "").endswith("curl")
        ),
        lambda: _exec(nginx_container, "/usr/bin/curl", "--version"),
    )
    assert found, f"no unauthorized-process alert for curl in an nginx container:\n{pipeline.tail()}"


def test_write_outside_data_directories(pipeline: Pipeline, nginx_container: str) -> None:
    found = _wait(
        pipeline,
        nginx_container,
        _rule("MT-CONT-WRITE-001", "MT-CONT-WRITE-002"),
        lambda: _exec(
            nginx_container, "/bin/sh", "-c", "echo x > /usr/bin/helper; echo y > /etc/implant.conf"
        ),
    )
    assert found, f"no write-below-/usr-or-/etc alert:\n{pipeline.tail()}"


def test_sensitive_mount(pipeline: Pipeline) -> None:
    cid = _run("-v", "/etc:/host-etc:ro", NGINX_TAG, "sleep", "120")
    try:
        found = _wait(pipeline, cid, _rule("MT-CONT-MOUNT-002"), lambda: _exec(cid, "/bin/true"))
        assert found, f"no sensitive-mount alert for the host /etc:\n{pipeline.tail()}"
    finally:
        subprocess.run([*images.PODMAN, "rm", "-f", "-t", "1", cid], capture_output=True)
