"""Synthetic events, Kafka helpers and a worker subprocess for the stream tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from memtrail.core.broker import free_port
from memtrail.core.children import stop_process
from memtrail.core.kafka import consumer_config, producer_config
from memtrail.core.settings import Settings
from schemas.events import synthetic_event
from tests.paths import REPO

ARTIFACTS = REPO / "test-artifacts"
_seq = itertools.count(1)


def event(
    syscall: str,
    pid: int = 4242,
    args: dict[str, Any] | None = None,
    container_id: str | None = None,
    host: str = "testhost",
    exe: str = "/usr/bin/python3",
    t: float | None = None,
    ret: int = 0,
) -> dict[str, Any]:
    t = time.time() if t is None else t
    ts_ns = time.monotonic_ns() + next(_seq)
    return synthetic_event(
        syscall,
        host=host,
        pid=pid,
        exe=exe,
        time_s=t,
        ts_ns=ts_ns,
        args=args,
        ret=ret,
        container_id=container_id,
    )


def memfd_pair(
    pid: int = 4242, container_id: str | None = None, t: float | None = None
) -> list[dict[str, Any]]:
    t = time.time() if t is None else t
    return [
        event("memfd_create", pid, {"name": "x", "flags": ["MFD_CLOEXEC"]}, container_id, t=t, ret=3),
        memfd_exec(pid, container_id, t + 0.01),
    ]


def memfd_exec(pid: int = 4242, container_id: str | None = None, t: float | None = None) -> dict[str, Any]:
    return event(
        "execve",
        pid,
        {"filename": "/proc/self/fd/3", "argv": ["x"], "exe_memfd": True, "exe_deleted": False},
        container_id,
        exe=f"/memfd:payload{pid} (deleted)",  # one executable per pid: grouping keys on it
        t=t,
    )


def batch(events: list[dict[str, Any]], key: str | None = None) -> tuple[bytes, bytes]:
    first = events[0]
    key = key or first.get("container_id") or f"host:{first['host']}"
    return key.encode(), orjson.dumps({"v": 1, "host": first["host"], "key": key, "events": events})


def produce(settings: Settings, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    p = Producer(producer_config(settings.kafka))
    for k, v in messages:
        p.produce(topic, key=k, value=v)
    assert p.flush(15) == 0


def consume(settings: Settings, topic: str, want: int, timeout: float = 30.0, idle: float = 0.0) -> list[Any]:
    """Read ``topic`` from the beginning until ``want`` messages (then ``idle`` more seconds) or timeout."""
    # Partitions assigned by hand: no group join (which costs seconds on Tansu).
    c = Consumer(consumer_config(settings.kafka, f"test-{os.getpid()}-{time.monotonic_ns()}"))
    meta = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.2):
                if m.error() is None:
                    out.append(m)
            if len(out) >= want:
                if idle <= 0:
                    break
                deadline = min(deadline, time.monotonic() + idle)
                idle = 0
    finally:
        c.close()
    return out


class WorkerProc:
    """A real ``memtrail worker`` subprocess with the real engine and pattern library."""

    def __init__(self, settings: Settings, log_path: Path, group_id: str, **env: str) -> None:
        self.metrics_port = free_port()
        self.log_path = log_path
        environ = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MEMTRAIL_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or "",
            "MEMTRAIL_KAFKA__LOCAL_BROKER": "true",
            "MEMTRAIL_KAFKA__PARTITIONS": str(settings.kafka.partitions),
            "MEMTRAIL_STREAM_GROUP_ID": group_id,
            "MEMTRAIL_STREAM_WEB_PORT": str(free_port()),
            "MEMTRAIL_STREAM_METRICS_PORT": str(self.metrics_port),
            **{f"MEMTRAIL_TOPICS__{k.upper()}": v for k, v in settings.topics.model_dump().items()},
            **env,
        }
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from memtrail.cli import main; main()", "worker"],
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
        return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.tail()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
            return str(r.read().decode())

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 20.0) -> int:
        code = stop_process(self.proc, timeout)
        self._log.close()
        return code

    def __enter__(self) -> WorkerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alert_docs(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in messages]


def techniques(doc: dict[str, Any]) -> list[str]:
    return list(doc["threat"]["technique"]["id"])


def metric(text: str, name: str) -> float:
    """Sum of the samples of ``name`` (any labels) in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def is_memfd_sequence(doc: dict[str, Any]) -> bool:
    """An alert of a memfd_create → exec sequence pattern (single-event memfd rules excluded)."""
    calls = [e["syscall"] for e in doc["evidence"]]
    return (
        "T1620" in techniques(doc)
        and len(calls) >= 2
        and calls[0] == "memfd_create"
        and calls[-1].startswith("exec")
    )


def has_pattern(doc: dict[str, Any], pattern_id: str) -> bool:
    """The alert is, or is an incident that includes, a match of ``pattern_id``."""
    return pattern_id in [p["id"] for p in doc.get("patterns") or ()] or doc["rule"]["id"] == pattern_id


def by_rule(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Alerts per rule id: several library patterns may match one memfd sequence."""
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["rule"]["id"], []).append(d)
    return out
