"""The shared sink loop on the real local broker: commit after acceptance, backpressure, dead letters."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from memtrail.core.kafka import consumer_config, ensure_topics, producer_config
from memtrail.core.settings import Settings
from sinks.base import Incoming, Rejected, SinkBackpressure, SinkRunner
from tests.sinks.sinkfakes import make_alert

pytestmark = pytest.mark.broker


class ListSink:
    """In-memory sink: records what it was given; can refuse batches or reject alerts."""

    name = "list"

    def __init__(self, backpressure: int = 0, reject: set[str] | None = None) -> None:
        self.delivered: list[Incoming] = []
        self.calls = 0
        self.flushes = 0
        self.backpressure = backpressure
        self.reject = reject or set()

    async def start(self) -> None:
        pass

    async def deliver(self, batch: Sequence[Incoming]) -> list[Rejected]:
        self.calls += 1
        if self.backpressure:
            self.backpressure -= 1
            raise SinkBackpressure("destination busy", retry_after=0.2)
        out = [Rejected(it, "refused by test") for it in batch if it.id in self.reject]
        self.delivered += [it for it in batch if it.id not in self.reject]
        return out

    async def flush(self) -> None:
        self.flushes += 1

    async def close(self) -> None:
        pass


def _produce(settings: Settings, values: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer(producer_config(settings.kafka))
    for key, value in values:
        p.produce(settings.topics.alerts, key=key, value=value)
    assert p.flush(15) == 0


def _alerts(settings: Settings, ids: range) -> None:
    _produce(settings, [(f"alert-{i:05d}".encode(), orjson.dumps(make_alert(i))) for i in ids])


def _read_all(settings: Settings, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    c = Consumer(consumer_config(settings.kafka, f"reader-{time.monotonic_ns()}"))
    c.subscribe([topic])
    out: list[Any] = []
    end = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(orjson.loads(m.value() or b"null"))
    finally:
        c.close()
    return out


class Running:
    def __init__(self, sink: ListSink, settings: Settings, **kw: Any) -> None:
        self.runner = SinkRunner(sink, settings, batch_timeout=0.2, **kw)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _wait(cond: Any, timeout: float = 30) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_delivers_commits_and_resumes_after_the_committed_offset(settings: Settings) -> None:
    ensure_topics(settings)
    _alerts(settings, range(20))
    sink = ListSink()
    with Running(sink, settings, group_id="g1"):
        assert _wait(lambda: len(sink.delivered) == 20)
    assert sorted(it.id for it in sink.delivered) == [f"alert-{i:05d}" for i in range(20)]
    assert sink.flushes >= 1
    assert sink.delivered[0].alert == make_alert(int(sink.delivered[0].id[-5:]))

    _alerts(settings, range(20, 25))
    again = ListSink()
    with Running(again, settings, group_id="g1"):
        assert _wait(lambda: len(again.delivered) == 5)
        time.sleep(1)
    assert sorted(it.id for it in again.delivered) == [f"alert-{i:05d}" for i in range(20, 25)]


def test_backpressure_holds_the_batch_and_drops_nothing(settings: Settings) -> None:
    ensure_topics(settings)
    _alerts(settings, range(30))
    sink = ListSink(backpressure=3)
    with Running(sink, settings, group_id="g2", batch_size=10):
        assert _wait(lambda: len(sink.delivered) == 30)
        time.sleep(0.5)
    assert sink.calls >= 4
    assert sorted(it.id for it in sink.delivered) == [f"alert-{i:05d}" for i in range(30)]
    assert len(sink.delivered) == 30  # held and sent again, not re-consumed twice


def test_bad_input_and_rejections_go_to_the_dead_letter_topic(settings: Settings) -> None:
    ensure_topics(settings)
    bad_alert = {**make_alert(7), "rule": {"id": "MT-X"}}
    _produce(
        settings,
        [
            (b"k-json", b"{not json"),
            (b"k-alert", orjson.dumps(bad_alert)),
            (b"alert-00001", orjson.dumps(make_alert(1))),
            (b"alert-00002", orjson.dumps(make_alert(2))),
            (None, b"\xff\xfe binary"),
        ],
    )
    sink = ListSink(reject={"alert-00002"})
    with Running(sink, settings, group_id="g3"):
        assert _wait(lambda: len(sink.delivered) == 1)
        dead = _read_all(settings, settings.topics.deadletter, 4)
    assert [it.id for it in sink.delivered] == ["alert-00001"]
    by_key = {d["key"]: d for d in dead}
    assert len(dead) == 4
    assert by_key["k-json"]["reason"].startswith("not JSON")
    assert by_key["k-json"]["value"] == "{not json" and by_key["k-json"]["value_encoding"] == "text"
    assert by_key["k-alert"]["reason"] == "not an alert: rule.name: Field required"
    assert orjson.loads(by_key["k-alert"]["value"]) == orjson.loads(orjson.dumps(bad_alert))
    assert by_key["alert-00002"]["reason"] == "refused by test"
    assert by_key[None]["value_encoding"] == "base64"
    for d in dead:
        assert d["source_topic"] == settings.topics.alerts and d["component"] == "sink:list"
        assert {"partition", "offset", "time"} <= set(d)


def test_metrics_count_deliveries_and_dead_letters(settings: Settings) -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_ok = value("memtrail_sink_deliveries_total", sink="list")
    before_bad = value("memtrail_sink_failures_total", sink="list", reason="invalid")
    before_batches = value("memtrail_sink_batch_seconds_count", sink="list")
    ensure_topics(settings)
    _alerts(settings, range(4))
    _produce(settings, [(b"x", b"[]")])
    sink = ListSink()
    with Running(sink, settings, group_id="g4"):
        assert _wait(lambda: len(sink.delivered) == 4)
        assert _wait(
            lambda: value("memtrail_sink_failures_total", sink="list", reason="invalid") > before_bad
        )
    assert value("memtrail_sink_deliveries_total", sink="list") - before_ok == 4
    assert value("memtrail_sink_batch_seconds_count", sink="list") > before_batches


def test_up_local_sinks_run_in_the_same_loop(settings: Settings, tmp_path: Any) -> None:
    """`memtrail up`'s console and JSONL sinks: a line per alert, the file synced before the
    commit (a second run delivers nothing twice), a non-alert dead-lettered, not printed."""
    import io

    from sinks.jsonl import JsonlSink
    from sinks.local import LocalSink

    ensure_topics(settings)
    _alerts(settings, range(7))
    _produce(settings, [(b"junk", b"not an alert <script>")])
    out, path = io.StringIO(), tmp_path / "alerts.jsonl"
    with Running(LocalSink(JsonlSink(path), out=out), settings, group_id="up-local"):  # type: ignore[arg-type]
        assert _wait(lambda: out.getvalue().count("\n") == 7 and path.read_bytes().count(b"\n") == 7)
    assert sorted(orjson.loads(line)["id"] for line in path.read_bytes().splitlines()) == [
        f"alert-{i:05d}" for i in range(7)
    ]
    assert "script" not in out.getvalue()
    dead = [d for d in _read_all(settings, settings.topics.deadletter, 99, timeout=5) if d["key"] == "junk"]
    assert dead and dead[0]["component"] == "sink:local"
    again = io.StringIO()
    with Running(LocalSink(None, out=again), settings, group_id="up-local"):  # type: ignore[arg-type]
        time.sleep(2)
    assert again.getvalue() == ""


def test_readiness_follows_the_broker(tmp_path: Any) -> None:
    """A broker that stops answering turns the sink loop (and so every sink's /readyz) not
    ready, with the reason; when a broker answers on that address again, ready again and
    delivering. A real Tansu, killed and started anew (it comes back empty)."""
    from memtrail.core.broker import LocalBroker
    from memtrail.core.settings import KafkaSettings

    broker = LocalBroker(log_path=tmp_path / "tansu.log").start()
    settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, partitions=1, local_broker=True))
    ensure_topics(settings)
    sink = ListSink()
    runner = Running(sink, settings, group_id="g-outage", probe_interval=0.5)
    try:
        with runner:
            assert _wait(lambda: runner.runner.ready)
            broker.stop()
            assert _wait(lambda: not runner.runner.ready, timeout=20)
            assert runner.runner.broker_error
            broker = LocalBroker(port=broker.port, log_path=tmp_path / "tansu2.log").start()
            ensure_topics(settings)
            assert _wait(lambda: runner.runner.ready, timeout=30)
            _alerts(settings, range(3))
            assert _wait(lambda: len(sink.delivered) == 3, timeout=60)
    finally:
        broker.stop()
