"""The agents' decisions as plain functions: ``step(context, batch) -> (out, dead)``, no Faust."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from memtrail.core.settings import Settings
from schemas.alerts import Alert
from schemas.deadletter import DeadLetter
from streams.correlate import default_engine_factory
from streams.correlate_step import (
    AUDIT,
    CorrelateContext,
    assignment,
    audit_step,
    correlate_step,
    flush_step,
)
from streams.enrich import EnrichContext, enrich_step
from streams.guard import ContainedCorrelator
from streams.pause import AlertLedger
from streams.step import Inbound, publish_alerts
from tests.streams.helpers import batch, event, memfd_pair

RAW, ENRICHED, AUDIT_T, ALERTS = "raw", "enriched", "audit", "alerts"
CID = "c" * 64
META = {"id": CID, "name": "web", "image": "nginx:1", "runtime": "podman"}


def no_annotation(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    return events, False


def msg(
    value: bytes | None, key: bytes | None = b"k", topic: str = RAW, partition: int = 0, offset: int = 0
) -> Inbound:
    return Inbound(topic, partition, offset, key, value)


@pytest.fixture(scope="module")
def correlator() -> ContainedCorrelator:
    return ContainedCorrelator(default_engine_factory(Settings().patterns_dirs))


def ctx_for(correlator: ContainedCorrelator, ledger: Any = None) -> CorrelateContext:
    c = CorrelateContext(correlator, ENRICHED, AUDIT_T, ALERTS)
    if ledger is not None:
        c.ledger = ledger
    return c


def test_enrich_joins_the_container_and_dead_letters_only_the_bad_parts() -> None:
    good_key, good = batch([event("execve", container_id=CID)])
    host_key, host = batch([event("execve"), {**event("mmap"), "time": "late"}])
    ctx = EnrichContext(containers={CID: META}, annotate=no_annotation)
    out, dead = enrich_step(
        ctx, [msg(good, good_key, offset=1), msg(b"{no", b"x", offset=2), msg(host, host_key, offset=3)]
    )
    assert [o.key for o in out] == [good_key, host_key]
    doc = orjson.loads(out[0].value)
    assert doc["containers"] == {CID: META}  # spliced in front of the original bytes
    assert [(d.reason.split(":")[0], d.offset) for d in dead] == [
        ("not JSON", 2),
        ("event field 'time' has type str", 3),
    ]
    for d in dead:  # the one dead-letter model
        rec = DeadLetter.model_validate(orjson.loads(d.record()))
        assert rec.component == "worker" and rec.source_topic == RAW and rec.offset == d.offset


def test_enrich_an_annotation_failure_is_that_event_s() -> None:
    evs = [event("connect", pid=1), event("connect", pid=2), event("connect", pid=3)]
    key, value = batch(evs)

    def annotate(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        if any(e["process"]["pid"] == 2 for e in events):
            raise ValueError("bad trail")
        return events, False

    out, dead = enrich_step(EnrichContext(containers={}, annotate=annotate), [msg(value, key)])
    assert len(dead) == 1 and dead[0].reason.startswith("annotation failed: ValueError")
    assert dead[0].value["process"]["pid"] == 2
    (o,) = out
    assert [e["process"]["pid"] for e in orjson.loads(o.value)["events"]] == [1, 3]


def test_enrich_a_raising_step_dead_letters_the_message_whole() -> None:
    class Broken(dict[str, Any]):
        def get(self, *_: Any) -> Any:
            raise RuntimeError("table gone")

    ev = event("execve", container_id=CID)
    key, value = batch([ev])
    out, dead = enrich_step(EnrichContext(containers=Broken(), annotate=no_annotation), [msg(value, key)])
    assert out == []
    assert len(dead) == 1 and dead[0].reason.startswith("enrichment failed") and dead[0].value == value


def test_enrich_splits_over_the_limit() -> None:
    evs = [event("execve", args={"argv": ["x" * 2000]}) for _ in range(20)]
    key, value = batch(evs)
    out, dead = enrich_step(
        EnrichContext(containers={}, annotate=no_annotation, limit=10_000), [msg(value, key)]
    )
    assert dead == [] and len(out) > 1
    assert sum(len(orjson.loads(o.value)["events"]) for o in out) == 20
    assert all(len(o.value) <= 10_000 for o in out)


def enriched(events: list[dict[str, Any]]) -> bytes:
    return batch(events)[1]


def test_correlate_alerts_and_dead_letters_what_it_cannot_read(correlator: ContainedCorrelator) -> None:
    value = enriched(memfd_pair(pid=5101))
    out, dead = correlate_step(
        ctx_for(correlator),
        [
            msg(value, topic=ENRICHED, partition=1, offset=7),
            msg(b"[]", topic=ENRICHED, partition=1, offset=8),
        ],
    )
    assert [d.reason.split(":")[0] for d in dead] == ["bad enriched batch"]
    assert dead[0].offset == 8 and dead[0].topic == ENRICHED
    docs = [orjson.loads(o.value) for o in out]
    assert docs and all(o.key == d["id"].encode() for o, d in zip(out, docs, strict=True))
    assert any("T1620" in orjson.dumps(d).decode() for d in docs)


def test_correlate_publishes_an_alert_version_once(correlator: ContainedCorrelator) -> None:
    ledger = AlertLedger()
    value = enriched(memfd_pair(pid=5202))
    out, _ = correlate_step(ctx_for(correlator, ledger), [msg(value, topic=ENRICHED, partition=2)])
    assert out
    docs = [orjson.loads(o.value) for o in out]
    again, dead = publish_alerts([correlator_alert(d) for d in docs], ledger, 1 << 20, ALERTS)
    assert again == [] and dead == []


def correlator_alert(doc: dict[str, Any]) -> Alert:
    return Alert.model_validate(doc)


def test_an_alert_too_large_is_dead_lettered(correlator: ContainedCorrelator) -> None:
    ctx = ctx_for(correlator)
    ctx.limit = 200
    out, dead = correlate_step(ctx, [msg(enriched(memfd_pair(pid=5303)), topic=ENRICHED, partition=3)])
    assert out == [] and dead and all(d.reason == "alert too large" and d.topic == ALERTS for d in dead)


def test_audit_validates_each_message(correlator: ContainedCorrelator) -> None:
    good = orjson.dumps({**event("k8s_audit"), "args": {"verb": "get"}})
    no_id = orjson.dumps({k: v for k, v in event("k8s_audit").items() if k != "id"})
    _, dead = audit_step(
        ctx_for(correlator),
        [
            msg(good, topic=AUDIT_T, offset=1),
            msg(b"nope", topic=AUDIT_T, offset=2),
            msg(b"", topic=AUDIT_T, offset=3),
            msg(no_id, topic=AUDIT_T, offset=4),
        ],
    )
    assert [(d.offset, d.reason.split(":")[0]) for d in dead] == [
        (2, "not JSON"),
        (3, "empty message"),
        (4, "event field 'id' missing"),
    ]
    assert (AUDIT, 0) in correlator.partitions()


def test_flush_step_returns_alerts_and_failures(correlator: ContainedCorrelator) -> None:
    out, dead = flush_step(ctx_for(correlator), 0.0, skip=())
    assert isinstance(out, list) and isinstance(dead, list)


def test_assignment_keys_audit_partitions_apart() -> None:
    owned = {0, 1, (AUDIT, 0)}
    drop, new = assignment(owned, [(ENRICHED, 1), (ENRICHED, 2), (AUDIT_T, 1), (RAW, 0)], ENRICHED, AUDIT_T)
    assert drop == {0, (AUDIT, 0)}
    assert new == {2, (AUDIT, 1)}
