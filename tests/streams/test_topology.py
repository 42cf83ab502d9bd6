"""Issue 4 on the real local broker: container join, recovery across a restart, two workers.

Each test starts its own real ``memtrail worker`` subprocesses (Faust) with its own topics
and consumer group.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from memtrail.core.kafka import ensure_topics
from memtrail.core.settings import Settings
from streams.batches import attach_containers
from tests.streams.helpers import (
    ARTIFACTS,
    WorkerProc,
    alert_docs,
    batch,
    by_rule,
    consume,
    event,
    is_memfd_sequence,
    memfd_exec,
    memfd_pair,
    metric,
    produce,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _log(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"worker-{name}.log"


def _sequence_alerts(
    settings: Settings, pids: set[int], want: int, timeout: float, settle: float
) -> list[dict]:
    """Every publication of memfd-sequence alerts for ``pids``, after ``settle`` quiet seconds."""
    deadline = time.monotonic() + timeout
    docs: list[dict] = []
    while time.monotonic() < deadline:
        docs = [
            d
            for d in alert_docs(consume(settings, settings.topics.alerts, 1, timeout=1.0, idle=0.3))
            if d["process"]["pid"] in pids and is_memfd_sequence(d)
        ]
        if len(docs) >= want:
            break
        time.sleep(0.3)
    time.sleep(settle)  # a duplicate would arrive now
    return [
        d
        for d in alert_docs(consume(settings, settings.topics.alerts, 1, timeout=1.0, idle=0.5))
        if d["process"]["pid"] in pids and is_memfd_sequence(d)
    ]


def test_enrichment_joins_container_name_and_image(settings: Settings) -> None:
    ensure_topics(settings)
    cid = "c0ffee" + "0" * 58
    meta = {
        "id": cid,
        "name": "web-1",
        "image": "localhost/nginx:1.25",
        "runtime": "podman",
        "state": "running",
    }
    produce(settings, settings.topics.containers, [(cid.encode(), orjson.dumps(meta))])
    with WorkerProc(settings, _log("join"), "g-join") as w:
        w.wait_ready()
        deadline = time.monotonic() + 30
        found: list[dict] = []
        pid = 30000
        while not found and time.monotonic() < deadline:
            pid += 1
            produce(settings, settings.topics.raw, [batch(memfd_pair(pid=pid, container_id=cid))])
            time.sleep(1.0)
            found = [
                d
                for d in alert_docs(consume(settings, settings.topics.alerts, 1, timeout=1, idle=0.3))
                if is_memfd_sequence(d)
            ]
        assert found, w.tail()
        alert = found[0]
        assert alert["container"]["id"] == cid
        assert (alert["container"]["name"], alert["container"]["image"]) == ("web-1", "localhost/nginx:1.25")
        docs = [
            orjson.loads(m.value())
            for m in consume(settings, settings.topics.enriched, 1, timeout=5, idle=0.5)
        ]
        # The container is written once per message (the "containers" table), not per event.
        assert docs and all(d["containers"][cid]["name"] == "web-1" for d in docs)
        enriched = [e for d in docs for e in attach_containers(d, d["events"])]
        assert enriched and all(e["container"]["name"] == "web-1" for e in enriched)
        # Host events stay without container.
        produce(settings, settings.topics.raw, [batch([event("ptrace", pid=39999)])])
        time.sleep(1.5)
        host = [
            e
            for m in consume(settings, settings.topics.enriched, 1, timeout=5, idle=0.5)
            for e in orjson.loads(m.value())["events"]
            if e["process"]["pid"] == 39999
        ]
        assert host and host[0]["container"] is None


def _joined_names(settings: Settings, pid: int) -> dict[str, str | None]:
    """container id -> joined container name of the enriched events of ``pid``."""
    out: dict[str, str | None] = {}
    for m in consume(settings, settings.topics.enriched, 100_000, timeout=6, idle=1.5):
        d = orjson.loads(m.value())
        for e in attach_containers(d, d["events"]):
            if e["process"]["pid"] == pid:
                out[e["container_id"]] = (e.get("container") or {}).get("name")
    return out


def _probe(settings: Settings, cids: list[str], pid: int) -> dict[str, str | None]:
    produce(settings, settings.topics.raw, [batch([event("openat", pid=pid, container_id=c)]) for c in cids])
    deadline = time.monotonic() + 20
    while True:
        got = _joined_names(settings, pid)
        if set(got) >= set(cids) or time.monotonic() > deadline:
            return got


def test_container_table_follows_the_topic_while_the_worker_runs(settings: Settings) -> None:
    """The GlobalTable whose changelog is memtrail.containers: records from before the start
    (many in one produce call, i.e. few record batches: Tansu's ListOffsets(LATEST) is then
    short of the end), records published while the worker runs, a tombstone."""
    ensure_topics(settings)

    def meta(cid: str, name: str) -> bytes:
        return orjson.dumps({"id": cid, "name": name, "image": "img:1", "state": "running"})

    early = [f"{i:064x}" for i in range(0xE000, 0xE040)]
    a, b = "a" * 64, "b" * 64
    produce(
        settings,
        settings.topics.containers,
        [(a.encode(), meta(a, f"a-v{i}")) for i in range(20)]
        + [(c.encode(), meta(c, c[-4:])) for c in early],
    )
    with WorkerProc(settings, _log("table"), "g-table") as w:
        w.wait_ready()
        got = _probe(settings, [a, *early], 33001)
        assert got == {a: "a-v19", **{c: c[-4:] for c in early}}, w.tail()
        produce(settings, settings.topics.containers, [(b.encode(), meta(b, "b-1"))])
        time.sleep(1.0)
        assert _probe(settings, [b], 33002) == {b: "b-1"}, w.tail()
        produce(settings, settings.topics.containers, [(a.encode(), None)])  # tombstone
        time.sleep(1.0)
        assert _probe(settings, [a, b], 33003) == {a: None, b: "b-1"}, w.tail()


def test_sequence_split_across_worker_restart_alerts_exactly_once(settings: Settings) -> None:
    ensure_topics(settings)
    pid = 31001
    step1, _ = memfd_pair(pid=pid)
    with WorkerProc(settings, _log("restart-a"), "g-restart") as a:
        a.wait_ready()
        produce(settings, settings.topics.raw, [batch([step1])])
        deadline = time.monotonic() + 20
        while metric(a.metrics(), "memtrail_stream_events_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # enrich in + out of the first step
        time.sleep(2.5)  # the commit interval is 1 s
        assert a.stop() == 0, a.tail()
    with WorkerProc(settings, _log("restart-b"), "g-restart") as b:
        b.wait_ready()
        assert metric(b.metrics(), "memtrail_stream_replayed_events_total") >= 1, b.tail()
        produce(settings, settings.topics.raw, [batch([memfd_exec(pid=pid, t=step1["time"] + 1)])])
        docs = _sequence_alerts(settings, {pid}, 1, timeout=30, settle=3)
        assert docs, b.tail()
        for rule, alerts in by_rule(docs).items():  # exactly once per pattern
            assert len(alerts) == 1, (rule, [(d["id"], d["count"]) for d in alerts])
        assert [e["syscall"] for e in docs[0]["evidence"]] == ["memfd_create", "execve"]


def test_two_workers_share_partitions_and_alert_exactly_once(settings: Settings) -> None:
    ensure_topics(settings)
    with (
        WorkerProc(settings, _log("pair-1"), "g-pair") as w1,
        WorkerProc(settings, _log("pair-2"), "g-pair") as w2,
    ):
        w1.wait_ready()
        w2.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the rebalance to settle: 4 partitions split
            owned = [metric(w.metrics(), "memtrail_stream_assigned_partitions") for w in (w1, w2)]
            if sum(owned) == settings.kafka.partitions and min(owned) > 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"partitions not shared: {owned}\n{w1.tail()}\n{w2.tail()}")
        pids = set(range(32000, 32040))
        messages = []
        for pid in pids:  # one container per attack: keys spread over every partition
            cid = f"{pid:064x}"
            messages.append(batch(memfd_pair(pid=pid, container_id=cid)))
        produce(settings, settings.topics.raw, messages)
        docs = _sequence_alerts(settings, pids, len(pids), timeout=60, settle=3)
        rules = by_rule(docs)
        assert rules
        for rule, alerts in rules.items():  # every attack alerted exactly once per pattern
            per_pid = {pid: len([d for d in alerts if d["process"]["pid"] == pid]) for pid in pids}
            assert {pid: n for pid, n in per_pid.items() if n != 1} == {}, rule
        work = [metric(w.metrics(), "memtrail_stream_events_total") for w in (w1, w2)]
        assert min(work) > 0, f"one worker did nothing: {work}"
