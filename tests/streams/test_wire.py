"""Wire format v2 (schemas.wire): lossless expansion, unknown fields kept, the worker's decode."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from schemas.events import Event
from schemas.wire import EventBatchV2, WireError, encode, events_of, expand
from streams.batches import attach_containers, decode_batch, splice_containers
from streams.enrich import join_containers
from streams.fastpath import count_events, decode_enriched, forward_unread

CID = "c" * 64


def _ancestors() -> list[dict[str, Any]]:
    return [
        {
            "pid": 100 + j,
            "entity_id": f"0123456789ab-{100 + j}-{5000 + j}",
            "exe": f"/usr/bin/prog{j}",
            "comm": f"prog{j}",
            "cmdline": f"/usr/bin/prog{j} --serve --config /etc/prog{j}.conf",
        }
        for j in range(5)
    ]


def _event(
    i: int, pid: int, ancestors: list[dict[str, Any]], container_id: str | None = None
) -> dict[str, Any]:
    return {
        "v": 1,
        "id": f"h1:{1000 + i}:{pid}",
        "ts_ns": 1000 + i,
        "time": 1.7e9 + i / 1e4,
        "host": "h1",
        "syscall": "openat",
        "ret": 3,
        "args": {"dirfd": -100, "path": "/etc/passwd", "path_typed": "/etc/passwd", "flags": ["O_RDONLY"]},
        "process": {
            "pid": pid,
            "tid": pid,
            "ppid": 100,
            "uid": 0,
            "gid": 0,
            "comm": "python3",
            "start_boottime_ns": 123456789000 + pid,
            "entity_id": f"0123456789ab-{pid}-{12345 + pid}",
            "exe": "/usr/bin/python3.11",
            "cmdline": "python3 -m app --serve",
            "start_time_ns": None,
            "ancestors": ancestors,
        },
        "cgroup_id": 4242,
        "container_id": container_id,
        "source": "syscall",
    }


def _norm(events: list[dict[str, Any]]) -> list[Any]:
    return [orjson.loads(orjson.dumps(e, option=orjson.OPT_SORT_KEYS)) for e in events]


def _mixed_batch(container_id: str | None = None) -> list[dict[str, Any]]:
    anc = _ancestors()
    evs = [_event(i, 2000 + i % 7, anc, container_id) for i in range(60)]
    evs[3]["process"]["tid"] = 9999  # a thread
    evs[4]["process"]["exe"] = "/bin/other"  # exec: same entity id, new image
    evs[4]["process"]["cmdline"] = "other -x"
    evs[5]["process"]["env_facts"] = {"LD_PRELOAD": "/tmp/x.so"}  # a field this encoder does not know
    evs[6]["process"]["entity_id"] = None  # identity not known
    evs[7]["loader"] = {"preload": ["/tmp/x.so"]}  # unknown event field
    evs[8]["process"]["ancestors"] = [{"pid": 3, "entity_id": None, "exe": "/x", "extra": 1}]
    evs[9]["process"]["ancestors"] = [{**anc[0], "cmdline": "changed"}, *anc[1:]]
    del evs[10]["process"]["cmdline"]
    evs[11]["id"] = "h1:custom-id"
    evs[12]["host"] = "other-host"
    evs[13]["source"] = "test"
    evs[14]["container_id"] = "d" * 64
    return evs


@pytest.mark.parametrize("container_id", [None, CID])
def test_expand_gives_back_every_field(container_id: str | None) -> None:
    evs = _mixed_batch(container_id)
    want = copy.deepcopy(evs)
    key = container_id or "host:h1"
    evs[15]["time"] = evs[15]["ts_ns"] / 1e9 + 0.25  # what the sensor's decoder computes
    evs[16]["time"] = evs[16]["ts_ns"] / 1e9 + 0.5  # not: kept
    want = copy.deepcopy(evs)
    value = orjson.dumps(encode("h1", key, evs, clock=0.25))
    assert b'"time"' in value and value.count(b'"time"') == len(evs) - 1
    assert evs == want  # the encoder does not touch its input
    doc = orjson.loads(value)
    EventBatchV2.model_validate(doc)  # the exported JSON Schema's model
    got = expand(doc)
    assert _norm(got) == _norm(want)
    for e in got:
        Event.model_validate(e)
    assert events_of(orjson.loads(value)) == got


def test_each_process_and_ancestor_once() -> None:
    anc = _ancestors()
    evs = [_event(i, 2000 + i % 5, anc) for i in range(500)]
    v1 = orjson.dumps({"v": 1, "host": "h1", "key": "host:h1", "events": evs})
    v2 = orjson.dumps(encode("h1", "host:h1", evs))
    doc = orjson.loads(v2)
    assert len(doc["procs"]) == 5 and len(doc["lineage"]) == 5
    assert v2.count(b"--config /etc/prog0.conf") == 1
    assert len(v2) / 500 < 250 < len(v1) / 500 / 4


def test_events_of_reads_v1_too() -> None:
    evs = [_event(0, 2000, _ancestors())]
    assert events_of({"v": 1, "host": "h1", "key": "host:h1", "events": evs}) == evs


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda d: d["events"][0].update(p="nope"), "not in the batch's procs"),
        (lambda d: d["lineage"].clear(), "not in the batch's lineage"),
        (lambda d: d.pop("procs"), "without a procs table"),
        (lambda d: d["events"][0].update(P=[1]), "'P' is not an object"),
    ],
)
def test_unresolved_reference_rejects_the_message(mutate: Any, why: str) -> None:
    doc = encode("h1", "host:h1", [_event(0, 2000, _ancestors())])
    doc = orjson.loads(orjson.dumps(doc))
    mutate(doc)
    value = orjson.dumps(doc)
    with pytest.raises(WireError, match=why):
        expand(doc)
    dec = decode_batch(value, b"host:h1")
    assert dec.events == [] and dec.rejected[0].reason.startswith("bad v2 batch")


def test_worker_decode_checks_expanded_events_and_forwards_v2_bytes() -> None:
    evs = _mixed_batch(CID)
    bad = copy.deepcopy(evs[20])
    bad["process"]["pid"] = "x"
    bad["process"]["entity_id"] = "0123456789ab-bad-1"
    no_proc = {k: v for k, v in evs[21].items() if k != "process"}
    value = orjson.dumps(encode("h1", CID, [*evs, bad, no_proc]))
    dec = decode_batch(value, CID.encode())
    assert [r.reason for r in dec.rejected] == [
        "event field 'process.pid' missing or not an integer",
        "event field 'process' missing",
    ]
    assert _norm(dec.events) == _norm(evs)

    good = orjson.dumps(encode("h1", CID, evs))
    dec = decode_batch(good, CID.encode())
    assert dec.pristine and not dec.rejected
    meta = {CID: {"id": CID, "name": "web"}}
    table = join_containers(dec.events, meta)
    spliced = splice_containers(good, table)  # the enriched message: v2 bytes as they came
    doc = orjson.loads(spliced)
    got = attach_containers(doc, doc["events"])
    assert [e["container"] for e in got if e["container_id"] == CID] == [meta[CID]] * (len(evs) - 1)
    assert _norm([{k: v for k, v in e.items() if k != "container"} for e in got]) == _norm(evs)


def test_fast_path_forwards_v2_unread_and_the_correlation_checks_it() -> None:
    evs = [_event(i, 2000 + i % 3, _ancestors()) for i in range(10)]
    for e in evs:
        e["container_id"] = CID
    bad = copy.deepcopy(evs[0])
    bad["process"]["pid"] = "x"
    bad["process"]["entity_id"] = "0123456789ab-bad-1"
    value = orjson.dumps(encode("h1", CID, [*evs, bad]))
    assert b"container_id" not in value  # the key says it
    meta = {CID: {"id": CID, "name": "web"}}
    out = forward_unread(value, CID.encode(), meta, trails=True, sessions=False)
    assert out is not None and out.endswith(value[1:]) and count_events(out) == 11
    # the batch states its count; a batch without it, or with one its size cannot hold, is scanned
    assert value.startswith(b'{"v":2,"n":11,') and count_events(value) == 11
    assert count_events(value.replace(b'"n":11,', b"", 1)) == 11
    assert count_events(value.replace(b'"n":11,', b'"n":99999999,', 1)) == 11
    good, rejected = decode_enriched(out)
    assert [r.reason for r in rejected] == ["event field 'process.pid' missing or not an integer"]
    assert _norm([{k: v for k, v in e.items() if k != "container"} for e in good]) == _norm(evs)
    assert all(e["container"] == meta[CID] for e in good)
    # host key: forwarded as it came; unknown container: likewise (the decoding path does the same)
    host = orjson.dumps(encode("h1", "host:h1", [_event(0, 2000, _ancestors())]))
    assert forward_unread(host, b"host:h1", meta, trails=False, sessions=False) is host
    assert forward_unread(value, b"e" * 64, meta, trails=False, sessions=False) is value


@pytest.mark.parametrize(
    ("case", "trails", "sessions"),
    [
        ("v1", False, False),  # v1: the enrichment decodes (and checks) it
        ("connect", True, False),  # a connect event while trail lists are loaded: annotated
        ("other-container", False, False),  # an event whose container is not the key
        ("table", False, False),  # a containers table already there
        ("plain", False, True),  # pod sessions are live: events may be stamped
    ],
)
def test_fast_path_declines_what_needs_the_decoding_path(case: str, trails: bool, sessions: bool) -> None:
    ev = _event(0, 2000, _ancestors(), CID)
    if case == "connect":
        ev["syscall"] = "connect"
    if case == "other-container":
        ev["container_id"] = "d" * 64
    if case == "v1":
        value = orjson.dumps({"v": 1, "host": "h1", "key": CID, "events": [ev]})
    else:
        value = orjson.dumps(encode("h1", CID, [ev]))
    if case == "table":
        value = splice_containers(value, {CID: {"id": CID}})
    assert forward_unread(value, CID.encode(), {}, trails=trails, sessions=sessions) is None


@pytest.mark.parametrize(("env", "want"), [(None, 2), ("1", 1), ("2", 2)])
def test_sensor_wire_version_setting(monkeypatch: pytest.MonkeyPatch, env: str | None, want: int) -> None:
    from sensors.config import SensorSettings

    if env is None:
        monkeypatch.delenv("MEMTRAIL_SENSOR_WIRE_VERSION", raising=False)
    else:
        monkeypatch.setenv("MEMTRAIL_SENSOR_WIRE_VERSION", env)
    assert SensorSettings().wire_version == want
