"""Container metadata watcher: CRI socket (containerd, CRI-O, cri-dockerd) → memtrail.containers.

On a Kubernetes node with containerd or CRI-O there is no Docker socket; the kubelet's
CRI socket (gRPC ``runtime.v1.RuntimeService``) is what is left. The watcher lists
containers and pod sandboxes, resolves each new or changed container's image name
with ``ContainerStatus`` and publishes a ContainerMeta keyed by the 64-hex container id,
the same shape the Docker watcher publishes: a snapshot at start, a record whenever a
container appears or changes state, a ``state="removed"`` record when it disappears
(kept, not a tombstone, so late events can still be enriched) and a full republish
every ``resync_s``. Changes are found by polling ``ListContainers`` every ``poll_s``;
a runtime that serves ``GetContainerEvents`` (containerd ≥ 1.7, CRI-O ≥ 1.26) wakes the
poll at once. :func:`meta_from_cri`, :func:`image_name` and :func:`runtime_name` are the
pure part; :class:`CriClient` is the thin gRPC shell.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from memtrail.core.settings import Settings
from schemas.containers import ContainerMeta
from sensors.config import SensorSettings
from sensors.container_publisher import ContainerPublisher
from sensors.cri_api import api_pb2 as pb
from sensors.cri_api import api_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_RUNTIMES = {"containerd": "containerd", "cri-o": "cri-o", "crio": "cri-o", "docker": "docker"}
_STATES = {
    pb.CONTAINER_CREATED: "created",
    pb.CONTAINER_RUNNING: "running",
    pb.CONTAINER_EXITED: "exited",
    pb.CONTAINER_UNKNOWN: "unknown",
}
#: containerd ≥ 1.7 records the image as the kubelet asked for it under this annotation.
IMAGE_NAME_ANNOTATION = "io.kubernetes.cri.image-name"


class CriError(Exception):
    """The CRI socket cannot be used (missing, refused, not a CRI runtime)."""


def runtime_name(version: pb.VersionResponse) -> str:
    """``containerd`` / ``cri-o`` / ``docker`` (cri-dockerd) from ``Version().runtime_name``."""
    raw = version.runtime_name.strip().lower()
    return _RUNTIMES.get(raw, raw or "cri")


def _is_image_id(ref: str) -> bool:
    bare = ref.removeprefix("sha256:")
    return ref.startswith("sha256:") or (len(bare) == 64 and all(c in "0123456789abcdef" for c in bare))


def image_name(container: pb.Container, status: pb.ContainerStatus | None = None) -> str | None:
    """The image as the user wrote it (``nginx:1.25``), not the id the kubelet passes down.

    Kubelets hand the runtime the resolved image id, so ``Container.image.image`` is often
    ``sha256:…``. Preferred, in order: ``user_specified_image`` (CRI ≥ 1.30), the
    ``io.kubernetes.cri.image-name`` annotation, ``ContainerStatus.image.image`` (containerd
    answers with the image's first repo tag), then ``Container.image.image`` — skipping bare
    ids; an id is returned only when nothing else is known.
    """
    specs = [s for s in ((status.image if status else None), container.image) if s is not None]
    candidates = [s.user_specified_image for s in specs]
    for ann in ((status.annotations if status else {}), container.annotations):
        candidates.append(ann.get(IMAGE_NAME_ANNOTATION, ""))
    candidates += [s.image for s in specs]
    named = [c for c in candidates if c and not _is_image_id(c)]
    if named:
        return named[0]
    return next((c for c in candidates if c), None)


def meta_from_cri(
    container: pb.Container,
    sandbox: pb.PodSandbox | None = None,
    status: pb.ContainerStatus | None = None,
    *,
    runtime: str | None = None,
    host: str | None = None,
) -> ContainerMeta:
    """ContainerMeta from CRI ``ListContainers`` (+ its pod sandbox and ``ContainerStatus``).

    Pod name/namespace/uid come from the sandbox metadata, else from the kubelet's
    ``io.kubernetes.pod.*`` labels; the container name from the CRI metadata, else the
    ``io.kubernetes.container.name`` label; labels are the sandbox's (the pod's) overlaid
    with the container's.
    """
    # The kubelet puts the pod's labels on the sandbox and only io.kubernetes.* on containers.
    labels = {str(k): str(v) for k, v in (sandbox.labels.items() if sandbox is not None else ())}
    labels.update({str(k): str(v) for k, v in container.labels.items()})
    pod = sandbox.metadata if sandbox is not None and sandbox.HasField("metadata") else None
    mounts = [
        {"source": m.host_path, "destination": m.container_path, "mode": "ro" if m.readonly else "rw"}
        for m in (status.mounts if status is not None else [])
    ]
    ids = [status.image_id, status.image_ref] if status is not None else []
    ids += [container.image_id, container.image_ref]
    ids += [
        s.image for s in (container.image, status.image if status else None) if s and _is_image_id(s.image)
    ]
    return ContainerMeta(
        id=container.id,
        name=container.metadata.name or labels.get("io.kubernetes.container.name") or None,
        image=image_name(container, status),
        image_id=next((i for i in ids if i), None),
        labels=labels,
        runtime=runtime,
        pod_name=(pod.name if pod else None) or labels.get("io.kubernetes.pod.name"),
        pod_namespace=(pod.namespace if pod else None) or labels.get("io.kubernetes.pod.namespace"),
        pod_uid=(pod.uid if pod else None) or labels.get("io.kubernetes.pod.uid"),
        mounts=mounts,
        host=host,
        state=_STATES.get(container.state, "unknown"),
        updated=time.time(),
    )


def _describe(exc: grpc.RpcError) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"not a CRI runtime.v1 server ({details})"
    return f"{code.name.lower() if code else 'error'}: {details}"


class CriClient:
    """``runtime.v1.RuntimeService`` over a unix socket; every unary call has a deadline."""

    def __init__(self, socket_path: Path, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.stub = pb_grpc.RuntimeServiceStub(self.channel)

    def version(self) -> pb.VersionResponse:
        return self.stub.Version(pb.VersionRequest(version="v1"), timeout=self.timeout)

    def containers(self) -> list[pb.Container]:
        return list(self.stub.ListContainers(pb.ListContainersRequest(), timeout=self.timeout).containers)

    def sandboxes(self) -> dict[str, pb.PodSandbox]:
        items = self.stub.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=self.timeout).items
        return {s.id: s for s in items}

    def status(self, cid: str) -> pb.ContainerStatus | None:
        """None when the container is gone between the list and this call."""
        try:
            r = self.stub.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=self.timeout)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return r.status

    def events(self) -> Iterator[pb.ContainerEventResponse]:
        """The runtime's event stream (no deadline); ends when the channel closes."""
        return iter(self.stub.GetContainerEvents(pb.GetEventsRequest()))

    def close(self) -> None:
        self.channel.close()


def connect(socket_path: Path, timeout: float = 5.0) -> tuple[CriClient, str]:
    """A client that answered ``Version``, and the runtime name; CriError with one line otherwise."""
    if not socket_path.exists():
        raise CriError(f"CRI socket {socket_path}: no such file")
    client = CriClient(socket_path, timeout)
    try:
        runtime = runtime_name(client.version())
    except grpc.RpcError as exc:
        client.close()
        raise CriError(f"CRI socket {socket_path}: {_describe(exc)}") from None
    return client, runtime


class CriWatcher:
    def __init__(
        self,
        settings: Settings,
        client: CriClient,
        runtime: str,
        *,
        poll_s: float = 2.0,
        resync_s: float = 60.0,
        publisher: ContainerPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.socket_path = client.socket_path
        self.runtime = runtime
        self.poll_s = poll_s
        self.resync_s = resync_s
        self.host = settings.host_name
        self.topic = settings.topics.containers
        self.publisher = publisher or ContainerPublisher(settings)
        self.events_supported: bool | None = None
        self.published = 0
        self._known: dict[str, tuple[object, ...]] = {}
        self._metas: dict[str, ContainerMeta] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._events_thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, cfg: SensorSettings, publisher: ContainerPublisher | None = None
    ) -> CriWatcher | None:
        """The configured socket (CriError if unusable), else the first candidate that answers."""
        if not cfg.cri:
            return None
        found: tuple[CriClient, str] | None = None
        if cfg.cri_socket is not None:
            found = connect(cfg.cri_socket)
        for sock in cfg.cri_candidates if found is None else ():
            if not sock.exists():
                continue
            try:
                found = connect(sock)
                break
            except CriError as exc:
                log.warning("%s; skipped", exc)
        if found is not None:
            client, runtime = found
            kw = {"poll_s": cfg.cri_poll_s, "resync_s": cfg.container_resync_s}
            return cls(settings, client, runtime, publisher=publisher, **kw)
        log.info("no CRI socket (%s): no CRI container metadata", ", ".join(map(str, cfg.cri_candidates)))
        return None

    def publish(self, meta: ContainerMeta) -> None:
        self.publisher.publish(meta)
        self.published += 1

    def sync(self, full: bool = False) -> int:
        """Publish new and changed containers (all of them when ``full``) and removals; returns how many."""
        sandboxes = self.client.sandboxes()
        n = 0
        seen: set[str] = set()
        for c in self.client.containers():
            seen.add(c.id)
            sig = (
                c.state,
                c.pod_sandbox_id,
                c.metadata.attempt,
                c.image.image,
                tuple(sorted(c.labels.items())),
            )
            if self._known.get(c.id) == sig and not full:
                continue
            if self._known.get(c.id) == sig and c.id in self._metas:
                meta = self._metas[c.id].model_copy(update={"updated": time.time()})
            else:
                status = self.client.status(c.id)
                meta = meta_from_cri(
                    c, sandboxes.get(c.pod_sandbox_id), status, runtime=self.runtime, host=self.host
                )
            self._known[c.id], self._metas[c.id] = sig, meta
            self.publish(meta)
            n += 1
        for gone in set(self._known) - seen:
            del self._known[gone]
            old = self._metas.pop(gone, None) or ContainerMeta(id=gone, host=self.host)
            self.publish(old.model_copy(update={"state": "removed", "updated": time.time()}))
            n += 1
        self.publisher.flush(10)
        return n

    def _events_loop(self) -> None:
        """Wake the poll on every runtime event; give up quietly when the runtime has no stream."""
        backoff = 2.0
        while not self._stop.is_set():
            try:
                for _ in self.client.events():
                    self.events_supported = True
                    backoff = 2.0
                    self._wake.set()
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self.events_supported = False
                    log.info(
                        "%s (%s) has no GetContainerEvents: polling every %.0f s",
                        self.socket_path,
                        self.runtime,
                        self.poll_s,
                    )
                    return
                log.warning(
                    "CRI event stream from %s: %s; retrying in %.0f s",
                    self.socket_path,
                    _describe(exc),
                    backoff,
                )
            except ValueError:  # the channel was closed under the iterator
                return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)

    def _poll_loop(self) -> None:
        next_full = time.monotonic() + self.resync_s
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            full = time.monotonic() >= next_full
            try:
                self.sync(full=full)
            except grpc.RpcError as exc:
                # once per outage, not every poll: a restarting runtime must not flood the log
                (log.debug if failing else log.warning)(
                    "CRI list from %s failed: %s", self.socket_path, _describe(exc)
                )
                failing = True
                continue
            if failing:
                log.info("CRI list from %s works again", self.socket_path)
                failing = False
            if full:
                next_full = time.monotonic() + self.resync_s

    def start(self) -> None:
        try:
            n = self.sync(full=True)
            log.info("CRI watcher on %s (%s): %d containers", self.socket_path, self.runtime, n)
        except grpc.RpcError as exc:
            log.warning("CRI snapshot from %s failed: %s", self.socket_path, _describe(exc))
        self._poll_thread = threading.Thread(target=self._poll_loop, name="cri-poll", daemon=True)
        self._events_thread = threading.Thread(target=self._events_loop, name="cri-events", daemon=True)
        self._poll_thread.start()
        self._events_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._poll_thread is not None:
            self._poll_thread.join(15)  # a sync in progress finishes before the channel closes
        self.client.close()  # ends the event stream
        if self._events_thread is not None:
            self._events_thread.join(5)
        self.publisher.flush(5)
