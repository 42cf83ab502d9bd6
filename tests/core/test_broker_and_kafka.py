"""The embedded broker and the shared Kafka helpers, on the real Tansu binary."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from memtrail.core.kafka import (
    BrokerUnreachable,
    check_reachable,
    consumer_config,
    ensure_topics,
    producer_config,
)
from memtrail.core.settings import KafkaSettings, Settings

pytestmark = pytest.mark.broker


def test_round_trip_through_local_broker(settings: Settings) -> None:
    ensure_topics(settings)
    ensure_topics(settings)  # idempotent
    topics = AdminClient({"bootstrap.servers": settings.kafka.bootstrap}).list_topics(timeout=10).topics
    assert settings.topics.raw in topics
    assert len(topics[settings.topics.raw].partitions) == settings.kafka.partitions

    producer = Producer(producer_config(settings.kafka))
    for i in range(50):
        producer.produce(settings.topics.raw, value=f"v{i}".encode(), key=b"container-a")
    assert producer.flush(10) == 0

    consumer = Consumer(consumer_config(settings.kafka, "test-round-trip"))
    consumer.subscribe([settings.topics.raw])
    got: list[bytes] = []
    partitions = set()
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value())
            partitions.add(msg.partition())
    consumer.close()
    assert got == [f"v{i}".encode() for i in range(50)]  # one key: one partition, in order
    assert len(partitions) == 1


def test_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(BrokerUnreachable, match=r"127\.0\.0\.1:1 unreachable"):
        check_reachable(KafkaSettings(bootstrap="127.0.0.1:1"), timeout=2)
    with pytest.raises(BrokerUnreachable, match="no Kafka bootstrap"):
        check_reachable(KafkaSettings(bootstrap=None))


def test_broker_command_runs_and_stops() -> None:
    from memtrail.core.broker import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtrail.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 20)
        check_reachable(KafkaSettings(bootstrap=f"127.0.0.1:{port}"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
