"""Settings shared by every component (environment prefix ``MEMTRAIL_``, nested with ``__``).

Component-specific settings (sensor filters, sink URLs, shim auth) live beside their
component; this module holds only what several of them must agree on: the broker,
topic names and where patterns come from.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATTERNS_DIR = REPO_ROOT / "patterns" / "library"


class Topics(BaseModel):
    """Kafka topic names: the contract between sensor, stream tier, sinks and shim."""

    raw: str = "memtrail.events.raw"
    enriched: str = "memtrail.events.enriched"
    alerts: str = "memtrail.alerts"
    containers: str = "memtrail.containers"
    deadletter: str = "memtrail.deadletter"
    heartbeats: str = "memtrail.sensors.heartbeat"
    patterns: str = "memtrail.patterns"
    k8s_audit: str = "memtrail.k8s.audit"


class KafkaSettings(BaseModel):
    #: Bootstrap servers; empty means "start the embedded local broker" (Tansu).
    bootstrap: str | None = None
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: librdkafka properties merged into every client (e.g. security.protocol, sasl.*).
    extra: dict[str, str] = Field(default_factory=dict)
    #: Set by the launcher when the embedded Tansu broker is in use: enables its quirk settings.
    local_broker: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_", env_nested_delimiter="__", extra="ignore")

    host_name: str = Field(default_factory=socket.gethostname)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: Topics = Field(default_factory=Topics)
    patterns_dirs: list[Path] = Field(default_factory=lambda: [DEFAULT_PATTERNS_DIR])
    log_level: str = "INFO"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
