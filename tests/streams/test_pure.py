"""The stream tier's pure helpers: decoding/validation, dead letters, enrichment, grouping, console line."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from memtrail.core.settings import Settings
from schemas.alerts import Alert, HostRef, KubernetesRef, ProcessRef, Rule, Technique, Threat
from schemas.deadletter import DeadLetter
from sinks.console import format_alert
from sinks.jsonl import JsonlSink
from streams.batches import attach_containers, check_event, decode_batch, encode_batch, splice_containers
from streams.correlate import Correlator, default_engine_factory
from streams.deadletter import dead_letter, reason_label
from streams.enrich import detach_containers, enrich_events, join_containers
from streams.grouping import Grouper
from streams.sessions import session_event
from tests.streams.helpers import batch, event, memfd_pair


def test_decode_good_batch_keeps_every_event() -> None:
    evs = [event("memfd_create"), event("execve")]
    key, value = batch(evs)
    dec = decode_batch(value, key)
    assert dec.key == "host:testhost" and dec.host == "testhost"
    assert [e["syscall"] for e in dec.events] == ["memfd_create", "execve"]
    assert dec.rejected == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"{not json", "not JSON"),
        (b"[1,2]", "batch is list"),
        (b'{"host":"h"}', "batch has no 'events' list"),
        (b'{"v":3,"events":[]}', "unsupported batch schema version"),
        (b'{"v":2,"events":[]}', "bad v2 batch"),
    ],
)
def test_decode_bad_message_is_rejected_whole_with_reason(value: bytes, reason: str) -> None:
    dec = decode_batch(value, b"k")
    assert dec.events == []
    assert len(dec.rejected) == 1 and dec.rejected[0].reason.startswith(reason)
    assert dec.rejected[0].value == value  # the original, for the dead-letter record


def test_decode_bad_event_is_rejected_alone() -> None:
    good = event("ptrace")
    no_pid = event("execve")
    del no_pid["process"]["pid"]
    bad_time = {**event("mmap"), "time": "yesterday"}
    _, value = batch([good, no_pid, bad_time, 7])  # type: ignore[list-item]
    dec = decode_batch(value)
    assert [e["id"] for e in dec.events] == [good["id"]]
    assert [r.reason for r in dec.rejected] == [
        "event field 'process.pid' missing or not an integer",
        "event field 'time' has type str",
        "event is int, not an object",
    ]


def test_check_event_refuses_bool_for_int() -> None:
    assert check_event({**event("x"), "ts_ns": True}) == "event field 'ts_ns' has type bool"


class _Str(str):
    pass


class _Dict(dict):
    pass


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"args": None},
        {"container_id": "c" * 64},
        {"time": 17},
        {"ts_ns": True},
        {"ts_ns": 1.5},
        {"time": False},
        {"id": None},
        {"host": 3},
        {"syscall": _Str("execve")},  # a str subclass: accepted by the full check
        {"process": _Dict(pid=1, tid=1, ppid=0)},
        {"process": {"pid": 1, "tid": True, "ppid": 0}},
        {"process": {"pid": 1, "tid": 1}},
        {"process": []},
        {"args": []},
        {"container_id": 5},
    ],
)
def test_check_fast_path_agrees_with_the_full_check(change: dict[str, object]) -> None:
    from streams.batches import _why_not_event

    ev = {**event("execve"), **change}
    assert check_event(ev) == _why_not_event(ev)


def test_decode_marks_batches_that_can_be_forwarded_as_they_came() -> None:
    assert decode_batch(batch([event("mmap"), event("openat")])[1]).pristine
    no_args = event("mmap")
    del no_args["args"]
    dec = decode_batch(batch([no_args])[1])
    assert dec.events[0]["args"] == {} and not dec.pristine  # the decoded events differ from the bytes
    assert not decode_batch(batch([event("mmap"), {"bad": 1}])[1]).pristine  # a rejected event
    assert not decode_batch(b"[]").pristine


def test_enriched_message_carries_each_container_once() -> None:
    meta = {"id": "c" * 64, "name": "web"}
    other = {"id": "c" * 64, "name": "came with the event"}
    evs = [event("mmap", container_id="c" * 64), event("openat", container_id="c" * 64), event("ptrace")]
    enrich_events(evs, {"c" * 64: meta})
    evs.append({**event("openat", container_id="c" * 64), "container": other})
    table = detach_containers(evs)
    assert table == {"c" * 64: meta}
    assert [e["container"] for e in evs] == [None, None, None, other]
    value = encode_batch("k", "h", evs, table)
    assert value.count(b'"name":"web"') == 1
    doc = orjson.loads(value)
    back = attach_containers(doc, doc["events"])
    assert [e["container"] for e in back] == [meta, meta, None, other]
    assert back[0]["container"] is back[1]["container"]  # one shared dict, not a copy per event
    assert "containers" not in orjson.loads(encode_batch("k", "h", evs[2:3], {}))


def test_spliced_message_reads_like_the_re_encoded_one() -> None:
    """The table in front of the original bytes gives the correlation side the same events
    as decode + join + detach + encode, with the message's own bytes kept as they were."""
    c1, c2 = "c" * 64, "d" * 64
    metas = {c1: {"id": c1, "name": "web"}, c2: {"id": c2, "name": "db"}}
    own = {"id": c1, "name": "came with the event"}
    evs = [
        event("mmap", container_id=c1),
        event("openat", container_id=c2),
        event("ptrace"),
        event("openat", container_id="e" * 64),  # not in the table yet
        {**event("openat", container_id=c1), "container": own},
    ]
    key, raw = batch(evs)
    dec = decode_batch(b"  \n" + raw, key)
    assert dec.pristine and not dec.has_containers
    table = join_containers(dec.events, metas)
    assert table == metas
    spliced = splice_containers(b"  \n" + raw, table)
    assert spliced.endswith(raw[1:]) and spliced.count(b'"name":"web"') == 1

    ref = decode_batch(raw, key)
    enrich_events(ref.events, metas)
    encoded = orjson.loads(encode_batch(key.decode(), ref.host, ref.events, detach_containers(ref.events)))
    doc = orjson.loads(spliced)
    got = attach_containers(doc, doc["events"])
    want = attach_containers(encoded, encoded["events"])
    assert [e.get("container") for e in got] == [e.get("container") for e in want]
    assert [e.get("container") for e in got] == [metas[c1], metas[c2], None, None, own]
    assert decode_batch(spliced).has_containers  # an enriched message gets no second table
    assert join_containers([event("ptrace")], metas) == {}
    with pytest.raises(ValueError):
        splice_containers(raw, {})


def test_encode_batch_round_trips() -> None:
    evs = [event("mmap")]
    assert decode_batch(encode_batch("k", "h", evs)).events == evs


def test_dead_letter_keeps_the_original_as_text_or_base64() -> None:
    rec = orjson.loads(dead_letter("not JSON: x", "raw", 1, 42, b"key", b"{oops", now=5.0))
    assert DeadLetter.model_validate(rec).component == "worker"
    assert rec == {
        "v": 1,
        "reason": "not JSON: x",
        "component": "worker",
        "source_topic": "raw",
        "partition": 1,
        "offset": 42,
        "key": "key",
        "value": "{oops",
        "value_encoding": "text",
        "value_truncated": False,
        "time": 5.0,
    }
    binary = orjson.loads(dead_letter("not JSON", "raw", 0, 0, None, b"\xff\xfe"))
    assert binary["value_encoding"] == "base64" and base64.b64decode(binary["value"]) == b"\xff\xfe"
    assert orjson.loads(orjson.loads(dead_letter("event", "raw", 0, 0, None, {"a": 1}))["value"]) == {"a": 1}
    assert reason_label("event field 'time' has type str") == "bad_event"
    assert reason_label("not JSON: line 1") == "not_json"


def test_enrich_fills_container_meta_only_for_known_containers() -> None:
    cid = "a" * 64
    evs = [event("execve", container_id=cid), event("execve", container_id="b" * 64), event("execve")]
    n = enrich_events(evs, {cid: {"id": cid, "name": "web", "image": "nginx:1"}})
    assert n == 1
    assert (
        evs[0]["container"]["name"] == "web" and evs[1]["container"] is None and evs[2]["container"] is None
    )


def _alert(aid: str, at: datetime, rule: str = "R1", exe: str = "/bin/x", cid: str | None = None) -> Alert:
    return Alert(
        id=aid,
        timestamp=at,  # type: ignore[call-arg]  # populate_by_name: the alias is @timestamp
        rule=Rule(id=rule, name="n", severity="error"),
        threat=Threat(technique=Technique(id=["T1055"])),
        container={"id": cid},  # type: ignore[arg-type]
        process=ProcessRef(pid=1, executable=exe),
        host=HostRef(name="h"),
        message="m",
        evidence=[],
        first_seen=at,
        last_seen=at,
    )


def test_grouping_counts_identical_alerts_in_window_under_the_first_id() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    g = Grouper(window_s=60)
    first = g.offer(_alert("a1", t0))
    second = g.offer(_alert("a2", t0 + timedelta(seconds=10)))
    third = g.offer(_alert("a3", t0 + timedelta(seconds=65)))  # within 60 s of the last one
    assert first is not None and second is not None and third is not None
    assert (first.id, first.count) == ("a1", 1)
    assert (second.id, second.count) == ("a1", 2)
    assert (third.id, third.count, third.first_seen, third.last_seen) == (
        "a1",
        3,
        t0,
        t0 + timedelta(seconds=65),
    )


def test_grouping_separates_rule_container_and_executable_and_windows() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    g = Grouper(window_s=60)
    ids = [
        g.offer(_alert("a", t0)),
        g.offer(_alert("b", t0, rule="R2")),
        g.offer(_alert("c", t0, exe="/bin/y")),
        g.offer(_alert("d", t0, cid="c" * 64)),
        g.offer(_alert("e", t0 + timedelta(seconds=200))),  # window passed: a new group
    ]
    assert [(a.id, a.count) for a in ids if a] == [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]


def test_grouping_keeps_host_alerts_of_two_nodes_apart() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    g = Grouper(window_s=60)
    a, b, c = _alert("a", t0), _alert("b", t0), _alert("c", t0 + timedelta(seconds=5))
    b.host = HostRef(name="node-2")
    out = [g.offer(a), g.offer(b), g.offer(c)]
    assert [(x.id, x.count, x.host.name) for x in out if x] == [
        ("a", 1, "h"),
        ("b", 1, "node-2"),
        ("a", 2, "h"),
    ]


def test_grouping_keeps_audit_alerts_of_other_requests_and_pods_apart() -> None:
    """Audit alerts have no container and no executable: they group by command line and pod."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    g = Grouper(window_s=60)

    def audit(aid: str, cmd: str, pod: str) -> Alert:
        a = _alert(aid, t0, exe=None)  # type: ignore[arg-type]
        a.process.command_line = cmd
        a.kubernetes = KubernetesRef(namespace="shop", pod_name=pod)
        return a

    out = [
        g.offer(audit("a", "alice: create /api/v1/namespaces/shop/pods/web-1/exec", "web-1")),
        g.offer(audit("b", "alice: create /api/v1/namespaces/shop/pods/web-2/exec", "web-2")),
        g.offer(audit("c", "alice: create /api/v1/namespaces/shop/pods/web-1/exec", "web-1")),
    ]
    assert [(a.id, a.count) for a in out if a] == [("a", 1), ("b", 1), ("a", 2)]


def test_grouping_ignores_an_alert_id_it_already_counted() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    g = Grouper()
    assert g.offer(_alert("a", t0)) is not None
    assert g.offer(_alert("a", t0)) is None  # the same events processed again (replay)
    assert g.expire(t0 + timedelta(seconds=61)) == 1 and len(g) == 0


def test_console_line_and_jsonl(tmp_path: Path) -> None:
    doc = _alert("a", datetime(2026, 1, 1, tzinfo=UTC), cid="f" * 64).to_json_dict()
    doc["container"]["name"] = "web"
    line = format_alert(doc)
    assert line.startswith("ERROR    R1 n [T1055] container=web(ffffffffffff) pid=1 exe=/bin/x")
    assert line.endswith("count=1") and "\n" not in line
    sink = JsonlSink(tmp_path / "a.jsonl")
    sink.write(doc)
    sink.write(orjson.dumps(doc))
    sink.close()
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 2 and orjson.loads(lines[1])["@timestamp"] == "2026-01-01T00:00:00Z"


def _correlator() -> Correlator:
    return Correlator(default_engine_factory(Settings().patterns_dirs), grouping_window_s=60)


def test_correlator_replay_rebuilds_state_without_alerting_twice() -> None:
    """The recovery design on the real engine: replayed events are state, not alerts."""
    first, second = memfd_pair(pid=777)
    c = _correlator()
    c.replay(0, [first])  # rebuilds the state; whatever it alerts was published before: discarded
    alerts = [a for a in c.process(0, [second]) if a.evidence[0]["syscall"] == "memfd_create"]
    assert alerts and all("T1620" in a.threat.technique.id for a in alerts)
    # The same events again (processed but not committed before a crash): nothing new.
    fresh = _correlator()
    fresh.replay(0, [first, second])
    assert [a for a in fresh.process(0, [second]) if a.evidence[0]["syscall"] == "memfd_create"] == []


def test_correlator_partitions_keep_separate_state() -> None:
    first, second = memfd_pair(pid=778)
    c = _correlator()
    c.process(0, [first])
    assert [a for a in c.process(1, [second]) if a.evidence[0]["syscall"] == "memfd_create"] == []
    c.drop(0)
    assert c.partitions() == {1}


def test_correlator_rejects_a_bad_custom_pattern_and_applies_a_good_one() -> None:
    c = _correlator()
    errors = c.apply_pattern_op("upsert", {"id": "MT-CUSTOM-1", "name": "x"})
    assert errors and "MT-CUSTOM-1" not in c.custom_specs
    good = {
        "id": "MT-CUSTOM-2",
        "name": "Custom: unshare",
        "description": "A test pattern added at run time",
        "severity": "warning",
        "techniques": ["T1611"],
        "condition": {"syscall": "unshare"},
    }
    assert c.apply_pattern_op("upsert", good) is None
    c.assign(3)  # a partition assigned later gets the custom pattern too
    # (a warning is held for the incident hold, then released by the timer)
    out = c.process(3, [event("unshare", args={"flags": ["CLONE_NEWNS"]})]) + c.flush(time.time() + 2)
    assert [a.rule.id for a in out] == ["MT-CUSTOM-2"]
    c.apply_pattern_op("delete", {"id": "MT-CUSTOM-2"})
    assert c.process(3, [event("unshare", args={"flags": ["CLONE_NEWNS"]})]) + c.flush(time.time() + 4) == []


def test_patterns_topic_can_only_switch_a_builtin_off_and_on() -> None:
    """Whoever can write the patterns topic cannot replace or delete a library pattern: a
    replacement with a never-matching condition only toggles ``enabled``, a delete is refused."""
    c = _correlator()
    c.assign(0)

    pids = iter(range(5000, 5100))

    def fileless_ids(part: int, _label: str) -> set[str]:
        alerts = c.process(part, memfd_pair(pid=next(pids))) + c.flush(time.time() + 10)
        return {i for a in alerts for i in a.pattern_ids()}

    assert "MT-FILELESS-001" in c.builtin_ids and "MT-FILELESS-001" in fileless_ids(0, "h1")
    hijack = {
        "id": "MT-FILELESS-001",
        "name": "x",
        "description": "replaced",
        "severity": "info",
        "techniques": ["T1620"],
        "condition": {"syscall": "nothing-ever"},
    }
    assert c.apply_pattern_op("upsert", hijack) is None  # content ignored: still enabled, same logic
    assert "MT-FILELESS-001" in fileless_ids(0, "h2")
    assert c.apply_pattern_op("delete", {"id": "MT-FILELESS-001"})  # refused with an error
    assert "MT-FILELESS-001" in fileless_ids(0, "h3")
    assert c.apply_pattern_op("upsert", {"id": "MT-FILELESS-001", "enabled": False}) is None
    c.assign(1)  # a later partition's engine is forked from the switched template
    assert "MT-FILELESS-001" not in fileless_ids(0, "h4") | fileless_ids(1, "h5")
    assert c.apply_pattern_op("upsert", {"id": "MT-FILELESS-001", "enabled": True}) is None
    assert "MT-FILELESS-001" in fileless_ids(1, "h6")


_ABSENCE = {
    "id": "MT-CUSTOM-ABS-9",
    "name": "Custom: unshare not followed by exec",
    "description": "A namespace unshare with no exec by the same process within 5 s",
    "severity": "warning",
    "techniques": ["T1611"],
    "absence": {
        "key": "process",
        "window": "5s",
        "first": {"condition": {"syscall": "unshare"}},
        "then": {"condition": {"syscall": "execve"}},
    },
}


def test_correlator_forks_partition_engines_from_one_compiled_library() -> None:
    c = _correlator()
    for p in range(8):
        c.assign(p)
    engines = list(c.engines.values())
    assert len({id(e) for e in engines}) == 8  # separate state ...
    compiled = [{id(cp) for cp in e.compiled()} for e in engines]  # type: ignore[attr-defined]
    assert all(ids == compiled[0] for ids in compiled) and compiled[0]  # ... on one compiled library


def test_correlator_flush_emits_absence_alerts_without_a_new_event() -> None:
    c = _correlator()
    assert c.apply_pattern_op("upsert", _ABSENCE) is None
    t0 = time.time()
    assert c.process(2, [event("unshare", pid=901, t=t0, args={"flags": ["CLONE_NEWNS"]})]) == []
    assert c.flush(t0 + 1) == []  # window still open
    assert c.flush(t0 + 6, skip=[2]) == []  # being replayed: left alone
    assert [(a.rule.id, a.process.pid) for a in c.flush(t0 + 6)] == [("MT-CUSTOM-ABS-9", 901)]
    assert c.flush(t0 + 7) == []


def test_correlator_finish_replay_drops_absences_the_previous_owner_emitted() -> None:
    c = _correlator()
    assert c.apply_pattern_op("upsert", _ABSENCE) is None
    t0 = time.time() - 30
    c.assign(1)
    c.replay(1, [event("unshare", pid=902, t=t0, args={"flags": ["CLONE_NEWNS"]})])
    c.replay(1, [event("openat", pid=903, t=t0 + 20, args={"path": "/etc/hosts", "flags": ["O_RDONLY"]})])
    c.finish_replay(1)  # due at t0+5, before the last replayed event: emitted before the takeover
    assert [a for a in c.flush(time.time()) if a.rule.id == "MT-CUSTOM-ABS-9"] == []


def test_correlator_drops_a_reinjected_session_event() -> None:
    """A session event injected again (enrichment restart) must not let the session fire twice."""
    cid, t0 = "e5" * 32, time.time()
    cont = {"id": cid, "name": "web", "pod_name": "web-1", "pod_namespace": "shop"}
    session = {
        "kind": "exec",
        "user": "alice",
        "auditid": "a-1",
        "time": t0,
        "namespace": "shop",
        "pod": "web-1",
    }

    def fileless(pid: int, t: float) -> list[dict]:
        evs = memfd_pair(pid=pid, container_id=cid, t=t)
        for e in evs:
            e["container"], e["k8s_session"] = cont, {**session, "age_s": t - t0}
        return evs

    first = fileless(904, t0 + 1)
    sev = session_event(session, first[0])
    c = _correlator()
    # The cross-source sequence and the fileless patterns of the same exec: one incident.
    cross = [a for a in c.process(0, [sev, *first]) if "MT-K8S-020" in a.pattern_ids()]
    assert len(cross) == 1 and cross[0].kubernetes is not None
    assert (cross[0].kubernetes.namespace, cross[0].kubernetes.pod_name) == ("shop", "web-1")
    assert {"MT-FILELESS-001", "MT-FILELESS-002"} <= set(cross[0].pattern_ids())
    assert [e["syscall"] for e in cross[0].evidence] == ["k8s_session", "memfd_create", "execve"]
    # the same session event again, then another fileless exec: one alert per session and container
    raised: list[str] = []
    merger, offer = c.mergers[0], c.mergers[0].offer

    def spy(a: Alert) -> list[Alert]:
        raised.append(a.rule.id)
        return offer(a)

    merger.offer = spy  # type: ignore[method-assign,assignment]
    again = c.process(0, [dict(sev), *fileless(905, t0 + 5)])
    assert "MT-FILELESS-001" in raised and "MT-K8S-020" not in raised
    # the second exec is an incident of its own, without the session pattern
    assert [(a.count, "MT-K8S-020" in a.pattern_ids()) for a in again] == [(1, False)]
    assert again[0].id != cross[0].id


def test_worker_refuses_a_bad_container_join_in_one_line() -> None:
    from typer.testing import CliRunner

    from memtrail.cli import app

    res = CliRunner().invoke(app, ["worker", "--bootstrap", "127.0.0.1:1", "--container-join", "bogus"])
    assert res.exit_code == 2
    assert "container_join: Input should be 'table' or 'reader'" in res.output
    assert "Traceback" not in res.output


def test_correlator_publishes_a_group_grown_within_one_batch_once_with_its_final_count() -> None:
    """Three fileless execs in one batch: one publication per alert id, count 3; a later
    batch updates the same id again."""
    t = time.time()
    c = _correlator()
    evs = [e for i in range(3) for e in memfd_pair(pid=779, t=t + i)]
    out = [a for a in c.process(0, evs) if a.rule.id == "MT-FILELESS-001"]
    assert [a.count for a in out] == [3]
    again = [a for a in c.process(0, memfd_pair(pid=779, t=t + 3)) if a.rule.id == "MT-FILELESS-001"]
    assert [(a.id, a.count) for a in again] == [(out[0].id, 4)]
