"""Every change Memtrail makes to Faust's and aiokafka's internals, in one place.

Each one works around a behaviour the libraries offer no option for; each relies on a
private name, so tests/streams/test_faust_patches.py checks that the name still exists and
still does what the patch assumes, and fails on a library upgrade that moves it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def patch_fetch_wait(wait_ms: int) -> None:
    """Faust hard-codes fetch_max_wait_ms=1500; on Tansu that long-poll adds ~0.75 s per hop."""
    cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(cls, "_memtrail_patched", None) == wait_ms:
        return
    original = getattr(cls, "_memtrail_original", cls._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    cls._memtrail_original = original  # type: ignore[attr-defined]
    cls._create_worker_consumer = create  # type: ignore[method-assign]
    cls._memtrail_patched = wait_ms  # type: ignore[attr-defined]


def patch_lz4_level(level: int) -> None:
    """aiokafka compresses lz4 at level 9 (LZ4-HC, ~2.2 µs per 500-byte event here, a tenth of
    the worker's time); levels 0-2 are LZ4's fast mode (~0.2 µs, ratio 9 instead of 13).
    Any Kafka consumer reads either. aiokafka has no option for it, and its Cython record
    builder imported the function itself: change the function's default level."""
    from aiokafka import codec

    codec.lz4_encode.__defaults__ = (level,)


class ExternalChangelogTable(faust.GlobalTable):
    """A GlobalTable whose changelog is a topic of ours (``changelog_topic=``).

    Faust's assignor names a global table's changelog ``<app id>-<table>-changelog``
    whatever topic was given, fails with a KeyError on it, and the worker never gets an
    assignment: name the topic the table actually reads."""

    def _changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()


def leave_consumer_group(app: faust.App, timeout_s: float = 30.0) -> bool:
    """Stop the worker's aiokafka consumer so it sends LeaveGroup, before the process is replaced.

    Faust runs that consumer on its own thread and loop and offers no call for this. Without
    it, a member the old consumer registered stays in the group until its session times out,
    and the new process's join waits for that (up to a minute against a real Kafka).
    aiokafka's stop first lets a join in flight finish (a broker that came back empty gets
    one from the old consumer within a second), and only a member that joined can leave:
    ``timeout_s`` covers the broker's rebalance delay. True when the consumer stopped in time."""
    thread = getattr(app.consumer, "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    if thread is None or loop is None or not loop.is_running():
        return False
    consumer = thread._ensure_consumer()
    future = asyncio.run_coroutine_threadsafe(consumer.stop(), loop)
    try:
        future.result(timeout_s)
    except Exception:
        future.cancel()
        return False
    return True
