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


#: The ECS version the documents and the index template follow (checked against the official
#: field definitions in tests/sinks/test_sink_ecs.py).
ECS_VERSION = "9.4.0"


def _split_techniques(tech: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """ECS keeps sub-techniques apart: ``technique.id`` parents only, ``technique.subtechnique.*``."""
    ids = list(tech.get("id") or [])
    names = list(tech.get("name") or [])
    refs = list(tech.get("reference") or [])
    parent: dict[str, list[Any]] = {"id": [], "name": [], "reference": []}
    sub: dict[str, list[Any]] = {"id": [], "name": [], "reference": []}
    for i, tid in enumerate(ids):
        into = sub if "." in tid else parent
        if tid in into["id"]:
            continue
        into["id"].append(tid)
        if i < len(names):
            into["name"].append(names[i])
        if i < len(refs):
            into["reference"].append(refs[i])
    return parent, sub


def to_document(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as an ECS document (``event.kind: alert``): ECS fields where ECS has them,
    everything Memtrail-only under ``memtrail.*``; :func:`from_document` gives the alert back."""
    rule = alert.get("rule") or {}
    threat = alert.get("threat") or {}
    parent, sub = _split_techniques(threat.get("technique") or {})
    container = alert.get("container") or {}
    k8s = alert.get("kubernetes") or {}
    proc = alert.get("process") or {}
    source = alert.get("source") or "syscall"
    technique: dict[str, Any] = dict(parent)
    if sub["id"]:
        technique["subtechnique"] = sub
    doc: dict[str, Any] = {
        "@timestamp": alert["@timestamp"],
        "ecs": {"version": ECS_VERSION},
        "message": alert.get("message"),
        "tags": list(rule.get("tags") or []),
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"] + (["process"] if source == "syscall" else ["configuration"]),
            "type": ["info"],
            "module": "memtrail",
            "dataset": "memtrail.alerts",
            "provider": source,
            "severity": SEVERITY_NUMBER.get(str(rule.get("severity")), 0),
            "id": alert.get("id"),
            "start": alert.get("first_seen"),
            "end": alert.get("last_seen"),
        },
        "rule": {
            "id": rule.get("id"),
            "name": rule.get("name"),
            "description": rule.get("description"),
            "version": rule.get("version"),
            "category": rule.get("category"),
            "ruleset": "memtrail",
        },
        "threat": {
            "framework": threat.get("framework"),
            "technique": technique,
            "tactic": threat.get("tactic") or {},
        },
        "container": {
            "id": container.get("id"),
            "name": container.get("name"),
            "image": {"name": container.get("image")},
            "labels": container.get("labels") or {},
        },
        "process": {
            "pid": proc.get("pid"),
            "entity_id": proc.get("entity_id"),
            "name": proc.get("name"),
            "executable": proc.get("executable"),
            "command_line": proc.get("command_line"),
            "parent": {"pid": proc.get("ppid")},
            "user": {"id": None if proc.get("uid") is None else str(proc["uid"])},
        },
        "host": {"name": (alert.get("host") or {}).get("name")},
        "memtrail": {
            "v": alert.get("v", 1),
            "id": alert.get("id"),
            "severity": rule.get("severity"),
            "count": alert.get("count", 1),
            "revision": alert.get("revision", alert.get("count", 1)),
            "first_seen": alert.get("first_seen"),
            "last_seen": alert.get("last_seen"),
            "source": source,
            "patterns": pattern_ids(alert),
            "incident": alert.get("patterns") or [],
            "technique_ids": list((threat.get("technique") or {}).get("id") or []),
            "process_ancestors": proc.get("ancestors") or [],
            "evidence": alert.get("evidence") or [],
        },
    }
    if k8s.get("pod_name") or k8s.get("namespace"):
        doc["orchestrator"] = {
            "type": "kubernetes",
            "namespace": k8s.get("namespace"),
            "resource": {"type": "pod", "name": k8s.get("pod_name")},
        }
    return doc


def from_document(doc: dict[str, Any]) -> dict[str, Any]:
    """The alert (``schemas.alerts.Alert`` JSON) an ECS document was made from."""
    m = doc.get("memtrail") or {}
    ev = doc.get("event") or {}
    rule = doc.get("rule") or {}
    threat = doc.get("threat") or {}
    tech = threat.get("technique") or {}
    known: dict[str, tuple[str, str]] = {}
    for part in (tech, tech.get("subtechnique") or {}):
        for i, tid in enumerate(part.get("id") or []):
            names, refs = part.get("name") or [], part.get("reference") or []
            known[tid] = (names[i] if i < len(names) else "", refs[i] if i < len(refs) else "")
    ids = list(m.get("technique_ids") or known)
    container = doc.get("container") or {}
    proc = doc.get("process") or {}
    orch = doc.get("orchestrator") or {}
    uid = (proc.get("user") or {}).get("id")
    alert: dict[str, Any] = {
        "v": m.get("v", 1),
        "id": m.get("id") or ev.get("id"),
        "@timestamp": doc.get("@timestamp"),
        "rule": {
            "id": rule.get("id"),
            "name": rule.get("name"),
            "description": rule.get("description") or "",
            "severity": m.get("severity"),
            "version": rule.get("version") or "1",
            "category": rule.get("category"),
            "tags": doc.get("tags") or [],
        },
        "threat": {
            "framework": threat.get("framework") or "MITRE ATT&CK",
            "technique": {
                "id": ids,
                "name": [n for t in ids if (n := known.get(t, ("", ""))[0])],
                "reference": [r for t in ids if (r := known.get(t, ("", ""))[1])],
            },
            "tactic": threat.get("tactic") or {},
        },
        "container": {
            "id": container.get("id"),
            "name": container.get("name"),
            "image": (container.get("image") or {}).get("name"),
            "labels": container.get("labels") or {},
        },
        "kubernetes": (
            {"pod_name": (orch.get("resource") or {}).get("name"), "namespace": orch.get("namespace")}
            if orch
            else None
        ),
        "process": {
            "pid": proc.get("pid"),
            "ppid": (proc.get("parent") or {}).get("pid"),
            "entity_id": proc.get("entity_id"),
            "executable": proc.get("executable"),
            "command_line": proc.get("command_line"),
            "name": proc.get("name"),
            "uid": int(uid) if isinstance(uid, str) and uid.isdigit() else None,
            "ancestors": m.get("process_ancestors") or [],
        },
        "host": doc.get("host") or {},
        "message": doc.get("message") or "",
        "evidence": m.get("evidence") or [],
        "count": m.get("count", 1),
        "patterns": m.get("incident") or [],
        "revision": m.get("revision", m.get("count", 1)),
        "first_seen": m.get("first_seen"),
        "last_seen": m.get("last_seen"),
        "source": m.get("source") or "syscall",
    }
    return alert


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
