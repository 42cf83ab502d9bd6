"""Pure OpenSearch bulk logic: index names, documents, NDJSON lines, per-item outcomes.

Exactly-once by id: each alert is indexed with ``_id`` = alert id, ``version`` = its
``revision`` (never below ``count``) and ``version_type=external``. A grouped alert
re-published with a higher count, or an incident a pattern joined, replaces the stored one
in place; a replay (same or lower revision) gets 409, which means "already there or newer"
and counts as delivered. ``create`` alone could not update a
grouped alert, and a plain ``index`` could let a late replay overwrite a newer count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.alerts import pattern_ids, publication_version

SEVERITY_NUMBER = {"info": 1, "warning": 2, "error": 3, "critical": 4}


def index_name(alert: dict[str, Any], prefix: str = "memtrail-alerts") -> str:
    """Daily index by the alert's own date (``@timestamp``, UTC), so updates land in the same index."""
    ts = datetime.fromisoformat(str(alert["@timestamp"]).replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return f"{prefix}-{ts.astimezone(UTC):%Y.%m.%d}"


def to_document(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as stored: the alert JSON plus ECS ``event.*`` fields for dashboards and
    ``memtrail.patterns``, every pattern id of the incident (``rule.id`` is the primary)."""
    doc = dict(alert)
    rule = alert.get("rule") or {}
    event = {
        "kind": "alert",
        "module": "memtrail",
        "dataset": "memtrail.alerts",
        "severity": SEVERITY_NUMBER.get(str(rule.get("severity")), 0),
        "id": alert.get("id"),
    }
    doc["event"] = {**event, **(alert.get("event") or {})}
    doc["memtrail"] = {**(alert.get("memtrail") or {}), "patterns": pattern_ids(alert)}
    return doc


def bulk_body(alerts: Sequence[dict[str, Any]], prefix: str = "memtrail-alerts") -> bytes:
    """NDJSON bulk body: one action line and one document line per alert."""
    lines: list[bytes] = []
    for a in alerts:
        action = {
            "index": {
                "_index": index_name(a, prefix),
                "_id": a["id"],
                "version": publication_version(a),
                "version_type": "external",
            }
        }
        lines.append(orjson.dumps(action))
        lines.append(orjson.dumps(to_document(a)))
    return b"\n".join(lines) + b"\n"


@dataclass
class BulkOutcome:
    """Positions (into the request's alerts) by what to do next."""

    ok: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)


def classify(response: dict[str, Any], n: int) -> BulkOutcome:
    """Split a bulk response: 2xx/409 delivered, 429/5xx retried, other 4xx rejected (dead letter)."""
    out = BulkOutcome()
    items = response.get("items") or []
    for i in range(n):
        if i >= len(items):  # a truncated response: send the rest again
            out.retry.append(i)
            continue
        (res,) = items[i].values()
        status = int(res.get("status", 500))
        if status < 300 or status == 409:
            out.ok.append(i)
        elif status == 429 or status >= 500:
            out.retry.append(i)
        else:
            err = res.get("error") or {}
            if isinstance(err, dict):
                reason = f"opensearch {status} {err.get('type', 'error')}: {err.get('reason', '')}".strip()
            else:
                reason = f"opensearch {status}: {err}"
            out.rejected[i] = reason
    return out
