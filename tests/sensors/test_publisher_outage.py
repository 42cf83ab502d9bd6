"""Publisher across a broker outage mid-stream, on a real local broker: nothing lost, and
each partition key's batches reach Kafka in the order they were made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memtrail.core.broker import LocalBroker
from memtrail.core.settings import KafkaSettings, Settings
from schemas import wire
from sensors.publisher import Publisher
from tests.sensors.test_pipeline import consume_all

pytestmark = [pytest.mark.broker, pytest.mark.slow]

KEYS = ["a" * 64, "b" * 64, None]  # two containers and the host


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    b = LocalBroker()
    b.start()
    yield b
    b.stop()


def _pump(pub: Publisher, seq: int, n: int, tag: str) -> int:
    """n rounds of one small batch per key, ticking like the sensor's loop."""
    for _ in range(n):
        for key in KEYS:
            pub.add({"id": f"h:{seq}:1", "syscall": "openat", "seq": seq, "tag": tag, "container_id": key})
            seq += 1
        pub.flush()
        pub.tick()
        time.sleep(0.002)
    return seq


def test_outage_mid_stream_keeps_order_and_loses_nothing(broker: LocalBroker, tmp_path: Path) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, local_broker=True))
    pub = Publisher(settings, tmp_path, delivery_timeout_ms=5000)
    seq = _pump(pub, 0, 200, "before")
    broker.stop()  # batches are still queued or in flight in the producer right now
    first_down = seq
    seq = _pump(pub, seq, 300, "down")
    assert pub.spooling and pub.spool.depth > 0
    broker.start()  # same port, empty memory storage: only what follows is checked
    deadline = time.monotonic() + 60
    while pub.spooling and time.monotonic() < deadline:
        seq = _pump(pub, seq, 5, "replay")
    assert not pub.spooling, "spool not replayed after the broker came back"
    last = _pump(pub, seq, 50, "after")
    pub.close()

    finals = set(range(last - len(KEYS), last))
    msgs = consume_all(
        broker.bootstrap,
        settings.topics.raw,
        timeout=30,
        # every key's last batch (partitions are read interleaved)
        until=lambda out: {e["seq"] for m in out for e in wire.events_of(m["value"])} >= finals,
    )
    by_key: dict[bytes, list[int]] = {}
    for m in msgs:  # consume_all returns each partition's messages in offset order
        by_key.setdefault(m["key"], []).extend(e["seq"] for e in wire.events_of(m["value"]))
    assert len(by_key) == 3
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"{key!r}: batches out of order"
    got = {s for seqs in by_key.values() for s in seqs}
    assert set(range(first_down, last)) <= got, "events made during or after the outage were lost"
    assert pub.dropped_events == 0
