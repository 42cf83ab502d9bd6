"""What the shim publishes: the self-test event pair and custom pattern upserts."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from memtrail.core.kafka import BrokerUnreachable, producer_config
from memtrail.core.settings import Settings
from schemas.events import Event, EventBatch, ProcessInfo, partition_key

SELFTEST_HOST = "memtrail-selftest"


class PublishError(RuntimeError):
    """The broker did not acknowledge a message in time."""


def selftest_batch(now: float | None = None, pid: int | None = None) -> EventBatch:
    """A fileless exec as the sensor reports it: memfd_create, then execve of /proc/self/fd/N.

    Same pid, ``source: "test"``, host ``memtrail-selftest``: it travels the whole pipeline
    (enrichment, correlation) and comes back as a T1620 alert, without touching the kernel.
    """
    now = time.time() if now is None else now
    pid = pid or 40000 + (int(now * 1000) % 20000)
    ts = time.monotonic_ns()
    fd = 3
    proc = ProcessInfo(
        pid=pid,
        tid=pid,
        ppid=1,
        uid=0,
        gid=0,
        comm="selftest-loader",
        exe="/usr/bin/python3",
        cmdline="python3 -c memfd-loader",
        ancestors=[{"pid": 1, "exe": "/sbin/init", "comm": "init", "cmdline": "/sbin/init"}],
    )
    memfd = Event(
        id=f"{SELFTEST_HOST}:{ts}:{pid}",
        ts_ns=ts,
        time=now,
        host=SELFTEST_HOST,
        syscall="memfd_create",
        ret=fd,
        args={"name": "selftest", "flags": ["MFD_CLOEXEC"]},
        process=proc,
        source="test",
    )
    exec_proc = proc.model_copy(
        update={"comm": str(fd), "exe": "/memfd:selftest (deleted)", "cmdline": f"/proc/self/fd/{fd}"}
    )
    execve = Event(
        id=f"{SELFTEST_HOST}:{ts + 1_000_000}:{pid}",
        ts_ns=ts + 1_000_000,
        time=now + 0.001,
        host=SELFTEST_HOST,
        syscall="execve",
        ret=0,
        args={
            "filename": f"/proc/self/fd/{fd}",
            "argv": [f"/proc/self/fd/{fd}"],
            "dirfd": -100,
            "flags": [],
            "exe_memfd": True,
            "exe_deleted": True,
            "ld_preload": None,
            "ld_library_path": None,
        },
        process=exec_proc,
        source="test",
    )
    return EventBatch(host=SELFTEST_HOST, key=partition_key(SELFTEST_HOST, None), events=[memfd, execve])


class Publisher:
    """One lazily created idempotent producer; every publish waits for the broker's ack."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _get(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(
                    producer_config(self.settings.kafka, **{"message.timeout.ms": int(self.timeout * 1000)})
                )
            return self._producer

    def publish(self, topic: str, key: str, value: bytes) -> None:
        errors: list[str] = []

        def done(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        try:
            producer = self._get()
            producer.produce(topic, key=key.encode(), value=value, on_delivery=done)
        except (KafkaException, BufferError, BrokerUnreachable) as exc:
            raise PublishError(f"cannot publish to {topic}: {exc}") from exc
        left = producer.flush(self.timeout)
        if left or errors:
            raise PublishError(f"broker did not acknowledge {topic}: {errors[0] if errors else 'timeout'}")

    def publish_selftest(self) -> EventBatch:
        batch = selftest_batch()
        self.publish(self.settings.topics.raw, batch.key, orjson.dumps(batch.model_dump(mode="json")))
        return batch

    def publish_pattern(self, pattern_id: str, spec: dict[str, Any], op: str = "upsert") -> None:
        self.publish(self.settings.topics.patterns, pattern_id, orjson.dumps({"op": op, "spec": spec}))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout)
