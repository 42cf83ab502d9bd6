"""Alerts (schema version 1), ECS-style: what sinks index and the shim shows.

As JSON an alert reads ``{"id", "@timestamp", "rule": {...}, "threat": {...},
"container": {...}, "process": {...}, "host": {...}, "evidence": [...], ...}``.
Grouping: identical alerts (same rule, container and executable) within the grouping
window are one alert whose ``count``/``last_seen`` grow; each update is re-published
with the same ``id`` and a higher ``count``, so sinks upsert it in place.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ALERT_SCHEMA_VERSION: Literal[1] = 1
Severity = Literal["info", "warning", "error", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}


class Rule(BaseModel):
    id: str = Field(description="Pattern id, e.g. MT-FILELESS-001")
    name: str
    description: str = ""
    severity: Severity
    version: str = "1"
    category: str | None = None
    tags: list[str] = Field(default_factory=list)


class Technique(BaseModel):
    id: list[str] = Field(description="ATT&CK ids, sub-technique then parent: ['T1055.008','T1055']")
    name: list[str] = Field(default_factory=list)
    reference: list[str] = Field(default_factory=list)


class Tactic(BaseModel):
    id: list[str] = Field(default_factory=list)
    name: list[str] = Field(default_factory=list)


class Threat(BaseModel):
    framework: str = "MITRE ATT&CK"
    technique: Technique
    tactic: Tactic = Field(default_factory=Tactic)


class ContainerRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    name: str | None = None
    image: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class KubernetesRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    pod_name: str | None = None
    namespace: str | None = None


class ProcessRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    pid: int | None = None
    entity_id: str | None = Field(
        default=None, description="The process's entity id (schemas.events.ProcessInfo.entity_id)"
    )
    ppid: int | None = None
    executable: str | None = None
    command_line: str | None = None
    name: str | None = None
    uid: int | None = None
    ancestors: list[dict[str, Any]] = Field(default_factory=list)


class HostRef(BaseModel):
    name: str


class Alert(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    v: Literal[1] = ALERT_SCHEMA_VERSION
    id: str = Field(description="Deterministic: a replay of the same events yields the same id")
    timestamp: datetime = Field(alias="@timestamp", description="Time of the first evidence event")
    rule: Rule
    threat: Threat
    container: ContainerRef = Field(default_factory=ContainerRef)
    kubernetes: KubernetesRef | None = None
    process: ProcessRef
    host: HostRef
    message: str = Field(description="One readable line")
    evidence: list[dict[str, Any]] = Field(description="The events that matched, in order")
    count: int = Field(default=1, ge=1, description="Occurrences grouped into this alert")
    first_seen: datetime
    last_seen: datetime
    source: str = "syscall"

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def stable_id(*parts: object) -> str:
    """Deterministic short id (hex) from parts: same inputs, same id, on any worker."""
    h = hashlib.blake2b(digest_size=10)
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\x1f")
    return h.hexdigest()
