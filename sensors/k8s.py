"""Kubernetes pods on this node → ContainerMeta records on memtrail.containers.

In a DaemonSet the sensor lists the pods scheduled on its node from the API server
(in-cluster service account, ``spec.nodeName`` field selector) every ``interval_s``
and publishes a record for each container whose metadata changed, keyed by the bare
container id (``containerd://<id>`` → ``<id>``), with pod name, namespace, uid and
labels. :func:`metas_from_pod` is the pure part.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from memtrail.kafka import producer_config
from memtrail.settings import Settings
from schemas.containers import ContainerMeta
from sensors import metrics as M

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
    def __init__(
        self,
        settings: Settings,
        api: str,
        token: str | None,
        node: str,
        *,
        verify: str | bool = True,
        interval_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.node = node
        self.interval_s = interval_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=api, headers=headers, verify=verify, timeout=10.0)
        self.producer = Producer(producer_config(settings.kafka))
        self._known: dict[str, tuple[Any, ...]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def in_cluster(cls, settings: Settings, interval_s: float = 10.0) -> PodWatcher | None:
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
        )
        node = os.environ.get("MEMTRAIL_NODE_NAME") or settings.host_name
        if not host or not (SA_DIR / "token").exists():
            return None
        ca = SA_DIR / "ca.crt"
        return cls(
            settings,
            f"https://{host}:{port}",
            (SA_DIR / "token").read_text().strip(),
            node,
            verify=str(ca) if ca.exists() else True,
            interval_s=interval_s,
        )

    def sync(self) -> int:
        """List this node's pods; publish containers that are new or changed. Returns how many."""
        r = self.client.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.node}"})
        r.raise_for_status()
        n = 0
        seen = set()
        for pod in r.json().get("items") or []:
            for m in metas_from_pod(pod, self.settings.host_name):
                seen.add(m.id)
                sig = (m.name, m.image, m.state, m.pod_name, m.pod_namespace, tuple(sorted(m.labels.items())))
                if self._known.get(m.id) == sig:
                    continue
                self._known[m.id] = sig
                self.producer.produce(
                    self.settings.topics.containers, key=m.id.encode(), value=m.model_dump_json().encode()
                )
                M.CONTAINERS.inc()
                n += 1
        for gone in set(self._known) - seen:  # pod deleted: keep the record, mark it removed
            del self._known[gone]
            rec = ContainerMeta(id=gone, host=self.settings.host_name, state="removed", updated=time.time())
            self.producer.produce(
                self.settings.topics.containers, key=gone.encode(), value=rec.model_dump_json().encode()
            )
            n += 1
        self.producer.flush(10)
        return n

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Kubernetes pod list for node %s failed: %s", self.node, exc)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="k8s-pods", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.client.close()
        self.producer.flush(5)
