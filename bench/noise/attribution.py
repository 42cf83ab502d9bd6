"""Which workload raised an alert, and the workload × pattern table (pure: no I/O).

Other helpers' attack triggers run on this machine at the same time, so an alert counts
against a workload only when the kernel's own facts tie it there: the container id of
a container workload, or the cgroup2 id of the cgroup the runner put the workload (or
its podman client, conmon and runc) in; failing both, the workload's root pid among the
alert's process, parent or ancestors while the workload ran. Everything else is
"unattributed" and listed apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.alerts import SEVERITY_ORDER

WARN = SEVERITY_ORDER["warning"]


@dataclass
class Identity:
    workload: str
    container_ids: set[str] = field(default_factory=set)
    cgroup_ids: set[int] = field(default_factory=set)
    root_pids: set[int] = field(default_factory=set)
    start: float = 0.0  # epoch seconds
    end: float = 0.0


def latest(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One line per alert id: the last update (grouped alerts are re-published with a higher count)."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for a in alerts:
        prev = by_id.get(a["id"])
        if prev is None or a.get("count", 1) >= prev.get("count", 1):
            by_id[a["id"]] = a
    return list(by_id.values())


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _pids(alert: Mapping[str, Any]) -> set[int]:
    out: set[int] = set()
    procs = [alert.get("process") or {}]
    procs += [ev.get("process") or {} for ev in alert.get("evidence") or ()]
    for p in procs:
        out.update(x for x in (p.get("pid"), p.get("ppid")) if isinstance(x, int))
        out.update(a["pid"] for a in p.get("ancestors") or () if isinstance(a.get("pid"), int))
    return out


def attribute(alert: Mapping[str, Any], identities: Iterable[Identity]) -> str | None:
    ids = list(identities)
    cid = (alert.get("container") or {}).get("id")
    if cid:
        for ident in ids:
            if cid in ident.container_ids:
                return ident.workload
        return None
    cgroups = {ev.get("cgroup_id") for ev in alert.get("evidence") or ()}
    for ident in ids:
        if cgroups & ident.cgroup_ids:
            return ident.workload
    when = _epoch(alert.get("first_seen") or alert.get("@timestamp"))
    pids = _pids(alert)
    for ident in ids:
        in_time = when is None or ident.start - 1 <= when <= ident.end + 1
        if in_time and pids & ident.root_pids:
            return ident.workload
    return None


@dataclass
class Row:
    rule: str
    name: str
    severity: str
    alerts: int = 0  # distinct alerts
    count: int = 0  # occurrences (grouped counts summed)
    example: str = ""  # one executable + command line, for tuning


def table(
    alerts: Iterable[Mapping[str, Any]], identities: Iterable[Identity]
) -> tuple[dict[str, dict[str, Row]], dict[str, Row]]:
    """(workload → rule → Row, unattributed rule → Row)."""
    ids = list(identities)
    per: dict[str, dict[str, Row]] = {i.workload: {} for i in ids}
    other: dict[str, Row] = {}
    for a in latest(alerts):
        who = attribute(a, ids)
        rows = per[who] if who is not None else other
        rule = a["rule"]
        row = rows.get(rule["id"])
        if row is None:
            proc = a.get("process") or {}
            example = f"{proc.get('executable')} :: {(proc.get('command_line') or '')[:120]}"
            row = rows[rule["id"]] = Row(rule["id"], rule.get("name", ""), rule["severity"], example=example)
        row.alerts += 1
        row.count += int(a.get("count", 1))
    return per, other


def warn_or_above(rows: Mapping[str, Row]) -> int:
    return sum(r.alerts for r in rows.values() if SEVERITY_ORDER.get(r.severity, 0) >= WARN)
