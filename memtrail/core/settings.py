"""Settings shared by every component (environment prefix ``MEMTRAIL_``, nested with ``__``).

Component-specific settings (sensor filters, sink URLs, shim auth) live beside their
component; this module holds only what several of them must agree on: the broker,
topic names and where patterns come from.
"""

from __future__ import annotations

import socket
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The shipped pattern library (package data of ``patterns``, wherever it is installed).
DEFAULT_PATTERNS_DIR = Path(str(files("patterns") / "library"))


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


class KafkaSecurity(BaseModel):
    """TLS and SASL for every Kafka client, declared once.

    Translated for librdkafka (sensor, sinks, shim, webhook: ``memtrail.core.kafka.security_config``)
    and for the Faust worker's aiokafka (``streams.kafka_auth.faust_credentials``), so one
    ``MEMTRAIL_KAFKA__SECURITY__*`` block secures the whole pipeline (Strimzi, MSK, Confluent Cloud).
    """

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: PEM CA bundle that signed the brokers' certificates (None: the system store).
    ca_file: Path | None = None
    #: Client certificate and key (PEM) for mutual TLS.
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    #: Check that the broker's certificate names the host connected to.
    verify_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @field_validator(
        "ca_file", "cert_file", "key_file", "key_password", "sasl_username", "sasl_password", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        """An empty variable (compose's ``${VAR:-}``, a blank Helm value) means not set."""
        return None if v == "" else v

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"protocol {self.protocol} needs sasl_username and sasl_password")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mutual TLS needs both cert_file and key_file")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError(f"ca_file/cert_file are TLS settings but protocol is {self.protocol}")
        return self


class KafkaSettings(BaseModel):
    #: Bootstrap servers; empty means "start the embedded local broker" (Tansu).
    bootstrap: str | None = None
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: TLS/SASL for every client (librdkafka and the Faust worker).
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    #: librdkafka-only properties merged last into every librdkafka client (not the Faust worker).
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


class SettingsError(ValueError):
    """Settings from the environment that do not validate: one readable line per problem."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = "__".join(str(p).upper() for p in err["loc"])
            name = f"MEMTRAIL_{where}" if where else "MEMTRAIL_*"
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("; ".join(problems)) from None
