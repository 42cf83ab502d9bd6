"""Poison containment, pure parts: fuzzed decoders, the contained correlator, size limits,
dead letters, the alert ledger, partition gates and readiness (no broker)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrail.core.settings import Settings
from streams.batches import check_event, decode_batch
from streams.correlate import default_engine_factory
from streams.deadletter import VALUE_MAX, dead_letter, reason_label
from streams.guard import ContainedCorrelator, alert_bytes, each_contained, fit_batches, shrink
from streams.health import Health
from streams.pause import AlertLedger, PartitionGate
from tests.streams.helpers import event, memfd_pair

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def deep(n: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(n - 1):
        cur["a"] = {}
        cur = cur["a"]
    return root


@pytest.fixture(scope="module")
def correlator() -> ContainedCorrelator:
    return ContainedCorrelator(default_engine_factory(Settings().patterns_dirs))


@FUZZ
@given(st.binary(max_size=300))
def test_decode_never_raises_on_bytes(value: bytes) -> None:
    dec = decode_batch(value, b"k")
    assert dec.events or dec.rejected


@FUZZ
@given(st.lists(JSON, max_size=6), JSON)
def test_decode_accounts_for_every_event_of_any_batch(events: list[Any], extra: Any) -> None:
    value = orjson.dumps({"v": 1, "host": "h", "events": events, "x": extra})
    dec = decode_batch(value)
    assert len(dec.events) + len(dec.rejected) == len(events)
    assert all(check_event(e) is None for e in dec.events)


PROCESS_FIELDS = ["cmdline", "ancestors", "exe", "comm", "uid", "name", "cwd", "parent", "loginuid"]
ARGS_FIELDS = ["filename", "argv", "exe_memfd", "exe_deleted", "name", "flags", "addr", "path"]


@FUZZ
@given(
    st.sampled_from(["process", "args"]),
    st.data(),
    JSON,
)
def test_contained_correlator_never_raises_and_accounts_each_event(
    correlator: ContainedCorrelator, where: str, data: st.DataObject, value: Any
) -> None:
    pair = memfd_pair(pid=51000)
    good = memfd_pair(pid=51001)
    field = data.draw(st.sampled_from(PROCESS_FIELDS if where == "process" else ARGS_FIELDS))
    pair[1][where][field] = value
    events = [e for e in pair + good if check_event(e) is None]
    correlator.drop(0)
    alerts = correlator.process(0, events)
    failures = correlator.take_failures()
    assert len(failures) <= 1
    assert any(a.process.pid == 51001 for a in alerts), "the good attack in the same batch must alert"
    for a in alerts:
        assert alert_bytes(a.to_json_dict(), 900_000) is not None


def test_a_mistyped_field_fails_that_event_alone(correlator: ContainedCorrelator) -> None:
    """The execve of a memfd sequence with a number as command line, or a number as an
    ancestor: that event is a failure with its reason, the other attack alerts."""
    for field, value in (("cmdline", 5), ("ancestors", [7])):
        bad, good = memfd_pair(pid=52000), memfd_pair(pid=52001)
        bad[1]["process"][field] = value
        correlator.drop(0)
        alerts = correlator.process(0, bad + good)
        [failure] = correlator.take_failures()
        assert failure.reason.startswith("engine failed on event") and failure.value is bad[1]
        assert {a.process.pid for a in alerts} == {52001}
        assert reason_label(failure.reason) == "engine_error"


def test_replay_failures_are_counted_not_dead_lettered(correlator: ContainedCorrelator) -> None:
    bad = memfd_pair(pid=52100)
    bad[1]["process"]["cmdline"] = 5
    correlator.drop(1)
    before = correlator.replay_failures
    correlator.replay(1, bad)
    assert correlator.replay_failures == before + 1 and correlator.take_failures() == []


def test_deeply_nested_evidence_still_publishes(correlator: ContainedCorrelator) -> None:
    pair = memfd_pair(pid=52200)
    pair[1]["args"]["blob"] = deep(300)
    correlator.drop(0)
    [alert, *_] = correlator.process(0, pair)
    from streams.guard import alert_doc

    value = alert_bytes(alert_doc(alert), 900_000)
    assert value is not None and orjson.loads(value)["id"] == alert.id


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40), st.booleans())
def test_fit_batches_splits_under_the_limit_and_loses_nothing(sizes: list[int], poison: bool) -> None:
    events = [event("openat", 7, {"path": "p" * n}) for n in sizes]
    if poison:
        events[len(events) // 2]["args"]["deep"] = deep(300)
    limit = 4000
    values, failures = fit_batches("k", "h", events, None, limit)
    assert all(len(v) <= limit for v in values)
    out = [e["id"] for v in values for e in orjson.loads(v)["events"]]
    failed = [f.value["id"] for f in failures]
    assert sorted(out + failed) == sorted(e["id"] for e in events)
    assert out == [e["id"] for e in events if e["id"] not in failed]  # order kept
    for f in failures:
        assert f.reason.startswith(("event too large", "event cannot be encoded"))


def test_a_5mb_batch_is_split_in_messages_under_the_limit() -> None:
    events = [event("openat", 7, {"path": "/tmp/" + "x" * 4000}) for _ in range(1300)]
    values, failures = fit_batches("k", "h", events, None, 900_000)
    assert not failures and len(values) >= 6 and all(len(v) <= 900_000 for v in values)


@FUZZ
@given(JSON)
def test_dead_letter_is_always_encodable_and_bounded(value: Any) -> None:
    for v in (value, {"nest": value, "deep": deep(300)}, "z" * (VALUE_MAX + 10)):
        rec = orjson.loads(dead_letter("why", "t", 0, 1, b"k", v))
        assert len(rec["value"]) <= VALUE_MAX
    rec = orjson.loads(dead_letter("why", "t", 0, 1, b"k", b"\xff" * (VALUE_MAX * 2)))
    assert rec["value_truncated"] and rec["value_bytes"] > VALUE_MAX and rec["value_sha256"]


@FUZZ
@given(JSON)
def test_shrink_gives_what_orjson_encodes(value: Any) -> None:
    orjson.dumps(shrink({"v": value, "d": deep(400), "big": 1 << 70}))


def test_each_contained_keeps_the_good_events_in_order() -> None:
    def fn(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(e.get("bad") for e in evs):
            raise ValueError("embedded null character")
        return evs

    evs = [{"n": 1}, {"n": 2, "bad": True}, {"n": 3}]
    kept, failures = each_contained(fn, evs, "annotation failed")
    assert [e["n"] for e in kept] == [1, 3] and [f.value["n"] for f in failures] == [2]


def test_nul_in_a_connect_address_is_no_match_not_a_crash() -> None:
    from streams.trails.matcher import TrailMatcher

    assert TrailMatcher([]).match_ip("10.0.0.1\x00.evil") is None


def test_ledger_keeps_the_highest_version_per_id() -> None:
    led = AlertLedger(max_ids=2)
    assert led.seed([{"id": "a", "count": 1}, {"id": "a", "revision": 3}, {"nope": 1}]) == 2
    assert led.published("a", 3) and not led.published("a", 4) and not led.published("b", 1)
    led.record("b", 1)
    led.record("c", 1)
    assert len(led) == 2 and not led.published("a", 1)  # oldest dropped


def test_gate_holds_until_opened() -> None:
    async def go() -> None:
        gate = PartitionGate()
        gate.close([1, 2])
        waiter = asyncio.create_task(gate.wait({1, 3}, timeout=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        gate.open(1)
        assert await waiter == []
        assert await gate.wait({2}, timeout=0.05) == [2]
        assert gate.closed == {2}

    asyncio.run(go())


def test_readiness_says_why() -> None:
    h = Health(stuck_after_s=10)
    assert h.ready(True) and not h.ready(False)
    h.begin("correlate")
    assert h.ready(True)
    assert h.problems(now=h._busy_since["correlate"] + 11) == ["agent_stuck:correlate"]
    h.end("correlate")
    h.broker_problem = "connection refused"
    assert h.problems() == ["broker_unreachable"] and not h.ready(True)
    h.broker_problem = None
    h.stopped("audit")
    assert h.problems() == ["agent_stopped:audit"]
    h.begin("audit")  # restarted by Faust's supervisor and consuming again
    h.end("audit")
    assert h.ready(True)


def test_stdlib_json_corpus_round_trip_sanity() -> None:
    """The real-broker corpus is written with stdlib json (orjson refuses > 255 levels)."""
    ev = copy.deepcopy(memfd_pair(pid=1)[1])
    ev["args"]["blob"] = deep(300)
    assert decode_batch(json.dumps({"v": 1, "host": "h", "events": [ev]}).encode()).events


def test_broker_back_without_its_logs_stays_not_ready_until_the_restart() -> None:
    """The watch probe on a broker that answers but lost a topic: the worker does not report
    ready in the seconds before it re-executes itself (a sender would think it was consuming).

    The consumer is a stand-in answering metadata (the gap lasts a few seconds and is hard to
    hit on purpose); ``test_broker_loss.py`` runs the same path against a real Tansu."""
    from types import SimpleNamespace

    from streams.brokerwatch import BrokerWatch

    class Answers:
        def __init__(self, topics: dict[str, Any]) -> None:
            self.topics = topics

        def list_topics(self, timeout: float) -> Any:
            return SimpleNamespace(brokers={1: object()}, topics=self.topics)

        def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
            return 0, 5

    s = Settings()
    h = Health()
    restarts: list[bool] = []
    watch = BrokerWatch(s, h, on_lost=lambda: restarts.append(h.ready(True)))
    part = SimpleNamespace(error=None, partitions={0: None})
    watch.probe(Answers({s.topics.raw: part}))
    assert h.ready(True) and restarts == []
    h.broker_problem = "connection refused"  # the outage
    watch.probe(Answers({}))  # back, empty: the raw topic it had is gone
    assert restarts == [False] and not h.ready(True)
