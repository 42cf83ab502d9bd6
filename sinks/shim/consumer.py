"""Alerts and sensor heartbeats from Kafka into the shim's store, in the one sink loop.

The store is a :class:`sinks.base.Sink` run by ``SinkRunner`` on two topics (own consumer
group ``memtrail-shim``): offsets are committed only after the store accepted a batch, a
store that fails holds the batch (backpressure) and it is delivered again; upserts by id make
a re-read harmless. A message that is not a valid Alert/SensorHeartbeat goes to the
dead-letter topic with the reason and consumption continues.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ValidationError

from memtrail.core.settings import Settings
from schemas.alerts import Alert
from schemas.heartbeat import SensorHeartbeat
from sinks.base import Incoming, Rejected, SinkBackpressure, SinkRunner
from sinks.shim.store import Store

M = TypeVar("M", bound=BaseModel)


class Validated(dict[str, Any]):
    """The document of a message ``ShimConsumer`` parsed, carrying the model it validated, so
    the store gets that model instead of validating the message a second time."""

    model: BaseModel


def _model(item: Incoming, cls: type[M]) -> M:
    doc = item.alert
    model = doc.model if isinstance(doc, Validated) else None
    return model if isinstance(model, cls) else cls.model_validate(doc)


class StoreSink:
    """Upserts alerts (newest copy of an id wins) and heartbeats into the shim's store."""

    name = "shim"

    def __init__(self, store: Store, alerts_topic: str) -> None:
        self.store = store
        self.alerts_topic = alerts_topic

    async def start(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        alerts: dict[str, Alert] = {}
        beats: list[SensorHeartbeat] = []
        for item in batch:
            if item.topic == self.alerts_topic:
                alert = _model(item, Alert)
                prev = alerts.get(alert.id)
                if prev is None or _version(alert) >= _version(prev):
                    alerts[alert.id] = alert
            else:
                beats.append(_model(item, SensorHeartbeat))
        try:
            self.store.upsert_alerts(alerts.values())
            self.store.upsert_heartbeats(beats)
        except Exception as exc:  # store down: hold the batch, try again
            raise SinkBackpressure(f"store rejected a batch: {exc}", retry_after=2.0) from exc
        return []

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class ShimConsumer:
    """The store sink on a background thread, with the shim's own message counter."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        group_id: str = "memtrail-shim",
        registry: CollectorRegistry | None = None,
        batch_size: int = 500,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.m_consumed = Counter(
            "memtrail_shim_messages_total",
            "Messages consumed by the shim",
            ["topic", "result"],
            registry=registry or CollectorRegistry(),
        )
        topics = settings.topics
        self.runner = SinkRunner(
            StoreSink(store, topics.alerts),
            settings,
            group_id=group_id,
            batch_size=batch_size,
            topics=(topics.alerts, topics.heartbeats),
            parse=self._parse,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _parse(self, topic: str, value: bytes | None) -> dict[str, Any]:
        is_alert = topic == self.settings.topics.alerts
        label = "alerts" if is_alert else "heartbeats"
        try:
            model = (Alert if is_alert else SensorHeartbeat).model_validate_json(value or b"")
        except ValidationError as exc:
            self.m_consumed.labels(topic=label, result="invalid").inc()
            raise ValueError(f"invalid {'alert' if is_alert else 'heartbeat'}: {exc}") from None
        self.m_consumed.labels(topic=label, result="ok").inc()
        doc = Validated(orjson.loads(model.model_dump_json(by_alias=True)))
        doc.model = model
        return doc

    @property
    def assigned(self) -> threading.Event:
        return self.runner.assigned

    @property
    def last_error(self) -> str | None:
        return self.runner.last_error

    def start(self) -> ShimConsumer:
        self._thread = threading.Thread(
            target=self.runner.run, args=(self._stop,), name="shim-consumer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())


def _version(alert: Alert) -> int:
    """Newer copy of the same id: more repeats or more patterns (``revision``, never below count)."""
    return max(alert.revision, alert.count)
