"""Crash-safe correlation on the real local broker: SIGKILL the worker mid-stream, several times.

A stream of two-step attacks (memfd_create, then an exec of it about a second later, in
separate messages, spread over the partitions); the worker is SIGKILLed at random points
and restarted. Every attack must alert, and every alert id must be in the alerts topic
exactly once (read with a plain consumer, no dedup of ours).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from memtrail.core.broker import LocalBroker
from memtrail.core.kafka import producer_config
from streams.pause import read_published
from tests.streams.conftest import module_settings
from tests.streams.helpers import ARTIFACTS, WorkerProc, consume, event, is_memfd_sequence

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N_ATTACKS = 200
SPACING = 0.35  # s between attacks: the stream lasts ~70 s, three kill-restart cycles fit in it
HOSTS = [f"crash-h{i}" for i in range(N_ATTACKS)]  # one host each (no grouping), keys over all partitions


def _step1(pid: int, host: str, t: float) -> dict[str, Any]:
    # An executable of its own: grouping (rule, container, executable) keeps attacks apart.
    exe = f"/tmp/dropper{pid}"
    return event("memfd_create", pid, {"name": "x", "flags": ["MFD_CLOEXEC"]}, host=host, exe=exe, t=t, ret=3)


def _step2(pid: int, host: str, t: float) -> dict[str, Any]:
    return event(
        "execve",
        pid,
        {"filename": "/proc/self/fd/3", "argv": ["x"], "exe_memfd": True, "exe_deleted": False},
        host=host,
        exe=f"/memfd:payload{pid} (deleted)",
        t=t,
    )


def _msg(ev: dict[str, Any]) -> tuple[bytes, bytes]:
    key = f"host:{ev['host']}"
    return key.encode(), orjson.dumps({"v": 1, "host": ev["host"], "key": key, "events": [ev]})


def test_attacks_straddling_sigkills_alert_exactly_once(local_broker: LocalBroker) -> None:
    s = module_settings(local_broker, "test_crash")
    rng = random.Random(18)
    group = "g-test_crash"
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "worker-test_crash.log"
    log.write_bytes(b"")

    def stream() -> None:
        """Step 1 of attack i at i*SPACING s, its step 2 one second later."""
        start = time.time()
        plan: list[tuple[float, dict[str, Any]]] = []
        for i in range(N_ATTACKS):
            pid, host = 40000 + i, HOSTS[i % len(HOSTS)]
            plan.append((i * SPACING, _step1(pid, host, start + i * SPACING)))
            plan.append((i * SPACING + 1.0, _step2(pid, host, start + i * SPACING + 1.0)))
        plan.sort(key=lambda p: p[0])
        p = Producer(producer_config(s.kafka, **{"linger.ms": 5}))
        for at, ev in plan:
            delay = start + at - time.time()
            if delay > 0:
                time.sleep(delay)
            k, v = _msg(ev)
            p.produce(s.topics.raw, key=k, value=v)
            p.poll(0)
        assert p.flush(30) == 0
        sent.set()

    sent = threading.Event()
    producer = threading.Thread(target=stream, daemon=True)
    worker = WorkerProc(s, log, group)
    worker.wait_ready(90)
    producer.start()
    kills = 0
    try:
        while kills < 3:
            time.sleep(rng.uniform(3.0, 7.0))
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(10)
            worker.stop()
            kills += 1
            worker = WorkerProc(s, log, group)
            worker.wait_ready(90)
        producer.join(60)
        assert kills == 3 and sent.is_set()
        n_raw = len(consume(s, s.topics.raw, 2 * N_ATTACKS, timeout=20))
        assert n_raw == 2 * N_ATTACKS

        want = {40000 + i for i in range(N_ATTACKS)}

        def alerts() -> list[dict[str, Any]]:
            return read_published(s.kafka, s.topics.alerts, since_s=3600)

        deadline = time.monotonic() + 60
        docs = alerts()
        while time.monotonic() < deadline:
            if want <= {d["process"]["pid"] for d in docs if is_memfd_sequence(d)}:
                break
            time.sleep(2)
            docs = alerts()
        time.sleep(4)  # anything published late (a held incident) counts too
        docs = alerts()
        seq = [d for d in docs if is_memfd_sequence(d) and d["process"]["pid"] in want]
        lost = want - {d["process"]["pid"] for d in seq}
        dup = {i: n for i, n in Counter(d["id"] for d in docs).items() if n > 1}
        assert not lost, f"{len(lost)} of {N_ATTACKS} attacks lost: {sorted(lost)}\n{worker.tail()}"
        assert not dup, f"{len(dup)} alert ids published more than once: {dup}"
        assert worker.proc.poll() is None
    finally:
        worker.stop()
