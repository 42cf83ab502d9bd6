"""Versioned pydantic v2 models: the contract between sensor, stream tier, sinks and shim.

JSON Schema for each is exported to ``schemas/json/`` by ``python -m schemas.export``;
a test keeps the committed files in step with the models.
"""

from schemas.alerts import Alert
from schemas.containers import ContainerMeta
from schemas.events import Event, EventBatch, ProcessInfo
from schemas.heartbeat import SensorHeartbeat

__all__ = ["Alert", "ContainerMeta", "Event", "EventBatch", "ProcessInfo", "SensorHeartbeat"]
