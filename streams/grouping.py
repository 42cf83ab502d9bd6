"""Alert grouping (pure): identical alerts within a window become one alert.

Identical = same rule id, container id, process executable (or, without one, command
line) and pod. The first alert of a
group keeps its id; each later one raises ``count`` and ``last_seen`` and the group is
re-published under that id, so sinks update it in place. Windows run on event time
(the alerts' own ``first_seen``/``last_seen``), so a replay regroups identically.
An alert id already counted in a group (the same events processed twice, e.g. after a
restart) is ignored: grouping is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.alerts import Alert

GroupKey = tuple[str, str | None, str | None, tuple[str | None, str | None] | None]


def group_key(alert: Alert) -> GroupKey:
    """Rule, container, executable; and the pod. Alerts without an executable (Kubernetes
    audit: the actor is an API user) group by their command line (``user: verb URI``) so
    different requests, users and pods stay apart."""
    k = alert.kubernetes
    pod = (k.namespace, k.pod_name) if k is not None else None
    who = alert.process.executable or alert.process.command_line
    return (alert.rule.id, alert.container.id, who, pod)


@dataclass
class _Group:
    alert: Alert
    member_ids: set[str] = field(default_factory=set)


class Grouper:
    def __init__(self, window_s: float = 60.0, max_members: int = 10_000) -> None:
        self.window_s = window_s
        self.max_members = max_members
        self._groups: dict[GroupKey, _Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def offer(self, alert: Alert) -> Alert | None:
        """The alert to publish for ``alert`` (new, or its group updated), or None if already counted."""
        key = group_key(alert)
        group = self._groups.get(key)
        if group is not None and alert.id in group.member_ids:
            return None
        if group is None or _seconds(alert.first_seen, group.alert.last_seen) > self.window_s:
            self._groups[key] = _Group(alert, {alert.id})
            return alert
        g = group.alert
        updated = g.model_copy(
            update={
                "count": g.count + alert.count,
                "first_seen": min(g.first_seen, alert.first_seen),
                "last_seen": max(g.last_seen, alert.last_seen),
            }
        )
        group.alert = updated
        if len(group.member_ids) < self.max_members:
            group.member_ids.add(alert.id)
        return updated

    def expire(self, now: datetime) -> int:
        """Forget groups whose last alert is older than the window before ``now``; returns how many."""
        old = [k for k, g in self._groups.items() if _seconds(now, g.alert.last_seen) > self.window_s]
        for k in old:
            del self._groups[k]
        return len(old)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
