"""Response shapes of the API, for the published OpenAPI document and for clients."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.alerts import Alert, Severity, Threat


class TechniqueLink(BaseModel):
    id: str = Field(examples=["T1055.008"])
    name: str | None = None
    url: str = Field(examples=["https://attack.mitre.org/techniques/T1055/008/"])


class PortainerInfo(BaseModel):
    container_id: str
    name: str | None
    image: str | None
    state: str | None
    endpoint_id: int
    endpoint_name: str
    url: str = Field(description="{portainer}/#!/{endpointId}/docker/containers/{containerId}")


class EventItem(Alert):
    """An alert as stored, plus links for display."""

    portainer: PortainerInfo | None = None
    techniques: list[TechniqueLink] = Field(default_factory=list)


class RuleRef(BaseModel):
    id: str
    name: str


class ContainerKey(BaseModel):
    id: str | None
    name: str | None


class GroupItem(BaseModel):
    """Identical alerts (same pattern, same container — or host) as one row."""

    key: str = Field(description="<rule id>|<container id or host:<name>>")
    rule: RuleRef
    patterns: list[str] = Field(
        default_factory=list, description="Every pattern id of the group's incidents, its rule first"
    )
    severity: Severity = Field(description="The highest in the group")
    threat: Threat
    container: ContainerKey
    host: str
    alerts: int = Field(description="Alerts in the group")
    count: int = Field(description="Occurrences: the sum of the alerts' counts")
    first_seen: str
    last_seen: str
    sample_id: str = Field(description="One alert of the group, for the detail view")
    sparkline: list[int] = Field(description="Occurrences per time slice over the page's span")
    portainer: PortainerInfo | None = None
    techniques: list[TechniqueLink] = Field(default_factory=list)


class EventPage(BaseModel):
    total: int
    limit: int
    offset: int
    grouped: bool
    items: list[EventItem] | list[GroupItem]


class Counts(BaseModel):
    alerts: int
    occurrences: int


class NamedCounts(Counts):
    id: str | None
    name: str | None = None


class TimelineSlot(Counts):
    start: str
    by_severity: dict[str, int]


class Totals(BaseModel):
    alerts: int
    occurrences: int
    containers: int
    hosts: int
    rules: int
    first_seen: str | None
    last_seen: str | None


class Stats(BaseModel):
    totals: Totals
    by_severity: dict[str, Counts]
    by_technique: list[NamedCounts]
    by_tactic: list[NamedCounts]
    by_container: list[NamedCounts]
    by_rule: list[NamedCounts]
    bucket_s: float
    timeline: list[TimelineSlot]


class MitreDetail(BaseModel):
    id: str
    name: str | None
    url: str
    tactics: list[str]
    source: Literal["catalog", "alert"]


class EventDetail(BaseModel):
    event: EventItem
    process_tree: list[dict[str, Any]] = Field(
        description="Root first; the alerting process last, `current: true`"
    )
    mitre: list[MitreDetail]
    portainer: PortainerInfo | None


class Deleted(BaseModel):
    deleted: int


class PublishedEvent(BaseModel):
    id: str
    syscall: str


class SelfTest(BaseModel):
    published: bool
    topic: str
    key: str
    host: str
    events: list[PublishedEvent]


class SensorStatus(BaseModel):
    host: str
    sensor_id: str
    status: Literal["up", "down"]
    last_heartbeat: float
    age_s: float
    interval_s: float
    uptime_s: float
    events_per_s: float
    events_total: int
    lost_total: int
    rate_limited_total: int
    spool_depth: int
    producer_errors_total: int
    kernel: str
    version: str
    programs: list[str]


class CollectorStatus(BaseModel):
    status: Literal["up", "degraded", "down"]
    sensors_up: int
    sensors_total: int
    sensors: list[SensorStatus]
    shim: dict[str, Any] = Field(description="The shim's own inputs: store, consumer, Portainer, OpenSearch")


class PatternSummary(BaseModel):
    id: str | None
    name: str | None
    description: str = ""
    severity: str | None
    techniques: list[str]
    tags: list[str]
    category: str | None
    source: str
    file: str
    custom: bool
    #: Switched off through the API (a built-in) or added switched off (a custom pattern).
    disabled: bool = False
    #: A built-in replaced through an older shim's API: ``POST /api/v1/patterns/{id}/enable`` restores it.
    overridden: bool = False


class PatternList(BaseModel):
    engine_available: bool
    total: int
    patterns: list[PatternSummary]
    errors: list[str]


class PatternChanged(BaseModel):
    id: str
    action: str  # deleted | disabled | enabled
    published: bool


class AuditRecord(BaseModel):
    id: str
    time: str
    actor: str  # "admin-token:<sha256 prefix>", "read-token:…", "basic:<user>", "no-auth"
    role: str
    action: str  # events.delete | pattern.upsert | pattern.delete | pattern.disable | pattern.enable
    target: str
    outcome: str  # ok | denied | failed
    client: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    total: int
    items: list[AuditRecord]


class PatternCreated(BaseModel):
    id: str
    published: bool
    topic: str
