"""A private containerd with its CRI plugin, for the CRI watcher tests.

Runs ``containerd --config <tmp>/config.toml`` with its own root, state, runc root and
sockets under a short temp dir (the system service, if any, is not touched), CRI plugin
on, sandbox image = a busybox image built here and imported with ``ctr``. Pods use the
node's network namespace (no CNI) and runc with cgroupfs under a kubepods-like parent.
``restrict_oom_score_adj``: this machine refuses negative oom_score_adj even to root,
and containerd gives sandboxes -998 (runc fails with "can't get final child's PID").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from memtrail.core.children import stop_process
from sensors.cri_api import api_pb2 as pb
from sensors.cri_api import api_pb2_grpc as pb_grpc
from tests.sensors.rootfs import write_rootfs

IMAGE = "localhost/memtrail-cri-busybox:1"
CGROUP_PARENT = "/kubepods-memtrail-test/besteffort"
CGROUP_ROOT = Path("/sys/fs/cgroup")

_CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"""


def missing() -> str | None:
    if os.geteuid() != 0:
        return "containerd tests need root"
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (Debian containerd/runc; scripts/bootstrap.sh test installs them)"
    if not Path("/bin/busybox").exists():
        return "a static /bin/busybox is needed (Debian busybox-static)"
    return None


def require() -> None:
    """Skip without containerd — except in CI, where the bootstrap installs it: there it fails."""
    reason = missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def image_tar(path: Path, ref: str = IMAGE) -> Path:
    """A docker-archive with one layer (static busybox) that ``ctr images import`` takes."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        write_rootfs(t)
    blob = layer.getvalue()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sleep", "2147483647"]},  # also the pod sandbox ("pause") image
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(blob).hexdigest()]},
        }
    ).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in ((cfg_name, config), ("layer.tar", blob), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@dataclass
class Pod:
    sandbox_id: str
    config: pb.PodSandboxConfig
    uid: str
    containers: list[str] = field(default_factory=list)


class Containerd:
    def __init__(self) -> None:
        # Short path: unix socket paths are limited to 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="mt-ctrd-", dir="/tmp"))
        self.socket = self.dir / "c.sock"
        self.log_path = self.dir / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.pods: list[Pod] = []

    @property
    def rt(self) -> pb_grpc.RuntimeServiceStub:
        assert self.channel is not None
        return pb_grpc.RuntimeServiceStub(self.channel)

    def start(self) -> None:
        (self.dir / "config.toml").write_text(_CONFIG.format(d=self.dir, image=IMAGE))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.dir / "config.toml")], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        while True:
            try:
                self.rt.Version(pb.VersionRequest(), timeout=2)
                break
            except grpc.RpcError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"containerd did not start: {self.log_tail()}") from None
                time.sleep(0.2)
        tar = image_tar(self.dir / "image.tar")
        imp = subprocess.run(
            ["ctr", "-a", str(self.socket), "-n", "k8s.io", "images", "import", str(tar)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if imp.returncode != 0:
            raise RuntimeError(f"ctr images import: {imp.stderr.strip()}")

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def run_pod(self, name: str, namespace: str, labels: dict[str, str] | None = None) -> Pod:
        uid = str(uuid.uuid4())
        host = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace),
            log_directory=str(self.dir / "pods" / uid),
            labels=labels or {},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{CGROUP_PARENT}/pod{uid}",
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=host),
            ),
        )
        sid = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=60).pod_sandbox_id
        pod = Pod(sid, config, uid)
        self.pods.append(pod)
        return pod

    def run_container(
        self, pod: Pod, name: str, command: list[str], labels: dict[str, str] | None = None
    ) -> str:
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=IMAGE),
            command=command,
            labels=labels or {},
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
                )
            ),
        )
        cid = self.rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod.sandbox_id, config=cfg, sandbox_config=pod.config),
            timeout=60,
        ).container_id
        pod.containers.append(cid)
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        return cid

    def remove_container(self, cid: str) -> None:
        self.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        self.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)

    def remove_pod(self, pod: Pod) -> None:
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=30)
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.sandbox_id), timeout=30)
        if pod in self.pods:
            self.pods.remove(pod)

    def stop(self) -> None:
        for pod in list(self.pods):
            with contextlib.suppress(grpc.RpcError):
                self.remove_pod(pod)
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None:
            stop_process(self.proc, 15)
        self._kill_own_shims()
        _remove_cgroups(CGROUP_PARENT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_own_shims(self) -> None:
        """Shims outlive containerd by design; end those started for this instance (by pid)."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(self.socket).encode() in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)


def _remove_cgroups(parent: str) -> None:
    """rmdir the (empty) test cgroup tree in every hierarchy, deepest first."""
    top = parent.strip("/").split("/")[0]
    for hier in [*CGROUP_ROOT.iterdir(), CGROUP_ROOT]:
        base = hier / top
        if not base.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
