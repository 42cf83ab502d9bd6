"""`memtrail up` on a podman host where no Docker-API socket answers: it serves podman's API for its
own run, so alerts from a real container carry the container's name and image."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from memtrail.core.podman_api import KNOWN_SOCKETS, answers
from tests.e2e.helpers import UpProc, port_args, read_jsonl
from tests.sensors.rootfs import OPTS, PODMAN, busybox_image

pytestmark = [pytest.mark.ebpf, pytest.mark.broker, pytest.mark.podman, pytest.mark.slow]


def test_container_alerts_carry_name_and_image_without_a_running_socket(tmp_path: Path) -> None:
    if any(answers(p) for p in KNOWN_SOCKETS):
        pytest.skip("a Docker-API socket already answers on this host: nothing for `up` to start")
    image = busybox_image(tmp_path)
    jsonl = tmp_path / "alerts.jsonl"
    up = UpProc("--alerts-jsonl", str(jsonl), "--no-shim", *port_args())
    name = f"memtrail-e2e-{uuid.uuid4().hex[:8]}"
    try:
        assert up.wait_for("memtrail up: ready", timeout=240), up.tail()
        assert any("podman API service on" in line for line in up.stderr), up.tail()
        # the password database rewritten inside a running container (a container that dies
        # within a second may alert before its metadata reaches the worker: docs/stream.md)
        p = subprocess.run(
            [
                *PODMAN,
                "run",
                "--rm",
                *OPTS,
                "--name",
                name,
                image,
                "/bin/sh",
                "-c",
                "sleep 3; echo 'root::0:0:99999:7:::' > /etc/shadow",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            time.sleep(0.3)
            found = [a for a in read_jsonl(jsonl) if (a.get("container") or {}).get("name") == name]
        assert found, f"no alert naming container {name}:\n{up.tail()}"
        assert found[0]["container"]["image"] == image
    finally:
        assert up.stop() == 0, up.tail()
    assert not list(Path("/tmp/memtrail").glob("podman-*.sock")), "the run's podman socket was left behind"
