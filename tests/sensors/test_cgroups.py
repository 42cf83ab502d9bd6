"""Container id from cgroup paths (table-driven) and the cgroup id resolver on this host."""

from __future__ import annotations

import os

import pytest

from sensors.cgroups import CgroupResolver, parse_container, path_from_proc

ID = "3f5c0a6e9b1d4c2f8a7e6d5c4b3a29181716151413121110f0e0d0c0b0a09080"
ID2 = "a" * 64

CASES = [
    # docker
    (f"/system.slice/docker-{ID}.scope", (ID, "docker")),
    (f"/docker/{ID}", (ID, "docker")),
    # containerd / Kubernetes, systemd and cgroupfs drivers
    (
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice/cri-containerd-{ID}.scope",
        (ID, "containerd"),
    ),
    (f"/kubepods/burstable/pod1a2b3c4d-0000-1111-2222-333344445555/{ID}", (ID, None)),
    (f"/kubepods/pod1a2b3c4d-0000-1111-2222-333344445555/{ID}", (ID, None)),
    (
        f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/docker-{ID}.scope",
        (ID, "docker"),
    ),
    # CRI-O, and its conmon
    (f"/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope", (ID, "cri-o")),
    (f"/kubepods.slice/kubepods-pod1.slice/crio-conmon-{ID}.scope", None),
    (f"/kubepods/besteffort/pod1/crio-{ID}", (ID, "cri-o")),
    # podman: cgroupfs, systemd (root and rootless), nested container cgroup, conmon
    (f"/libpod_parent/libpod-{ID}", (ID, "podman")),
    (f"/machine.slice/libpod-{ID}.scope", (ID, "podman")),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope", (ID, "podman")),
    (f"/machine.slice/libpod-{ID}.scope/container", (ID, "podman")),
    (f"/machine.slice/libpod-conmon-{ID}.scope", None),
    (f"/libpod_parent/conmon/{ID2}", None),
    # host
    ("/", None),
    ("/user.slice/user-0.slice/session-1.scope", None),
    ("/system.slice/containerd.service", None),
    ("/system.slice/docker-short.scope", None),
    ("", None),
]


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_parse_container(path: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_container(path) == expected


def test_resolver_host_process() -> None:
    r = CgroupResolver()
    if r.root is None:
        pytest.skip("no cgroup2 hierarchy")
    own = path_from_proc(os.getpid())
    assert own is not None
    ino = os.stat(f"{r.root}{own}").st_ino
    assert r.path(ino) == own
    assert r.container_id(ino) is None  # the test runs on the host


def test_resolver_unknown_id_falls_back_to_proc() -> None:
    r = CgroupResolver(rescan_interval=3600)
    assert r.path(1 << 60) is None
    assert r.path(1 << 60, pid=os.getpid()) == path_from_proc(os.getpid())
