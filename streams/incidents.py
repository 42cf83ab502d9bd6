"""One incident per attack: merge the alerts one process raises for one trigger (pure).

The engine emits one alert per matching pattern: a memfd exec matches the sequence
"memfd_create then exec of that fd", the single-event "process image is a memfd" and, if
a script runtime created the memfd, "memfd_create by a runtime": three alerts of one
attack. ``IncidentMerger.offer`` turns them into one incident:

* Alerts are linked when they were raised by the same process (``process.entity_id`` of
  the triggering event, else host + pid + ``start_time_ns``) and share an evidence event
  (the same triggering event, or an event of the same sequence), and the later one's
  last event is within ``window_s`` (event time) of the incident's last event.
* The incident keeps the id of its first alert (deterministic: computed by the engine
  from the pattern and the evidence event ids, and the engine emits alerts in event
  order, so a replay of the same events yields the same id). Its ``rule`` is the pattern
  of highest severity (on a tie the one with more evidence events, then the one that
  began first, then the first to arrive), ``patterns`` lists every match, the
  techniques and tactics are the union, the evidence the union of events in time order.
* Publication: an incident with a critical pattern is passed on at once; below critical it
  is held for ``hold_s`` (event time, default 1 s, at most the window) so that one attack's
  patterns usually go out as one message. A pattern that joins after that (a later batch,
  an absence from the flush timer) re-publishes the same id with the grown incident, which
  sinks upsert like a grouped alert.
* An alert id already merged (the same events processed twice) yields nothing.

State is bounded by the window: ``expire`` drops incidents older than the window plus a
lag margin, measured against the newest event time seen (so a lagging worker or a replay
merges exactly like a live one).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.alerts import SEVERITY_ORDER, Alert, PatternRef, ProcessRef, Tactic, Technique

#: Beyond the window, incidents are kept this long (event time) for alerts still in flight.
LAG_MARGIN_S = 60.0
#: At most this many patterns merge into one incident (a runaway custom pattern set).
MAX_PATTERNS = 64

EventKey = tuple[str, str]


def entity_of(event: Mapping[str, Any]) -> str | None:
    """The process an event belongs to, unique across pid reuse; None without a pid (audit)."""
    proc = event.get("process") or {}
    if not isinstance(proc, Mapping):
        return None
    eid = proc.get("entity_id")
    if eid:
        return str(eid)
    pid = proc.get("pid")
    if pid is None:
        return None
    return f"{event.get('host') or ''}:{pid}:{proc.get('start_time_ns') or ''}"


def alert_entity(alert: Alert) -> str | None:
    """The process that raised an alert: the one of its last (triggering) evidence event."""
    if not alert.evidence:
        return None
    return entity_of(alert.evidence[-1])


def pattern_ref(alert: Alert) -> PatternRef:
    return PatternRef(
        id=alert.rule.id,
        name=alert.rule.name,
        severity=alert.rule.severity,
        techniques=list(alert.threat.technique.id),
        alert_id=alert.id,
    )


def _union_technique(members: Iterable[Alert]) -> Technique:
    ids: list[str] = []
    names: list[str] = []
    refs: list[str] = []
    for a in members:
        t = a.threat.technique
        for i, tid in enumerate(t.id):
            if tid in ids:
                continue
            ids.append(tid)
            names.append(t.name[i] if i < len(t.name) else "")
            refs.append(t.reference[i] if i < len(t.reference) else "")
    return Technique(id=ids, name=names if any(names) else [], reference=refs if any(refs) else [])


def _union_tactic(members: Iterable[Alert]) -> Tactic:
    ids: list[str] = []
    names: list[str] = []
    for a in members:
        t = a.threat.tactic
        for i, tid in enumerate(t.id):
            if tid in ids:
                continue
            ids.append(tid)
            names.append(t.name[i] if i < len(t.name) else "")
        for n in t.name[len(t.id) :]:  # names without ids (should not happen): keep them
            if n not in names:
                names.append(n)
    return Tactic(id=ids, name=names)


def _with_entity(alert: Alert) -> ProcessRef:
    if alert.process.entity_id is not None:
        return alert.process
    return alert.process.model_copy(update={"entity_id": alert_entity(alert)})


def _event_time(e: Mapping[str, Any]) -> float:
    t = e.get("time")
    return float(t) if isinstance(t, int | float) else 0.0


def merge(members: list[Alert]) -> Alert:
    """The incident of ``members`` (in arrival order; the first gives the id)."""
    first = members[0]
    if len(members) == 1:
        return first.model_copy(update={"patterns": [pattern_ref(first)], "process": _with_entity(first)})
    # Highest severity first; then the longest chain of evidence (a sequence explains more
    # than one of its events), the one that began earliest (the wider story, e.g. the exec
    # session a fileless exec ran in); then arrival order (sorted is stable).
    ranked = sorted(
        members, key=lambda a: (-SEVERITY_ORDER.get(a.rule.severity, 0), -len(a.evidence), a.first_seen)
    )
    primary = ranked[0]
    evidence: dict[str, dict[str, Any]] = {}
    for a in members:
        for e in a.evidence:
            evidence.setdefault(str(e.get("id")), e)
    events = sorted(evidence.values(), key=_event_time)
    first_seen = min(a.first_seen for a in members)
    return primary.model_copy(
        update={
            "id": first.id,
            "timestamp": min(a.timestamp for a in members),
            "threat": primary.threat.model_copy(
                update={"technique": _union_technique(ranked), "tactic": _union_tactic(ranked)}
            ),
            "evidence": events,
            "first_seen": first_seen,
            "last_seen": max(a.last_seen for a in members),
            "process": _with_entity(primary),
            "count": 1,
            "patterns": [pattern_ref(a) for a in ranked],
        }
    )


@dataclass
class _Incident:
    members: list[Alert]
    last_seen: float
    opened: float  # event time of the first alert's last event: the hold runs from it
    keys: set[EventKey] = field(default_factory=set)
    settled: bool = False


def _critical(members: Iterable[Alert]) -> bool:
    return any(a.rule.severity == "critical" for a in members)


class IncidentMerger:
    """Merges a partition's alerts into incidents; ``offer`` returns what to pass on (to
    grouping, then publication): an incident once settled, and each growth after that.

    Settling: an incident with a critical pattern settles at once (no delay for what matters
    most); below critical it is held until ``hold_s`` past its first event (event time: a
    later alert of the partition, or the flush timer's ``settle_due``) so that the patterns
    of one attack usually go out together, e.g. "memfd_create by python3" (warning) is held
    and the exec a millisecond later makes it the critical fileless incident it is.
    """

    def __init__(self, window_s: float = 5.0, hold_s: float = 1.0) -> None:
        self.window_s = window_s
        self.hold_s = min(hold_s, window_s)
        self._by_event: dict[EventKey, _Incident] = {}
        self._by_alert: dict[str, _Incident] = {}
        # Held incidents: a min-heap on the end of their hold (settled ones are skipped).
        self._held: list[tuple[float, int, _Incident]] = []
        self._n_held = 0
        self._seq = 0
        self._clock = 0.0

    def __len__(self) -> int:
        return len({id(i) for i in self._by_alert.values()})

    @property
    def held(self) -> int:
        return self._n_held

    def offer(self, alert: Alert) -> list[Alert]:
        """What to pass on after ``alert``: incidents whose hold ran out by its event time,
        then its own incident if settled (new, or grown); none if held or already merged."""
        if alert.id in self._by_alert:
            return []
        t = alert.last_seen.timestamp()
        self._clock = max(self._clock, t)
        out = self.settle_due(t)
        ent = alert_entity(alert) if self.window_s > 0 else None
        if ent is None:  # no process to tie it to (audit alerts), or merging off: alone, at once
            return [*out, merge([alert])]
        keys = {(ent, str(e.get("id"))) for e in alert.evidence if e.get("id") is not None}
        incident = None
        for k in keys:
            inc = self._by_event.get(k)
            if inc is not None and t - inc.last_seen <= self.window_s and len(inc.members) < MAX_PATTERNS:
                incident = inc
                break
        if incident is None:
            incident = _Incident([alert], t, t)
            self._seq += 1
            heapq.heappush(self._held, (t + self.hold_s, self._seq, incident))
            self._n_held += 1
        else:
            incident.members.append(alert)
            incident.last_seen = max(incident.last_seen, t)
        incident.keys |= keys
        for k in keys:
            self._by_event[k] = incident
        self._by_alert[alert.id] = incident
        if len(self._by_alert) > 4096 and len(self._by_alert) % 1024 == 0:
            self.expire()
        if not incident.settled and (self.hold_s <= 0 or _critical(incident.members)):
            self._settle(incident)
        if incident.settled:
            out.append(merge(incident.members))
        return out

    def _settle(self, incident: _Incident) -> None:
        if not incident.settled:
            incident.settled = True
            self._n_held -= 1

    def settle_due(self, now: float) -> list[Alert]:
        """Incidents held until ``now`` (event-time seconds; the timers pass the wall clock,
        which a worker lagging by more than the hold is ahead of: its held incidents go out
        before a late join, which then updates them) or earlier: settled, to pass on."""
        out: list[Alert] = []
        while self._held and self._held[0][0] <= now:
            _, _, inc = heapq.heappop(self._held)
            if not inc.settled:  # settled meanwhile (it turned critical): already passed on
                self._settle(inc)
                out.append(merge(inc.members))
        return out

    def expire(self) -> int:
        """Forget settled incidents past the window and margin, on event time (the newest
        alert seen), so a lagging worker and a replay merge exactly like a live one."""
        horizon = self._clock - self.window_s - LAG_MARGIN_S
        old = {id(i): i for i in self._by_alert.values() if i.settled and i.last_seen < horizon}
        for inc in old.values():
            for k in inc.keys:
                if self._by_event.get(k) is inc:
                    del self._by_event[k]
            for a in inc.members:
                self._by_alert.pop(a.id, None)
        return len(old)
