"""Container metadata watcher: Docker Engine API (podman's compatible socket works) → memtrail.containers.

Publishes a ContainerMeta per container keyed by its id to the compacted topic: a
snapshot at start, a record on every container event (start, die, destroy...) and a
full resync every ``container_resync_s``. Removed containers are published with
``state="removed"`` (not a tombstone) so late events can still be enriched.
:func:`meta_from_inspect` is the pure part.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from memtrail.core.settings import Settings
from schemas.containers import ContainerMeta
from sensors.config import SensorSettings
from sensors.container_publisher import ContainerPublisher

log = logging.getLogger(__name__)

API = "/v1.41"
DEFAULT_SOCKETS = (
    Path("/run/podman/podman.sock"),
    Path("/var/run/docker.sock"),
    Path("/run/containerd/containerd.sock"),
)
_STATE_EVENTS = {
    "create",
    "start",
    "restart",
    "unpause",
    "pause",
    "die",
    "stop",
    "kill",
    "destroy",
    "remove",
    "rename",
}


def meta_from_inspect(
    doc: dict[str, Any], host: str | None = None, runtime: str | None = None
) -> ContainerMeta:
    """ContainerMeta from a Docker Engine ``GET /containers/{id}/json`` document."""
    config = doc.get("Config") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    state = doc.get("State") or {}
    status = state.get("Status") if isinstance(state, dict) else str(state)
    mounts = [
        {
            "source": str(m.get("Source", "")),
            "destination": str(m.get("Destination", "")),
            "mode": str(m.get("Mode", "")),
        }
        for m in doc.get("Mounts") or []
    ]
    return ContainerMeta(
        id=doc["Id"],
        name=(doc.get("Name") or "").lstrip("/") or None,
        image=config.get("Image") or doc.get("ImageName"),
        image_id=doc.get("Image"),
        labels=labels,
        runtime=runtime,
        pod_name=labels.get("io.kubernetes.pod.name"),
        pod_namespace=labels.get("io.kubernetes.pod.namespace"),
        pod_uid=labels.get("io.kubernetes.pod.uid"),
        privileged=(doc.get("HostConfig") or {}).get("Privileged"),
        mounts=mounts,
        host=host,
        state=status,
        updated=time.time(),
    )


class ContainerWatcher:
    def __init__(
        self,
        settings: Settings,
        socket_path: Path,
        resync_s: float = 60.0,
        publisher: ContainerPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.socket_path = socket_path
        self.resync_s = resync_s
        self.host = settings.host_name
        self.topic = settings.topics.containers
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)),
            base_url="http://engine",
            timeout=httpx.Timeout(10.0, read=None),
        )
        self.publisher = publisher or ContainerPublisher(settings)
        self.runtime: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.published = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, cfg: SensorSettings, publisher: ContainerPublisher | None = None
    ) -> ContainerWatcher | None:
        candidates = [cfg.docker_socket] if cfg.docker_socket else list(DEFAULT_SOCKETS[:2])
        for sock in candidates:
            if sock is not None and sock.exists():
                return cls(settings, sock, cfg.container_resync_s, publisher)
        log.info(
            "no container engine socket (%s): container names come only from ids",
            ", ".join(str(c) for c in candidates),
        )
        return None

    def _detect_runtime(self) -> None:
        try:
            v = self.client.get(f"{API}/version").json()
        except (httpx.HTTPError, ValueError):
            return
        comps = " ".join(str(c.get("Name", "")) for c in v.get("Components") or []).lower()
        self.runtime = "podman" if "podman" in comps else "docker"

    def publish(self, meta: ContainerMeta) -> None:
        self.publisher.publish(meta)
        self.published += 1

    def inspect(self, cid: str) -> ContainerMeta | None:
        r = self.client.get(f"{API}/containers/{cid}/json")
        if r.status_code == 404:
            return None
        # podman answers 500 "no such container" while a container is being removed
        if r.status_code == 500 and "no such container" in r.text.lower():
            return None
        r.raise_for_status()
        return meta_from_inspect(r.json(), self.host, self.runtime)

    def snapshot(self) -> int:
        r = self.client.get(f"{API}/containers/json", params={"all": "true"})
        r.raise_for_status()
        n = 0
        for c in r.json():
            meta = self.inspect(c["Id"])
            if meta:
                self.publish(meta)
                n += 1
        self.publisher.flush(10)
        return n

    def _on_event(self, ev: dict[str, Any]) -> None:
        if ev.get("Type") != "container":
            return
        action = str(ev.get("Action") or ev.get("status") or "")
        cid = ev.get("id") or (ev.get("Actor") or {}).get("ID")
        if not cid or action.split(":")[0] not in _STATE_EVENTS:
            return
        try:
            meta = self.inspect(cid)
        except httpx.HTTPStatusError:
            if action not in ("destroy", "remove"):
                raise
            meta = None  # an engine error while the container goes away: it is gone
        if meta is None:  # gone: keep what we know, marked removed
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            meta = ContainerMeta(
                id=cid,
                name=attrs.get("name"),
                image=attrs.get("image"),
                host=self.host,
                runtime=self.runtime,
                state="removed",
                updated=time.time(),
            )
        self.publish(meta)
        self.publisher.flush(5)

    def _events_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.client.stream(
                    "GET", f"{API}/events", params={"filters": '{"type":["container"]}'}
                ) as r:
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        if line.strip():
                            self._on_event(orjson.loads(line))
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("container events stream from %s: %s; retrying", self.socket_path, exc)
            self._stop.wait(2.0)

    def _resync_loop(self) -> None:
        while not self._stop.wait(self.resync_s):
            try:
                self.snapshot()
            except httpx.HTTPError as exc:
                log.warning("container resync failed: %s", exc)

    def start(self) -> None:
        self._detect_runtime()
        try:
            n = self.snapshot()
            log.info("container watcher on %s (%s): %d containers", self.socket_path, self.runtime, n)
        except httpx.HTTPError as exc:
            log.warning("container snapshot from %s failed: %s", self.socket_path, exc)
        for target in (self._events_loop, self._resync_loop):
            t = threading.Thread(target=target, name=f"containers-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.client.close()  # ends the events stream
        self.publisher.flush(5)
