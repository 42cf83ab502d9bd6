"""The private Faust/aiokafka names that streams/faust_patches.py relies on still exist and
still behave as the patches assume: a library upgrade that moves one fails here, not in
production as a slow worker or a worker that never gets an assignment."""

from __future__ import annotations

import inspect

import faust
from aiokafka import codec
from aiokafka.consumer import AIOKafkaConsumer
from aiokafka.record import default_records
from faust.assignor import partition_assignor
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_patches import ExternalChangelogTable, patch_fetch_wait, patch_lz4_level


async def test_fetch_wait_patch_reaches_the_consumer_faust_builds() -> None:
    cls = faust_aiokafka.AIOKafkaConsumerThread
    builder = getattr(cls, "_memtrail_original", cls._create_worker_consumer)
    # Faust builds its consumer in this method and passes its hard-coded wait there ...
    assert "fetch_max_wait_ms" in inspect.getsource(builder)
    # ... and aiokafka keeps it in this attribute until start() hands it to its fetcher.
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)
    assert consumer._fetch_max_wait_ms == 1500
    assert "self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    patch_fetch_wait(40)
    assert cls._create_worker_consumer is not builder
    patch_fetch_wait(40)  # idempotent: the original is kept, not wrapped twice
    assert cls._memtrail_original is builder  # type: ignore[attr-defined]


def test_lz4_level_patch_reaches_the_record_builder() -> None:
    saved = codec.lz4_encode.__defaults__
    assert saved is not None and len(saved) == 1, "lz4_encode's signature changed"
    payload = b'{"type":"openat","path":"/etc/ld.so.cache","comm":"nginx"}' * 40
    try:
        patch_lz4_level(0)
        # The batch builder calls this very function object, so its default is the level used.
        assert default_records.lz4_encode is codec.lz4_encode
        fast = codec.lz4_encode(payload)
        assert fast == codec.lz4_encode(payload, 0)
        assert codec.lz4_decode(fast) == payload
    finally:
        codec.lz4_encode.__defaults__ = saved


def test_changelog_name_override_is_the_one_the_assignor_reads() -> None:
    assert "_changelog_topic_name" in vars(faust.tables.base.Collection)
    assert "table._changelog_topic_name()" in inspect.getsource(partition_assignor)
    assert issubclass(ExternalChangelogTable, faust.GlobalTable)
    app = faust.App("memtrail-patch-probe", broker="kafka://127.0.0.1:1", store="memory://")
    topic = app.topic("memtrail.containers", key_type=bytes, value_type=bytes, partitions=1, internal=False)
    table = ExternalChangelogTable(
        app, name="containers", partitions=1, changelog_topic=topic, is_global=True
    )
    assert table._changelog_topic_name() == "memtrail.containers"


def test_leave_group_reaches_the_consumer_faust_runs() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    from streams.faust_patches import leave_consumer_group

    app = faust.App("memtrail-patch-probe-leave", broker="kafka://127.0.0.1:1", store="memory://")
    thread = app.consumer._thread  # type: ignore[attr-defined]
    # Faust runs the aiokafka consumer on this thread's own loop ...
    assert isinstance(thread, faust_aiokafka.AIOKafkaConsumerThread)
    assert callable(thread._ensure_consumer)
    assert "thread_loop" in inspect.signature(type(thread).__init__).parameters or hasattr(
        thread, "thread_loop"
    )
    # ... and stopping that consumer closes its coordinator, which sends LeaveGroup.
    assert "self._coordinator.close()" in inspect.getsource(AIOKafkaConsumer.stop)
    assert "_maybe_leave_group" in inspect.getsource(GroupCoordinator.close)
    # A worker whose consumer thread never started has nothing to leave.
    assert leave_consumer_group(app, timeout_s=0.1) is False
