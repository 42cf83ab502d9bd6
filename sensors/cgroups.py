"""Container id from a cgroup: path parsing (pure) and cgroup id → path resolution.

``bpf_get_current_cgroup_id()`` is the inode number of the task's cgroup2 directory.
:class:`CgroupResolver` maps it to a path by scanning the cgroup2 mount's inodes
(cached, rescanned on a miss at most once a second), falling back to
``/proc/<pid>/cgroup``; :func:`container_id_from_path` then parses the path.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

_HEX64 = r"[0-9a-f]{64}"
# One path segment, ".scope" already stripped. Order matters: conmon segments are skipped first.
_SEGMENT_PATTERNS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(rf"^docker-({_HEX64})$"), "docker"),
    (re.compile(rf"^cri-containerd-({_HEX64})$"), "containerd"),
    (re.compile(rf"^containerd-({_HEX64})$"), "containerd"),
    (re.compile(rf"^crio-({_HEX64})$"), "cri-o"),
    (re.compile(rf"^libpod-({_HEX64})$"), "podman"),
    (re.compile(rf"^({_HEX64})$"), None),
)
_PARENT_RUNTIME = {"docker": "docker", "libpod_parent": "podman", "crio": "cri-o"}

CGROUP2_CANDIDATES = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def parse_container(path: str) -> tuple[str, str | None] | None:
    """(container id, runtime or None) from a cgroup path; None on the host.

    Handles docker (systemd ``docker-<id>.scope`` and cgroupfs ``/docker/<id>``),
    containerd/Kubernetes (``cri-containerd-<id>.scope``, ``/kubepods/.../pod<uid>/<id>``),
    CRI-O (``crio-<id>.scope``) and podman (``libpod-<id>[.scope]``, also with a nested
    ``/container`` cgroup); conmon cgroups (``*-conmon-<id>``) are not the container.
    """
    segments = [s for s in path.strip().split("/") if s]
    if any("conmon" in s for s in segments):
        return None  # the container monitor, not the container
    for i in range(len(segments) - 1, -1, -1):
        seg = segments[i].removesuffix(".scope")
        for pattern, runtime in _SEGMENT_PATTERNS:
            m = pattern.match(seg)
            if m:
                if runtime is None and i > 0:
                    parent = segments[i - 1]
                    runtime = _PARENT_RUNTIME.get(parent)
                    if runtime is None and any(s.startswith("kubepods") for s in segments[:i]):
                        runtime = None  # docker or containerd under cgroupfs: cannot tell from the path
                return m.group(1), runtime
    return None


def container_id_from_path(path: str) -> str | None:
    found = parse_container(path)
    return found[0] if found else None


def cgroup2_root() -> Path | None:
    for cand in CGROUP2_CANDIDATES:
        if (cand / "cgroup.controllers").exists():
            return cand
    return None


def path_from_proc(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The cgroup2 (``0::``) path of a live process."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


class CgroupResolver:
    """cgroup id (inode) → (path, container id), cached."""

    def __init__(self, root: Path | None = None, rescan_interval: float = 1.0) -> None:
        self.root = root if root is not None else cgroup2_root()
        self.rescan_interval = rescan_interval
        self._paths: dict[int, str] = {}
        self._containers: dict[int, str | None] = {}
        self._last_scan = 0.0
        self.scan()

    def scan(self) -> None:
        self._last_scan = time.monotonic()
        if self.root is None:
            return
        root = str(self.root)
        stack = [root]
        paths = self._paths
        try:
            paths[os.stat(root).st_ino] = "/"
        except OSError:
            return
        while stack:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            paths[entry.inode()] = entry.path[len(root) :] or "/"
                            stack.append(entry.path)
            except OSError:
                continue  # removed while scanning

    def path(self, cgroup_id: int, pid: int | None = None) -> str | None:
        p = self._paths.get(cgroup_id)
        if p is None and time.monotonic() - self._last_scan >= self.rescan_interval:
            self.scan()
            p = self._paths.get(cgroup_id)
        if p is None and pid is not None:
            p = path_from_proc(pid)
            if p is not None:
                self._paths[cgroup_id] = p
        return p

    def learn(self, cgroup_id: int, name: str) -> None:
        """Record what the kernel named this cgroup (``parent/leaf``, from exec events).

        cgroup ids are never reused (64-bit kernfs ids), so the answer is final; it
        survives the container's cgroup being removed before a scan could see it.
        """
        if cgroup_id and cgroup_id not in self._containers:
            self._containers[cgroup_id] = container_id_from_path(name)

    def container_id(self, cgroup_id: int, pid: int | None = None) -> str | None:
        if cgroup_id in self._containers:
            return self._containers[cgroup_id]
        p = self.path(cgroup_id, pid)
        if p is None:
            return None  # unknown yet: do not cache, a later scan may find it
        cid = container_id_from_path(p)
        self._containers[cgroup_id] = cid
        return cid
