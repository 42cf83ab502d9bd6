"""The tiny container root filesystem the podman and containerd tests run: static busybox."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

TOOLS = ("sh", "cat", "true", "sleep", "ls")
DIRS = ("etc", "tmp", "proc", "sys", "dev")


def static_busybox() -> Path:
    bb = Path("/bin/busybox")
    out = (
        subprocess.run(["file", "-L", str(bb)], capture_output=True, text=True).stdout
        if shutil.which("file")
        else ""
    )
    if not bb.exists() or ("statically linked" not in out and out):
        pytest.fail(
            "a static /bin/busybox is needed (Debian busybox-static; scripts/bootstrap.sh test installs it)"
        )
    return bb


def write_rootfs(t: tarfile.TarFile) -> None:
    """busybox, its applets as symlinks, and the empty directories a runtime mounts over."""
    t.add(static_busybox(), arcname="bin/busybox")
    for name in TOOLS:
        info = tarfile.TarInfo(f"bin/{name}")
        info.type, info.linkname = tarfile.SYMTYPE, "busybox"
        t.addfile(info)
    for dname in DIRS:
        info = tarfile.TarInfo(dname)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        t.addfile(info)


IMAGE = "localhost/memtrail-test-busybox:1"
PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
RUN = [*PODMAN, "run", "--rm", *OPTS]


def busybox_image(workdir: Path) -> str:
    """The busybox image, imported once from a rootfs tarball (no registry)."""
    if subprocess.run([*PODMAN, "image", "exists", IMAGE]).returncode == 0:
        return IMAGE
    tar = workdir / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        write_rootfs(t)
    subprocess.run([*PODMAN, "import", str(tar), IMAGE], check=True, capture_output=True)
    return IMAGE
