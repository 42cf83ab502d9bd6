"""Hostile input through a real ``memtrail worker`` on the real local broker.

Each message of the corpus mixes one hostile part with a good attack of another process:
the good attack must alert, the hostile part must be processed or dead-lettered with a
reason (no silent loss), and the worker must stay up and ready, also after a SIGKILL and
a restart that processes the same messages again.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from memtrail.core.kafka import producer_config
from memtrail.core.settings import Settings
from sensors.k8s_audit.models import AuditEvent
from sensors.k8s_audit.normalize import message_key, normalize
from tests.streams.helpers import (
    ARTIFACTS,
    REPO,
    WorkerProc,
    alert_docs,
    consume,
    event,
    is_memfd_sequence,
    memfd_pair,
    metric,
)

pytestmark = pytest.mark.broker


def deep(n: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(n - 1):
        cur["a"] = {}
        cur = cur["a"]
    return root


def raw_batch(events: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """An EventBatch as any producer could write it (stdlib json: no nesting limit of 255)."""
    key = f"host:{events[0]['host']}"
    return key.encode(), json.dumps(
        {"v": 1, "host": events[0]["host"], "key": key, "events": events}
    ).encode()


def produce_big(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    p = Producer(producer_config(settings.kafka, **{"message.max.bytes": 20_000_000}))
    for k, v in messages:
        p.produce(topic, key=k, value=v)
    assert p.flush(30) == 0


def audit_attack() -> dict[str, Any]:
    """A normalized audit event the library alerts on (MT-K8S-006 in the fixture's first item)."""
    doc = orjson.loads(
        (REPO / "tests" / "sensors" / "k8s_audit" / "fixtures" / "audit_attacks.json").read_bytes()
    )
    return normalize(AuditEvent.model_validate(doc["items"][0]), "c1")


def _ids(docs: list[dict[str, Any]]) -> set[str]:
    return {e["id"] for d in docs for e in d.get("events") or () if isinstance(e, dict) and "id" in e}


def _dead_ids(dead: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for d in dead:
        try:
            v = orjson.loads(d["value"])
        except orjson.JSONDecodeError:
            continue
        if isinstance(v, dict):
            if isinstance(v.get("id"), str):
                out.add(v["id"])
            out |= _ids([v])
    return out


def _wait(pred: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    return pred()


def test_hostile_corpus_is_contained_and_accounted(worker: WorkerProc, stream_settings: Settings) -> None:
    s = stream_settings
    hostile: dict[str, list[dict[str, Any]]] = {}
    cmdline = memfd_pair(pid=31001)
    cmdline[1]["process"]["cmdline"] = 5
    ancestors = memfd_pair(pid=31003)
    ancestors[1]["process"]["ancestors"] = [7]
    nul = [event("connect", 31005, {"addr": "10.0.0.1\x00.evil", "port": 443, "family": "AF_INET"})]
    nested = memfd_pair(pid=31007)
    nested[1]["args"]["blob"] = deep(300)
    pad = "x" * 4000
    big = [event("openat", 31008, {"path": f"/tmp/{i}/{pad}", "flags": ["O_RDONLY"]}) for i in range(1300)]
    hostile = {"cmdline": cmdline, "ancestors": ancestors, "nul": nul, "nested": nested, "big": big}
    good = {name: memfd_pair(pid=31100 + i) for i, name in enumerate(hostile)}
    messages = [raw_batch(hostile[name] + good[name]) for name in hostile]
    assert len(messages[-1][1]) > 5_000_000
    produce_big(s, s.topics.raw, messages)

    aud = audit_attack()
    aud["args"] = {"object": deep(248)}
    produce_big(s, s.topics.k8s_audit, [(message_key(aud).encode(), json.dumps(aud).encode())])

    want_pids = {e["process"]["pid"] for evs in good.values() for e in evs} | {31007}

    def alerted() -> set[int]:
        docs = alert_docs(consume(s, s.topics.alerts, 1, timeout=3, idle=0.5))
        pids = {d["process"]["pid"] for d in docs if is_memfd_sequence(d)}
        return pids if want_pids <= pids else set()

    pids = _wait(alerted, 90)
    assert want_pids <= pids, f"missing alerts for {want_pids - pids}\n{worker.tail()}"

    def audit_alerted() -> list[dict[str, Any]]:
        docs = alert_docs(consume(s, s.topics.alerts, 1, timeout=3, idle=0.5))
        return [d for d in docs if d.get("source") == "k8s_audit" or d["rule"]["id"].startswith("MT-K8S")]

    assert _wait(audit_alerted, 30), worker.tail()

    # Every raw event is in the enriched topic or in a dead letter (with its reason).
    sent = {e["id"] for evs in [*hostile.values(), *good.values()] for e in evs}

    def accounted() -> tuple[set[str], list[dict[str, Any]]]:
        enriched = _ids(alert_docs(consume(s, s.topics.enriched, 1, timeout=3, idle=1.0)))
        dead = alert_docs(consume(s, s.topics.deadletter, 0, timeout=3, idle=1.0))
        return sent - enriched - _dead_ids(dead), dead

    missing, dead = _wait(lambda: (r := accounted()) and not r[0] and r, 60) or accounted()
    assert not missing, f"{len(missing)} events neither forwarded nor dead-lettered"
    reasons = {d["reason"].split(":", 1)[0] for d in dead}
    assert "engine failed on event" in reasons, reasons
    engine_dead = [d for d in dead if d["reason"].startswith("engine failed")]
    assert {orjson.loads(d["value"])["process"]["pid"] for d in engine_dead} >= {31001, 31003}

    assert worker.proc.poll() is None and worker.ready(), worker.tail()
    text = worker.metrics()
    assert metric(text, "memtrail_stream_split_batches_total") >= 1  # the 5 MB batch went out in parts
    assert metric(text, "memtrail_stream_deadletter_total") >= 2

    # SIGKILL before a commit can happen is not guaranteed here; what must hold: a restart
    # (which replays the partitions' recent events, poison included) comes up and stays up.
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)
    ARTIFACTS.mkdir(exist_ok=True)
    with WorkerProc(s, ARTIFACTS / "worker-test_poison-restart.log", "g-test_poison") as again:
        again.wait_ready(90)
        time.sleep(8)
        assert again.proc.poll() is None and again.ready(), again.tail()


def test_readiness_follows_a_stuck_agent(stream_settings: Settings) -> None:
    """A batch the correlation agent is stuck on for 12 s: /readyz false (reason
    agent_stuck:correlate) after 3 s, ready again once it is done, and the attack behind it
    still alerts."""
    s = stream_settings
    ARTIFACTS.mkdir(exist_ok=True)
    with WorkerProc(
        s,
        ARTIFACTS / "worker-test_poison-wedge.log",
        "g-test_poison-wedge",
        MEMTRAIL_STREAM_ENGINE_FACTORY="tests.streams.wedge_engine:factory",
        MEMTRAIL_STREAM_STUCK_AFTER_S="3",
    ) as w:
        w.wait_ready(90)
        wedge = event("wedge", 31900, {"seconds": 12})
        produce_big(s, s.topics.raw, [raw_batch([wedge, *memfd_pair(pid=31901)])])
        assert _wait(lambda: not w.ready(), 20), "ready while the agent is stuck"
        assert metric(w.metrics(), 'memtrail_stream_not_ready{reason="agent_stuck:correlate"}') == 1
        assert _wait(w.ready, 30), w.tail()

        def alerted() -> bool:
            docs = alert_docs(consume(s, s.topics.alerts, 1, timeout=3, idle=0.5))
            return any(d["process"]["pid"] == 31901 for d in docs)

        assert _wait(alerted, 30)
