"""``/api/v1/security-events``: list (flat or grouped), stats, detail, delete, self-test."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from schemas.alerts import Severity
from sinks.shim import audit
from sinks.shim.auth import Admin
from sinks.shim.context import Ctx
from sinks.shim.filters import ContainerMode, EventFilter, Page
from sinks.shim.mitre import details, process_tree
from sinks.shim.models import Deleted, EventDetail, EventPage, SelfTest, Stats
from sinks.shim.publisher import PublishError

router = APIRouter(prefix="/api/v1/security-events", tags=["security-events"])

TECHNIQUE_RE = r"^[Tt]\d{4}(\.\d{3})?$"
SortKey = Literal["last_seen", "first_seen", "timestamp", "severity", "count", "rule"]


def _filter(
    severity: Annotated[list[Severity], Query(description="Repeatable: info, warning, error, critical")] = [],  # noqa: B006
    rule: Annotated[list[str], Query(description="Pattern id (rule.id), repeatable", max_length=50)] = [],  # noqa: B006
    technique: Annotated[list[str], Query(description="ATT&CK id, e.g. T1620 or T1055.008; repeatable")] = [],  # noqa: B006
    tactic: Annotated[list[str], Query(description="Tactic id or name, repeatable")] = [],  # noqa: B006
    container: Annotated[
        str | None, Query(description="Container id prefix or part of its name", max_length=128)
    ] = None,
    container_mode: Annotated[
        ContainerMode, Query(description="with (default): only container events; without: host only; all")
    ] = "with",
    host: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601 or epoch seconds; last_seen >= since")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601 or epoch seconds; first_seen <= until")
    ] = None,
    q: Annotated[
        str | None, Query(description="Free text: message, rule, process, container, host", max_length=200)
    ] = None,
) -> EventFilter:
    if since and until and _naive_utc(since) > _naive_utc(until):
        raise HTTPException(422, detail="since must not be after until")
    for name, values in (("rule", rule), ("tactic", tactic), ("container", [container]),
                         ("host", [host]), ("q", [q])):  # fmt: skip
        for v in values:
            if v is not None and CONTROL_RE.search(v):
                raise HTTPException(422, detail=f"{name} must not contain NUL or control characters")
    return EventFilter(
        severity=tuple(severity),
        rule=tuple(rule),
        technique=_techniques(technique),
        tactic=tuple(tactic),
        container=(container or "").strip() or None,
        container_mode=container_mode,
        host=(host or "").strip() or None,
        since=since,
        until=until,
        q=(q or "").strip() or None,
    )


CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _strict(name: str, value: str | None) -> str | None:
    """A delete criterion as given: blank, whitespace-only or NUL/control characters are a 422
    (they would match every row, or none, and either way not what the caller meant)."""
    if value is None:
        return None
    if not value.strip() or CONTROL_RE.search(value):
        raise HTTPException(
            422, detail=f"{name} must be a non-blank value without NUL or control characters, got {value!r}"
        )
    return value.strip()


def _techniques(values: list[str]) -> tuple[str, ...]:
    bad = [v for v in values if not re.match(TECHNIQUE_RE, v)]
    if bad:
        raise HTTPException(
            422,
            detail=f"technique must look like T1620 or T1055.008, got {bad[0]!r}",
        )
    return tuple(v.upper() for v in values)


def _naive_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=None) if dt.tzinfo is None else dt.astimezone(tz=None).replace(tzinfo=None)


Filter = Annotated[EventFilter, Depends(_filter)]
EventId = Annotated[str, Path(min_length=1, max_length=200, description="Alert id")]


@router.get("", summary="List security events (flat, or grouped with counts)", response_model=EventPage)
def list_events(
    ctx: Ctx,
    f: Filter,
    group: Annotated[bool, Query(description="Group identical alerts (pattern + container/host)")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort: SortKey = "last_seen",
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    page = Page(limit=limit, offset=offset, sort=sort, order=order)
    if group:
        total, items = ctx.store.list_groups(f, page)
    else:
        total, items = ctx.store.list_alerts(f, page)
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "grouped": group,
        "items": [ctx.decorate(i) for i in items],
    }


@router.get(
    "/stats",
    summary="Totals, by severity, technique, tactic, container, rule, and over time",
    response_model=Stats,
)
def stats(
    ctx: Ctx,
    f: Filter,
    bucket_s: Annotated[float | None, Query(ge=1, le=30 * 86400, description="Timeline bucket width")] = None,
) -> dict[str, Any]:
    return ctx.store.stats(f, bucket_s)


@router.post(
    "/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish a synthetic fileless exec",
    response_model=SelfTest,
)
def selftest(ctx: Ctx, who: Admin) -> dict[str, Any]:
    """memfd_create then execve of /proc/self/fd/N (host ``memtrail-selftest``, ``source: test``),
    published on the raw events topic: it comes back through the pipeline as a T1620 alert.
    Admin only, and rate-limited per credential (429 with Retry-After)."""
    ctx.selftest_limit.check(who.credential, "self-test events")
    if ctx.publisher is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no Kafka broker configured")
    try:
        batch = ctx.publisher.publish_selftest()
    except PublishError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    return {
        "published": True,
        "topic": ctx.settings.topics.raw,
        "key": batch.key,
        "host": batch.host,
        "events": [{"id": e.id, "syscall": e.syscall} for e in batch.events],
    }


@router.delete("", summary="Delete by ids or by filter", response_model=Deleted)
def delete_events(
    ctx: Ctx,
    who: Admin,
    request: Request,
    ids: Annotated[list[str], Query(description="Alert ids, repeatable", max_length=1000)] = [],  # noqa: B006
    severity: Annotated[list[Severity], Query()] = [],  # noqa: B006
    rule: Annotated[list[str], Query()] = [],  # noqa: B006
    technique: Annotated[list[str], Query()] = [],  # noqa: B006
    container: Annotated[str | None, Query(max_length=128)] = None,
    container_mode: Annotated[ContainerMode, Query(description="Defaults to all when deleting")] = "all",
    host: Annotated[str | None, Query(max_length=255)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    all: Annotated[bool, Query(description="Required to delete everything (no other criterion)")] = False,
) -> dict[str, int]:
    f = EventFilter(
        ids=tuple(_strict("ids", i) or "" for i in ids),
        severity=tuple(severity),
        rule=tuple(_strict("rule", r) or "" for r in rule),
        technique=_techniques(technique),
        container=_strict("container", container),
        container_mode=container_mode,
        host=_strict("host", host),
        since=since,
        until=until,
        q=_strict("q", q),
    )
    if f.is_empty() and not all:
        raise HTTPException(
            422,
            detail="give ids or at least one filter (or all=true to delete every event)",
        )
    n = ctx.store.delete_alerts(f)
    criteria = {k: v for k, v in dataclasses.asdict(f).items() if v not in ((), None)}
    audit.record(ctx.store, request, who, "events.delete", "filter", all=all, deleted=n,
                 criteria=_jsonable(criteria))  # fmt: skip
    return {"deleted": n}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


@router.get(
    "/{event_id}",
    summary="One event: evidence, process tree, MITRE details, Portainer link",
    response_model=EventDetail,
)
def get_event(ctx: Ctx, event_id: EventId) -> dict[str, Any]:
    doc = ctx.store.get_alert(event_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no security event {event_id!r}")
    ctx.decorate(doc)
    return {
        "event": doc,
        "process_tree": process_tree(doc.get("process") or {}),
        "mitre": details(doc.get("threat") or {}),
        "portainer": doc.get("portainer"),
    }


@router.delete("/{event_id}", summary="Delete one event", response_model=Deleted)
def delete_event(ctx: Ctx, who: Admin, request: Request, event_id: EventId) -> dict[str, int]:
    event_id = _strict("event id", event_id) or ""
    n = ctx.store.delete_alerts(EventFilter(ids=(event_id,), container_mode="all"))
    if not n:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no security event {event_id!r}")
    audit.record(ctx.store, request, who, "events.delete", event_id, deleted=n)
    return {"deleted": n}
