"""One incident per attack (streams.incidents): pure merge rules, then the real engine and library."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from memtrail.core.settings import Settings
from schemas.alerts import Alert, HostRef, ProcessRef, Rule, Severity, Tactic, Technique, Threat
from streams.correlate import Correlator, default_engine_factory
from streams.grouping import Grouper
from streams.incidents import IncidentMerger, entity_of
from tests.streams.helpers import event, memfd_pair

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(
    eid: str, pid: int = 10, t: float = 0.0, start: int | None = 555, entity: str | None = None
) -> dict[str, Any]:
    proc: dict[str, Any] = {"pid": pid, "exe": "/memfd:x (deleted)", "start_time_ns": start}
    if entity:
        proc["entity_id"] = entity
    return {"id": eid, "host": "h", "time": T0.timestamp() + t, "syscall": "execve", "process": proc}


def alert(
    rule: str,
    evidence: list[dict[str, Any]],
    severity: Severity = "error",
    techniques: tuple[str, ...] = ("T1620",),
    tactics: tuple[str, ...] = ("TA0005",),
) -> Alert:
    first = datetime.fromtimestamp(evidence[0]["time"], UTC)
    last = datetime.fromtimestamp(evidence[-1]["time"], UTC)
    return Alert(
        id=f"{rule}:" + ",".join(e["id"] for e in evidence),
        timestamp=first,  # type: ignore[call-arg]  # populate_by_name: the alias is @timestamp
        rule=Rule(id=rule, name=f"name of {rule}", severity=severity),
        threat=Threat(
            technique=Technique(id=list(techniques), name=[f"n{t}" for t in techniques]),
            tactic=Tactic(id=list(tactics), name=[f"n{t}" for t in tactics]),
        ),
        process=ProcessRef(pid=evidence[-1].get("process", {}).get("pid"), executable="/memfd:x (deleted)"),
        host=HostRef(name="h"),
        message=f"message of {rule}",
        evidence=evidence,
        first_seen=first,
        last_seen=last,
    )


def last(out: list[Alert]) -> Alert | None:
    return out[-1] if out else None


def test_patterns_on_the_same_trigger_are_one_incident_at_the_highest_severity() -> None:
    m = IncidentMerger(window_s=5, hold_s=0)
    exec_ev = ev("e1")
    a = last(m.offer(alert("MT-A-001", [exec_ev], "error", ("T1027",), ("TA0005",))))
    b = last(m.offer(alert("MT-A-002", [exec_ev], "critical", ("T1620", "T1027"), ("TA0002", "TA0005"))))
    assert a is not None and b is not None
    assert b.id == a.id == "MT-A-001:e1"  # the first alert's id, kept
    assert b.rule.id == "MT-A-002" and b.rule.severity == "critical"  # primary = highest severity
    assert b.pattern_ids() == ["MT-A-002", "MT-A-001"]
    assert [(p.id, p.severity, p.techniques, p.alert_id) for p in b.patterns] == [
        ("MT-A-002", "critical", ["T1620", "T1027"], "MT-A-002:e1"),
        ("MT-A-001", "error", ["T1027"], "MT-A-001:e1"),
    ]
    assert b.threat.technique.id == ["T1620", "T1027"]  # union, primary's first
    assert b.threat.technique.name == ["nT1620", "nT1027"]  # names stay aligned with ids
    assert b.threat.tactic.id == ["TA0002", "TA0005"] and b.threat.tactic.name == ["nTA0002", "nTA0005"]
    assert [e["id"] for e in b.evidence] == ["e1"] and b.count == 1
    assert b.process.entity_id == "h:10:555"
    assert b.message == "message of MT-A-002"
    assert a.pattern_ids() == ["MT-A-001"]  # a lone alert lists itself


def test_a_sequence_and_an_alert_on_one_of_its_events_are_one_incident() -> None:
    m = IncidentMerger(window_s=5, hold_s=0)
    create, exe = ev("c1", t=0.0), ev("e1", t=0.5)
    first = last(m.offer(alert("MT-MEMFD", [create], "warning")))  # no hold: passed on at once
    seq = last(m.offer(alert("MT-SEQ", [create, exe], "critical")))  # a later batch: the same id grows
    single = last(m.offer(alert("MT-IMG", [exe], "critical")))
    assert first is not None and seq is not None and single is not None
    assert first.id == seq.id == single.id
    # critical tie: the sequence (two evidence events) is primary over the single event
    assert single.pattern_ids() == ["MT-SEQ", "MT-IMG", "MT-MEMFD"]
    assert [e["id"] for e in single.evidence] == ["c1", "e1"]
    assert single.first_seen == T0 and single.last_seen == T0 + timedelta(seconds=0.5)


def test_two_triggers_of_one_process_stay_two_incidents() -> None:
    m = IncidentMerger(window_s=5, hold_s=0)
    a = last(m.offer(alert("MT-A", [ev("e1", t=0)])))
    b = last(m.offer(alert("MT-B", [ev("e2", t=1)])))
    assert a is not None and b is not None and a.id != b.id
    assert b.pattern_ids() == ["MT-B"]


def test_other_processes_do_not_merge_even_on_a_reused_pid() -> None:
    m = IncidentMerger(window_s=5, hold_s=0)
    a = last(m.offer(alert("MT-A", [ev("e1", start=1)])))
    b = last(m.offer(alert("MT-B", [ev("e1", start=2)])))  # same pid, other start time: another process
    assert a is not None and b is not None and a.id != b.id
    # the sensor's entity id wins over host/pid/start time when present
    assert entity_of(ev("x", entity="boot:10:77")) == "boot:10:77"
    assert entity_of(ev("x")) == "h:10:555"
    assert entity_of({"process": {"user": "alice"}}) is None


def test_the_window_runs_on_event_time_and_expires() -> None:
    m = IncidentMerger(window_s=2, hold_s=0)
    shared = ev("c1", t=0)
    a = last(m.offer(alert("MT-A", [shared])))
    late = last(m.offer(alert("MT-SEQ", [shared, ev("e9", t=3)])))  # 3 s after the incident: its own
    assert a is not None and late is not None and late.id != a.id and late.pattern_ids() == ["MT-SEQ"]
    m.offer(alert("MT-Z", [ev("z1", t=500)]))  # event time moves on
    assert m.expire() == 2 and len(m) == 1


def test_an_alert_merged_twice_yields_nothing_and_audit_alerts_stay_alone() -> None:
    m = IncidentMerger(window_s=5, hold_s=0)
    a = alert("MT-A", [ev("e1")])
    assert m.offer(a)
    assert m.offer(a) == []  # the same events processed again
    audit = alert("MT-K8S", [{"id": "k1", "time": T0.timestamp(), "user": {"username": "bob"}}])
    out = last(m.offer(audit))
    assert out is not None and out.pattern_ids() == ["MT-K8S"] and out.id == audit.id
    off = IncidentMerger(window_s=0)  # merging off: every alert its own incident, at once
    x, y = last(off.offer(alert("MT-A", [ev("e1")]))), last(off.offer(alert("MT-B", [ev("e1")])))
    assert x is not None and y is not None and x.id != y.id


def test_below_critical_is_held_until_the_hold_runs_out_critical_goes_at_once() -> None:
    m = IncidentMerger(window_s=5, hold_s=1)
    create, exe = ev("c1", t=0.0), ev("e1", t=0.2)
    assert m.offer(alert("MT-MEMFD", [create], "warning")) == []  # held
    out = m.offer(alert("MT-SEQ", [create, exe], "critical"))  # joined: critical, at once, whole
    assert [a.pattern_ids() for a in out] == [["MT-SEQ", "MT-MEMFD"]]
    assert m.held == 0
    # a lone warning: released by a later alert's event time or by the timer (event time too)
    assert m.offer(alert("MT-W1", [ev("w1", t=10)], "warning")) == []
    assert m.offer(alert("MT-W2", [ev("w2", t=10.5)], "warning")) == []
    released = m.offer(alert("MT-W3", [ev("w3", t=11.2)], "warning"))
    assert [a.pattern_ids() for a in released] == [["MT-W1"]]
    t0 = T0.timestamp()
    assert m.settle_due(t0 + 11.4) == [] and [a.rule.id for a in m.settle_due(t0 + 11.6)] == ["MT-W2"]
    # once settled, a pattern joining later is passed on as a growth of the same id
    grown = m.offer(alert("MT-SEQ2", [ev("w1", t=10), ev("x", t=12)], "error"))
    assert [(a.id, a.pattern_ids()) for a in grown] == [("MT-W1:w1", ["MT-SEQ2", "MT-W1"])]


def test_a_grown_incident_updates_its_group_in_place_and_repeats_still_count() -> None:
    m, g = IncidentMerger(window_s=5, hold_s=0), Grouper(window_s=60)

    def offer(a: Alert) -> Alert | None:
        out = [x for x in (g.offer(i) for i in m.offer(a)) if x is not None]
        return out[-1] if out else None

    first = offer(alert("MT-SEQ", [ev("c1", t=0), ev("e1", t=0.1)], "critical"))
    grown = offer(alert("MT-IMG", [ev("e1", t=0.1)], "error"))
    assert first is not None and grown is not None
    assert (grown.id, grown.count, grown.revision) == (first.id, 1, 2)
    assert grown.rule.id == "MT-SEQ" and grown.pattern_ids() == ["MT-SEQ", "MT-IMG"]
    # the same attack again 10 s later by the same executable: the group counts it
    again = offer(alert("MT-SEQ", [ev("c2", t=10), ev("e2", t=10.1)], "critical"))
    assert again is not None and (again.id, again.count, again.revision) == (first.id, 2, 3)
    assert again.pattern_ids() == ["MT-SEQ", "MT-IMG"]  # the group shows every pattern of its incidents
    more = offer(alert("MT-CRIT", [ev("e2", t=10.1)], "critical"))
    assert more is not None and (more.id, more.count, more.revision) == (first.id, 2, 4)
    assert more.pattern_ids() == ["MT-SEQ", "MT-CRIT", "MT-IMG"]
    assert offer(alert("MT-CRIT", [ev("e2", t=10.1)], "critical")) is None  # idempotent


# -- on the real engine and library -----------------------------------------------------------


#: A warning on every memfd_create, so these tests do not hang on which library patterns
#: (e.g. "memfd_create by a Python interpreter") fire on it.
WARN_MEMFD = {
    "id": "MT-TEST-MEMFD",
    "name": "Test: memfd_create",
    "description": "Any memfd_create (a test pattern)",
    "severity": "warning",
    "techniques": ["T1620"],
    "condition": {"syscall": "memfd_create"},
}


def _correlator(window: float = 5.0, hold: float = 1.0) -> Correlator:
    c = Correlator(
        default_engine_factory(Settings().patterns_dirs), 60, incident_window_s=window, incident_hold_s=hold
    )
    assert c.apply_pattern_op("upsert", WARN_MEMFD) is None
    return c


def test_a_memfd_exec_is_one_incident_with_every_matched_pattern() -> None:
    c = _correlator()
    events = memfd_pair(pid=31337)
    raised = {a.rule.id for a in c._new_engine().process_batch(events)}  # the engine alone
    out = c.process(0, events)
    assert len(out) == 1, [a.pattern_ids() for a in out]
    inc = out[0]
    assert {"MT-FILELESS-001", "MT-FILELESS-002", "MT-TEST-MEMFD"} <= set(inc.pattern_ids())
    assert sorted(inc.pattern_ids()) == sorted(raised)  # every match, once
    assert inc.rule.severity == "critical" and "T1620" in inc.threat.technique.id
    every = {t for p in inc.patterns for t in p.techniques}
    assert every == set(inc.threat.technique.id)  # the union, nothing else


def test_a_held_warning_joined_in_a_later_batch_goes_out_once_as_the_critical_incident() -> None:
    c = _correlator()
    create, exe = memfd_pair(pid=31338)
    assert c.process(0, [create]) == []  # warnings on memfd_create: held
    (inc,) = c.process(0, [exe])
    assert {"MT-FILELESS-001", "MT-FILELESS-002", "MT-TEST-MEMFD"} <= set(inc.pattern_ids())
    assert inc.rule.severity == "critical"


def test_without_a_hold_the_first_alert_goes_out_at_once_and_the_same_id_grows() -> None:
    c = _correlator(hold=0)
    create, exe = memfd_pair(pid=31340)
    (first,) = c.process(0, [create])
    (later,) = c.process(0, [exe])
    assert later.id == first.id and later.revision > first.revision
    assert set(first.pattern_ids()) < set(later.pattern_ids())


def test_a_held_alert_alone_is_published_by_the_release_timer() -> None:
    c = _correlator()
    t = time.time()
    create, _ = memfd_pair(pid=31341, t=t)
    assert c.process(0, [create]) == []
    assert c.flush(t + 0.5) == [] and c.release(t + 0.9) == []
    assert c.release(t + 1.01, skip=[0]) == []  # being replayed: left alone
    (alone,) = c.release(t + 1.01)
    assert "MT-TEST-MEMFD" in alone.pattern_ids() and alone.rule.severity == "warning"
    assert c.flush(t + 2) == [] and c.release(t + 2) == []


def test_same_events_any_batching_same_incident_ids() -> None:
    """Replay determinism: the ids and final incidents do not depend on how events were batched."""
    t = time.time()
    events = [e for i in range(4) for e in memfd_pair(pid=400 + i, t=t + i * 0.2)]
    events.append(event("execve", pid=499, args={"filename": "/usr/bin/id"}, t=t + 1))

    def final(batches: list[list[dict[str, Any]]]) -> dict[str, tuple[int, tuple[str, ...], str]]:
        c = _correlator()
        last: dict[str, Alert] = {}
        for b in batches:
            for a in c.process(0, b):
                last[a.id] = a
        return {i: (a.count, tuple(a.pattern_ids()), a.rule.severity) for i, a in last.items()}

    one = final([events])
    each = final([[e] for e in events])
    pairs = final([events[i : i + 3] for i in range(0, len(events), 3)])
    assert one == each == pairs and one


def test_replay_rebuilds_incidents_so_a_late_pattern_updates_the_published_id() -> None:
    create, exe = memfd_pair(pid=31339)
    live = _correlator(hold=0)
    published = live.process(0, [create])
    taken = _correlator(hold=0)  # another worker takes the partition over
    taken.replay(0, [create])
    taken.finish_replay(0)
    after = taken.process(0, [exe])
    assert [a.id for a in after] == [published[0].id]
    assert after == live.process(0, [exe])


def test_finish_replay_drops_held_incidents_the_previous_owner_published() -> None:
    t = time.time() - 30
    c = _correlator()
    c.assign(1)
    c.replay(1, [memfd_pair(pid=31342, t=t)[0]])  # a held warning, due at t+1...
    c.replay(1, [event("openat", pid=31343, t=t + 20, args={"path": "/etc/hosts", "flags": ["O_RDONLY"]})])
    c.finish_replay(1)  # ...before the last replayed event: the previous owner's timer published it
    assert c.flush(time.time()) == []
    c.replay(2, [memfd_pair(pid=31344, t=t + 29.5)[0]])  # due after the last replayed event: still held
    c.finish_replay(2)
    assert [a.process.pid for a in c.flush(time.time() + 1)] == [31344]
