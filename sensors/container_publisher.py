"""The one producer of container metadata, shared by every watcher on a node.

Docker/podman (``containers.py``), CRI (``cri.py``) and Kubernetes (``k8s.py``) watchers
each learn container metadata their own way; all of it goes to the compacted containers
topic keyed by container id, which the stream tier joins as a table. One producer per
sensor process, not one per watcher.
"""

from __future__ import annotations

import threading

from confluent_kafka import Producer

from memtrail.core.kafka import producer_config
from memtrail.core.settings import Settings
from schemas.containers import ContainerMeta
from sensors import metrics as M


class ContainerPublisher:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.containers
        self._producer = Producer(producer_config(settings.kafka))
        self._lock = threading.Lock()  # watchers publish from their own threads
        self.published = 0

    def publish(self, meta: ContainerMeta) -> None:
        """Queue one record (keyed by container id; the latest record per id wins)."""
        with self._lock:
            self._producer.produce(self.topic, key=meta.id.encode(), value=meta.model_dump_json().encode())
            self._producer.poll(0)
            self.published += 1
        M.CONTAINERS.inc()

    def flush(self, timeout: float = 5.0) -> int:
        """Wait up to ``timeout`` seconds for delivery; returns how many records are still queued."""
        return self._producer.flush(timeout)
