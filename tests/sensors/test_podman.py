"""Container attribution with a real podman container (runc, cgroupfs, --network none)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.sensors.conftest import Collector
from tests.sensors.rootfs import RUN

pytestmark = [pytest.mark.ebpf, pytest.mark.podman, pytest.mark.slow]


def test_container_id_inside_and_null_on_host(image: str, collector: Collector) -> None:
    marker = f"mt{uuid.uuid4().hex[:8]}"
    name = f"memtrail-test-{marker}"
    p = subprocess.run(
        [
            *RUN,
            "--name",
            name,
            image,
            "/bin/sh",
            "-c",
            f"cat /etc/hostname /proc/self/cgroup; /bin/true {marker}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    inside = [line for line in p.stdout.splitlines() if "libpod-" in line]
    assert inside, p.stdout
    cid = inside[0].rsplit("libpod-", 1)[1].removesuffix(".scope")[:64]
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", marker]
    )
    assert found, "exec inside the container not seen"
    ev = found[0]
    assert ev["container_id"] == cid
    assert ev["cgroup_id"] != 0
    # resolved in the kernel up to the container's root: container-relative, through the
    # applet symlink to the file actually executed (not the host's overlay path)
    assert ev["args"]["exe_path"] == "/bin/busybox" and ev["args"]["exe_path_truncated"] is False
    opens = [
        e
        for e in collector.events
        if e["container_id"] == cid and e["syscall"] == "openat" and e["args"]["path"] == "/etc/hostname"
    ]
    assert opens, "open of /etc/hostname inside the container not attributed"
    # /etc/hostname is a bind mount of a host file: the walk crosses it to the container's path
    assert opens[0]["args"]["path_truncated"] is False
    host = subprocess.run(["/bin/true", marker + "-host"], check=True)
    assert host.returncode == 0
    h = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", marker + "-host"]
    )
    assert h and h[0]["container_id"] is None
