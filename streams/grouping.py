"""Alert grouping (pure): identical alerts within a window become one alert.

Identical = same rule id, container id (or host), process executable (or, without one, command
line) and pod; for an incident, those of its primary pattern when it settled
(``streams.incidents``: critical at once, else after a short hold). The first alert of a
group keeps its id; each later one raises ``count`` and ``last_seen`` and the group is
re-published under that id, so sinks update it in place. Windows run on event time
(the alerts' own ``first_seen``/``last_seen``), so a replay regroups identically.
An alert id already counted in a group (the same events processed twice, e.g. after a
restart) is ignored: grouping is idempotent. Alerts here are incidents
(``streams.incidents``): an incident offered again with more patterns updates its group
in place (same id, same count, higher ``revision``); the group's alert shows every pattern
of its incidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.alerts import SEVERITY_ORDER, Alert, PatternRef, Tactic, Technique

GroupKey = tuple[str, str | None, str | None, tuple[str | None, str | None] | None]


def group_key(alert: Alert) -> GroupKey:
    """Rule, container (the host for an alert outside containers: one node's attack must not
    become a count on another's), executable; and the pod. Alerts without an executable
    (Kubernetes audit: the actor is an API user) group by their command line
    (``user: verb URI``) so different requests, users and pods stay apart."""
    k = alert.kubernetes
    pod = (k.namespace, k.pod_name) if k is not None else None
    who = alert.process.executable or alert.process.command_line
    where = alert.container.id or f"host:{alert.host.name}"
    return (alert.rule.id, where, who, pod)


@dataclass
class _Group:
    key: GroupKey
    alert: Alert
    member_ids: set[str] = field(default_factory=set)


def _signature(alert: Alert) -> frozenset[str]:
    """What an incident holds: the ids of its pattern matches (the alert id when unmerged)."""
    return frozenset(p.alert_id for p in alert.patterns) or frozenset((alert.id,))


def _sev(rule_severity: str) -> int:
    return SEVERITY_ORDER.get(rule_severity, 0)


def absorb(base: Alert, other: Alert) -> Alert:
    """``base`` with ``other``'s patterns, techniques and tactics added; the rule of higher
    severity (``base``'s on a tie). Evidence, counts and times stay ``base``'s."""
    higher = _sev(other.rule.severity) > _sev(base.rule.severity)
    if (
        not higher
        and {p.id for p in other.patterns} <= {p.id for p in base.patterns}
        and set(other.threat.technique.id) <= set(base.threat.technique.id)
        and set(other.threat.tactic.id) <= set(base.threat.tactic.id)
    ):
        return base  # a repeat adds nothing but its count (the common case: no copies)
    rule = other.rule if higher else base.rule
    seen: dict[str, PatternRef] = {}
    for p in (*base.patterns, *other.patterns):
        seen.setdefault(p.id, p)
    patterns = sorted(seen.values(), key=lambda p: (p.id != rule.id, -_sev(p.severity)))
    t_ids = list(base.threat.technique.id)
    t_names = list(base.threat.technique.name)
    t_refs = list(base.threat.technique.reference)
    ot = other.threat.technique
    for i, tid in enumerate(ot.id):
        if tid not in t_ids:
            t_ids.append(tid)
            if t_names or ot.name:
                t_names += [""] * (len(t_ids) - 1 - len(t_names)) + [ot.name[i] if i < len(ot.name) else ""]
            if t_refs or ot.reference:
                t_refs += [""] * (len(t_ids) - 1 - len(t_refs)) + [
                    ot.reference[i] if i < len(ot.reference) else ""
                ]
    a_ids = list(base.threat.tactic.id)
    a_names = list(base.threat.tactic.name)
    oa = other.threat.tactic
    for i, aid in enumerate(oa.id):
        if aid not in a_ids:
            a_ids.append(aid)
            a_names.append(oa.name[i] if i < len(oa.name) else "")
    threat = base.threat.model_copy(
        update={
            "technique": Technique(id=t_ids, name=t_names, reference=t_refs),
            "tactic": Tactic(id=a_ids, name=a_names),
        }
    )
    return base.model_copy(update={"rule": rule, "patterns": patterns, "threat": threat})


class Grouper:
    def __init__(self, window_s: float = 60.0, max_members: int = 10_000) -> None:
        self.window_s = window_s
        self.max_members = max_members
        self._groups: dict[GroupKey, _Group] = {}
        # incident id -> (its group, what it held when last offered)
        self._incidents: dict[str, tuple[_Group, frozenset[str]]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def offer(self, alert: Alert) -> Alert | None:
        """The alert to publish for ``alert`` (new, its group updated, or its incident grown),
        or None if already counted."""
        sig = _signature(alert)
        known = self._incidents.get(alert.id)
        if known is not None:
            mine, held = known
            if sig <= held:
                return None
            self._incidents[alert.id] = (mine, held | sig)
            if self._groups.get(mine.key) is mine:
                return self._grow(mine, alert)
            # its group expired: the grown incident starts or joins a group like a new alert
        key = group_key(alert)
        group = self._groups.get(key)
        if group is not None and alert.id in group.member_ids:
            return None
        if group is None or _seconds(alert.first_seen, group.alert.last_seen) > self.window_s:
            group = _Group(key, alert, {alert.id})
            self._groups[key] = group
            self._incidents[alert.id] = (group, sig)
            return alert
        g = group.alert
        count = g.count + alert.count
        updated = absorb(g, alert).model_copy(
            update={
                "count": count,
                "first_seen": min(g.first_seen, alert.first_seen),
                "last_seen": max(g.last_seen, alert.last_seen),
                "revision": max(g.revision + 1, count),
            }
        )
        group.alert = updated
        if len(group.member_ids) < self.max_members:
            group.member_ids.add(alert.id)
            self._incidents[alert.id] = (group, sig)
        return updated

    def _grow(self, group: _Group, incident: Alert) -> Alert:
        """An incident of ``group`` gained patterns: the group's alert shows them (same id)."""
        g = group.alert
        # The group's own incident: its new evidence and rule, the group's counters.
        grown = absorb(incident, g) if incident.id == g.id else absorb(g, incident)
        updated = grown.model_copy(
            update={
                "id": g.id,
                "count": g.count,
                "first_seen": min(g.first_seen, incident.first_seen),
                "last_seen": max(g.last_seen, incident.last_seen),
                "revision": max(g.revision + 1, g.count),
            }
        )
        group.alert = updated
        return updated

    def expire(self, now: datetime) -> int:
        """Forget groups whose last alert is older than the window before ``now``; returns how many."""
        old = [k for k, g in self._groups.items() if _seconds(now, g.alert.last_seen) > self.window_s]
        for k in old:
            del self._groups[k]
        if old:
            self._incidents = {i: v for i, v in self._incidents.items() if self._groups.get(v[0].key) is v[0]}
        return len(old)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
