"""Real eBPF: write opens carry the owners of the file and its directory (args.file_uid,
args.dir_uid), and MT-PRIVESC-WRITE-001 decides on them rather than on the writer's uid.

A rootless / user-namespaced container's root is a high host uid that owns the
container's files: its package installs into /usr/bin are not a kernel exploit. A
non-root writer of host root's files still is, also from the attacker's own user
namespace (``unshare -Ur``), where it is "root" but host root's files stay unmapped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.cbuild import drained_run
from tests.sensors.conftest import Collector
from tests.sensors.rootfs import write_rootfs

pytestmark = [pytest.mark.ebpf]

IMAGE = "localhost/memtrail-test-busybox:1"
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
HOST_BASE = 200000  # container root's host uid in the user-namespaced container
NOBODY = 65534
RULE = "MT-PRIVESC-WRITE-001"


def alerts(events: list[dict[str, Any]]) -> set[str]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id for a in engine.process_batch(events) + engine.flush()}


def opens_of(collector: Collector, path: str, timeout: float = 20) -> list[dict[str, Any]]:
    return collector.wait_for(
        lambda e: (
            e["syscall"] in ("open", "openat", "openat2") and e["args"].get("path") == path and e["ret"] >= 0
        ),
        timeout=timeout,
    )


@pytest.mark.podman
@pytest.mark.slow
def test_package_install_in_a_user_namespaced_container_is_not_a_privilege_bypass(
    collector: Collector, tmp_path: Path
) -> None:
    if subprocess.run([*PODMAN, "image", "exists", IMAGE]).returncode != 0:
        tar = tmp_path / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            write_rootfs(t)
        subprocess.run([*PODMAN, "import", str(tar), IMAGE], check=True, capture_output=True)
    tool = f"mt-owner-{uuid.uuid4().hex[:8]}"
    # what a package's postinst / an install step does as the container's root
    script = (
        f"mkdir -p /usr/bin && cp /bin/busybox /usr/bin/{tool}.new && mv /usr/bin/{tool}.new /usr/bin/{tool}"
    )
    umap = f"0:{HOST_BASE}:65536"
    drained_run(
        collector,
        [*PODMAN, "run", "--rm", *OPTS, "--uidmap", umap, "--gidmap", umap, IMAGE, "sh", "-c", script],
        120,
    )
    got = opens_of(collector, f"/usr/bin/{tool}.new")
    assert got, "the container's write open was not seen"
    ev = got[-1]
    assert ev["container_id"] and ev["process"]["uid"] == HOST_BASE, ev
    assert ev["args"]["file_uid"] == HOST_BASE and ev["args"]["dir_uid"] == HOST_BASE, ev["args"]
    assert RULE not in alerts(got)


@pytest.fixture()
def root_file() -> Iterator[Path]:
    """A host-root-owned file in a root-owned system directory, left writable by others:
    the state a kernel exploit's write leaves the permission check in (the kernel lets a
    non-root writer open it, as after Dirty Pipe / a setuid bug)."""
    d = Path("/etc/systemd/system")
    if not d.is_dir() or d.stat().st_uid != 0:
        pytest.skip("no root-owned /etc/systemd/system")
    f = d / f"mt-owner-{uuid.uuid4().hex[:8]}.service"
    f.write_text("")
    os.chmod(f, 0o666)
    yield f
    f.unlink(missing_ok=True)


def test_non_root_write_into_host_root_files_alerts(collector: Collector, root_file: Path) -> None:
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv missing")
    drop = [setpriv, "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
    drained_run(collector, [*drop, "sh", "-c", f"echo '[Service]' >> {root_file}"])
    got = [e for e in opens_of(collector, str(root_file)) if e["process"]["uid"] == NOBODY]
    assert got, "the non-root write open was not seen"
    assert got[-1]["args"]["file_uid"] == 0 and got[-1]["args"]["dir_uid"] == 0, got[-1]["args"]
    assert RULE in alerts(got)

    # evasive: the same write from the attacker's own user namespace, where it is "root"
    if subprocess.run([*drop, "unshare", "-Ur", "true"], capture_output=True).returncode != 0:
        pytest.skip("unprivileged user namespaces are off")
    collector.events.clear()
    drained_run(collector, [*drop, "unshare", "-Ur", "sh", "-c", f"echo '[Unit]' >> {root_file}"])
    got = [e for e in opens_of(collector, str(root_file)) if e["process"]["uid"] == NOBODY]
    assert got, "the write open from the user namespace was not seen"
    assert got[-1]["args"]["file_uid"] == 0, got[-1]["args"]
    assert RULE in alerts(got)
