"""Kubernetes pods on this node → ContainerMeta records on memtrail.containers.

In a DaemonSet the sensor lists the pods scheduled on its node (in-cluster service account,
``spec.nodeName`` field selector), then WATCHES them from the list's resourceVersion with
lightkube: one list per start or expiry (410 Gone), not one per interval. Each container
whose metadata changed is published, keyed by the bare container id
(``containerd://<id>`` → ``<id>``), with pod name, namespace, uid and labels; a deleted pod's
containers get a ``removed`` record. The service-account token is re-read from its file when
the API server answers 401 (the kubelet rotates projected tokens). :func:`metas_from_pod` is
the pure part.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ALL_NS, ApiError, Client, ConfigError, KubeConfig
from lightkube.operators import BinaryOperator, SequenceOperator
from lightkube.resources.core_v1 import Pod

from memtrail.core.settings import Settings
from schemas.containers import ContainerMeta
from sensors.container_publisher import ContainerPublisher

log = logging.getLogger(__name__)

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_RUNTIMES = {"containerd": "containerd", "docker": "docker", "cri-o": "cri-o", "crio": "cri-o"}


def split_container_id(raw: str) -> tuple[str, str | None]:
    """``containerd://abc`` → (``abc``, ``containerd``)."""
    scheme, sep, cid = raw.partition("://")
    return (cid, _RUNTIMES.get(scheme, scheme)) if sep else (raw, None)


def metas_from_pod(pod: dict[str, Any], host: str | None = None) -> list[ContainerMeta]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    privileged = {
        c.get("name"): bool((c.get("securityContext") or {}).get("privileged"))
        for c in (spec.get("containers") or [])
        + (spec.get("initContainers") or [])
        + (spec.get("ephemeralContainers") or [])
    }
    out = []
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if not cs.get("containerID"):
                continue  # not started yet
            cid, runtime = split_container_id(cs["containerID"])
            state = next(iter(cs.get("state") or {}), None)
            out.append(
                ContainerMeta(
                    id=cid,
                    name=cs.get("name"),
                    image=cs.get("image"),
                    image_id=cs.get("imageID"),
                    labels=labels,
                    runtime=runtime,
                    pod_name=meta.get("name"),
                    pod_namespace=meta.get("namespace"),
                    pod_uid=meta.get("uid"),
                    privileged=privileged.get(cs.get("name")),
                    host=host or spec.get("nodeName"),
                    state=state,
                    updated=time.time(),
                )
            )
    return out


class PodWatcher:
    """List, then watch, the pods of one node; publish what changed."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        node: str,
        *,
        watch_timeout_s: int = 300,
        publisher: ContainerPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.node = node
        self.watch_timeout_s = watch_timeout_s
        self.publisher = publisher or ContainerPublisher(settings)
        self._known: dict[str, tuple[Any, ...]] = {}  # container id -> what was last published
        self._pods: dict[str, set[str]] = {}  # pod uid -> its container ids
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relists = 0
        self._last_error: tuple[str, float] = ("", 0.0)

    @classmethod
    def in_cluster(cls, settings: Settings, publisher: ContainerPublisher | None = None) -> PodWatcher | None:
        if not os.environ.get("KUBERNETES_SERVICE_HOST") or not (SA_DIR / "token").exists():
            return None
        node = os.environ.get("MEMTRAIL_NODE_NAME") or settings.host_name
        try:
            config = KubeConfig.from_service_account(SA_DIR)
        except (ConfigError, KeyError) as exc:
            log.warning("no in-cluster Kubernetes config: %s", exc)
            return None
        return cls(
            settings,
            Client(config=config, timeout=httpx2.Timeout(10.0, read=None)),
            node,
            publisher=publisher,
        )

    @property
    def _fields(self) -> dict[str, str | BinaryOperator | SequenceOperator]:
        return {"spec.nodeName": self.node}

    def _publish(self, meta: ContainerMeta) -> None:
        self.publisher.publish(meta)

    def _removed(self, cid: str) -> None:
        self._known.pop(cid, None)
        self._publish(
            ContainerMeta(id=cid, host=self.settings.host_name, state="removed", updated=time.time())
        )

    def apply(self, op: str, pod: dict[str, Any]) -> int:
        """One watch event (ADDED, MODIFIED, DELETED) → records published; returns how many."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        before = self._pods.pop(uid, set())
        n = 0
        if op == "DELETED":
            for cid in before:
                self._removed(cid)
                n += 1
            return n
        now: set[str] = set()
        for m in metas_from_pod(pod, self.settings.host_name):
            now.add(m.id)
            sig = (m.name, m.image, m.state, m.pod_name, m.pod_namespace, tuple(sorted(m.labels.items())))
            if self._known.get(m.id) != sig:
                self._known[m.id] = sig
                self._publish(m)
                n += 1
        for cid in before - now:  # a restarted container got a new id
            self._removed(cid)
            n += 1
        self._pods[uid] = now
        return n

    def relist(self) -> str:
        """List this node's pods, reconcile with what is known; the list's resourceVersion."""
        pods = self.client.list(Pod, namespace=ALL_NS, fields=self._fields)
        items = [p.to_dict() for p in pods]
        self.relists += 1
        seen = {str((p.get("metadata") or {}).get("uid") or "") for p in items}
        for uid in set(self._pods) - seen:  # deleted while no watch ran
            self.apply("DELETED", {"metadata": {"uid": uid}})
        for pod in items:
            self.apply("ADDED", pod)
        self.publisher.flush(10)
        return pods.resourceVersion

    def watch(self, resource_version: str) -> Iterable[int]:
        """Apply watch events from ``resource_version``; yields per event (lets a caller stop)."""
        for op, pod in self.client.watch(
            Pod,
            namespace=ALL_NS,
            fields=self._fields,
            resource_version=resource_version,
            server_timeout=self.watch_timeout_s,
        ):
            n = self.apply(op, pod.to_dict())
            yield n

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                rv = self.relist()
                backoff = 1.0
                for _ in self.watch(rv):
                    if self._stop.is_set():
                        return
            except ApiError as exc:
                if exc.status.code == 410:  # the resourceVersion expired: list again, then watch
                    log.info("pod watch for node %s expired: relisting", self.node)
                    continue
                self._warn(f"Kubernetes API error {exc.status.code}: {exc.status.message}")
            except (httpx2.HTTPError, ConfigError, ValueError) as exc:
                self._warn(f"Kubernetes pod watch for node {self.node} failed: {exc}")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _warn(self, message: str) -> None:
        """One line per distinct failure per minute: an API outage must not flood the log."""
        last, at = self._last_error
        if message != last or time.monotonic() - at > 60:
            log.warning("%s", message)
            self._last_error = (message, time.monotonic())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="k8s-pods", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.publisher.flush(5)
