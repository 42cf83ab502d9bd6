"""Real eBPF + podman: namespace escapes from inside a privileged container raise the escape patterns."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from typing import Any

import pytest

from tests.sensors.cbuild import build, drained_run
from tests.sensors.conftest import Collector
from tests.sensors.rootfs import write_rootfs

pytestmark = [pytest.mark.ebpf, pytest.mark.podman, pytest.mark.slow]

IMAGE = "localhost/memtrail-test-busybox:1"
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# a privileged container sharing the host's PID namespace: what an escape needs
RUN = [*PODMAN, "run", "--rm", *OPTS, "--privileged", "--pid", "host", "--security-opt", "seccomp=unconfined"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    if subprocess.run([*PODMAN, "image", "exists", IMAGE]).returncode == 0:
        return IMAGE
    tar = tmp_path_factory.mktemp("rootfs") / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        write_rootfs(t)
    subprocess.run([*PODMAN, "import", str(tar), IMAGE], check=True, capture_output=True)
    return IMAGE


def run_in_container(collector: Collector, image: str, mode: str) -> list[dict[str, Any]]:
    exe = build("ns_escape", static=True)
    name = f"memtrail-test-ns-{uuid.uuid4().hex[:8]}"
    drained_run(
        collector, [*RUN, "--name", name, "-v", f"{exe}:/ns_escape:ro", image, "/ns_escape", mode], 120
    )
    execs = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/ns_escape", mode], timeout=20
    )
    assert execs, "exec inside the container not seen"
    x = max(execs, key=lambda e: e["ts_ns"])
    assert x["container_id"], x
    pid = x["process"]["pid"]
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid)
    collector.program.poll()
    return [e for e in collector.events if e["process"]["pid"] == pid]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def test_setns_fd_zero_and_pidfd_from_a_container(image: str, collector: Collector) -> None:
    ev = run_in_container(collector, image, "setns0")
    (s,) = [e for e in ev if e["syscall"] == "setns"]
    assert s["args"]["nstype"] == [] and s["args"]["ns_joined"] == ["CLONE_NEWNET"] and s["container_id"]
    got = alerts(ev)
    assert "MT-ESCAPE-SETNS-002" in got and "T1611" in got["MT-ESCAPE-SETNS-002"].threat.technique.id

    ev = run_in_container(collector, image, "pidfd")
    (s,) = [e for e in ev if e["syscall"] == "setns"]
    assert s["args"]["fd_kind"] == "pidfd" and s["args"]["target_pid"] > 0
    got = alerts(ev)
    assert {"MT-ESCAPE-SETNS-002", "MT-ESCAPE-SETNS-UNPACKAGED-001"} <= set(got), sorted(got)


def test_setns_into_the_host_mount_namespace(image: str, collector: Collector) -> None:
    ev = run_in_container(collector, image, "host")
    (s,) = [e for e in ev if e["syscall"] == "setns"]
    assert s["args"]["ns_joined"] == ["CLONE_NEWNS"] and s["args"]["ns_host"] is True
    got = alerts(ev)
    assert "MT-ESCAPE-SETNS-HOST-001" in got and got["MT-ESCAPE-SETNS-HOST-001"].rule.severity == "critical"
    assert "MT-ESCAPE-SETNS-001" in got


def test_user_namespace_then_mount_in_a_container(image: str, collector: Collector) -> None:
    ev = run_in_container(collector, image, "userns_mount")
    got = alerts(ev)
    assert (
        "MT-ESCAPE-USERNS-MOUNT-001" in got
        and "T1611" in got["MT-ESCAPE-USERNS-MOUNT-001"].threat.technique.id
    )
    assert "MT-ESCAPE-UNSHARE-001" in got  # unshare(CLONE_NEWUSER) in a container


def test_sensitive_host_mounts_at_container_start(image: str, collector: Collector) -> None:
    def start(*volumes: str) -> list[dict[str, Any]]:
        marker = f"mt{uuid.uuid4().hex[:8]}"
        cmd = [*PODMAN, "run", "--rm", *OPTS, *volumes, image, "/bin/true", marker]
        drained_run(collector, cmd, 120)
        found = collector.wait_for(
            lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", marker], timeout=20
        )
        assert found and found[0]["container_id"]
        collector.program.poll()
        # by the kernel's cgroup id: runc init mounts before the container id is resolvable
        cg, cid = found[0]["cgroup_id"], found[0]["container_id"]
        ev = [e for e in collector.events if e["cgroup_id"] == cg]
        for e in ev:
            e["container_id"] = e["container_id"] or cid
        return ev

    ev = start("-v", "/:/host:ro", "-v", "/proc:/hostproc")
    binds = {e["args"]["source"] for e in ev if e["syscall"] == "mount" and "MS_BIND" in e["args"]["flags"]}
    assert {"/", "/proc"} <= binds, binds
    got = alerts(ev)
    assert "MT-ESCAPE-MOUNT-SENSITIVE-001" in got
    assert "T1611" in got["MT-ESCAPE-MOUNT-SENSITIVE-001"].threat.technique.id
    # the same image started plainly: no sensitive mount, nothing at warning or above
    plain = alerts(start())
    assert "MT-ESCAPE-MOUNT-SENSITIVE-001" not in plain
    assert not [a for a in plain.values() if a.rule.severity in ("warning", "error", "critical")], sorted(
        plain
    )
