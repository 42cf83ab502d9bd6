"""The Faust agents as thin shells, run in Faust's test context on ``memory://`` (no broker):
what goes in through the agent's channel comes out as sends to the output and dead-letter topics."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import faust
import orjson
import pytest
from faust.exceptions import AlreadyConfiguredWarning
from faust.topics import Topic

from memtrail.core.settings import KafkaSettings, Settings
from schemas.deadletter import DeadLetter
from streams.app import Pipeline, build_app
from streams.config import StreamOptions
from streams.correlate import default_engine_factory
from streams.guard import ContainedCorrelator
from tests.streams.helpers import batch, event, memfd_pair

CID = "d" * 64
META = {"id": CID, "name": "api", "image": "python:3", "runtime": "podman"}


Worker = tuple[faust.App, Pipeline, list[tuple[str, Any, Any]]]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Worker:
    return memory_worker(monkeypatch)


def memory_worker(monkeypatch: pytest.MonkeyPatch) -> Worker:
    """A worker app with the broker swapped for ``memory://`` and every send recorded."""
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1", partitions=1))
    opts = StreamOptions(container_join="reader", replay=False, take_within_s=0.01)
    correlator = ContainedCorrelator(default_engine_factory(settings.patterns_dirs))
    app, pipe = build_app(settings, opts, correlator)
    with warnings.catch_warnings():  # the topics were declared with the Kafka URL: never used here
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.conf.broker = "memory://"  # type: ignore[assignment]  # Faust coerces the URL
    app.finalize()
    app.conf.store = "memory://"  # type: ignore[assignment]
    app.flow_control.resume()
    sent: list[tuple[str, Any, Any]] = []

    async def send(self: Topic, *, key: Any = None, value: Any = None, **_: Any) -> asyncio.Future[None]:
        sent.append((self.get_topic_name(), key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    monkeypatch.setattr(Topic, "send", send)
    monkeypatch.setattr(app.consumer, "highwater", lambda tp: None)  # no consumer thread: lag unknown
    return app, pipe, sent


def of(sent: list[tuple[str, Any, Any]], topic: str) -> list[tuple[Any, Any]]:
    return [(k, v) for t, k, v in sent if t == topic]


async def test_enrich_agent_sends_enriched_and_dead_letters(worker: Any) -> None:
    app, pipe, sent = worker
    topics = pipe.settings.topics
    pipe.containers[CID] = META
    key, value = batch([event("execve", container_id=CID)])
    async with app.agents["enrich"].test_context() as agent:
        await agent.put(value, key=key)
        await agent.put(b"{broken", key=b"k2")
    (enriched,) = of(sent, topics.enriched)
    assert enriched[0] == key and orjson.loads(enriched[1])["containers"] == {CID: META}
    (dead,) = of(sent, topics.deadletter)
    rec = DeadLetter.model_validate(orjson.loads(dead[1]))
    assert rec.reason.startswith("not JSON") and rec.source_topic == topics.raw and rec.key == "k2"
    assert rec.value == "{broken"


async def test_correlate_agent_publishes_alerts(worker: Any) -> None:
    app, pipe, sent = worker
    topics = pipe.settings.topics
    key, value = batch(memfd_pair(pid=6101))
    async with app.agents["correlate"].test_context() as agent:
        await agent.put(value, key=key)
        await agent.put(b"[]", key=b"x")
    alerts = [orjson.loads(v) for _, v in of(sent, topics.alerts)]
    assert alerts and any(a["rule"]["severity"] in ("high", "critical") for a in alerts)
    (dead,) = of(sent, topics.deadletter)
    assert DeadLetter.model_validate(orjson.loads(dead[1])).reason.startswith("bad enriched batch")


async def test_audit_agent_dead_letters_a_bad_event(worker: Any) -> None:
    app, pipe, sent = worker
    topics = pipe.settings.topics
    async with app.agents["audit"].test_context() as agent:
        await agent.put(b"not json", key=b"a")
        await agent.put(orjson.dumps({"id": "x"}), key=b"b")
    reasons = [DeadLetter.model_validate(orjson.loads(v)).reason for _, v in of(sent, topics.deadletter)]
    assert [r.split(":")[0] for r in reasons] == ["not JSON", "event field 'ts_ns' missing"]
    assert of(sent, topics.alerts) == []


@pytest.mark.parametrize(
    ("setting", "session", "heartbeat"), [(None, 60.0, 3.0), (10.0, 10.0, 1.67), (120.0, 120.0, 20.0)]
)
def test_session_timeout_setting_reaches_the_consumer_group(
    monkeypatch: pytest.MonkeyPatch, setting: float | None, session: float, heartbeat: float
) -> None:
    """``MEMTRAIL_STREAM_SESSION_TIMEOUT_S`` bounds how long a member that could not leave holds
    the next join: it must reach Faust's group settings (unset: Faust's defaults)."""
    monkeypatch.delenv("MEMTRAIL_STREAM_SESSION_TIMEOUT_S", raising=False)
    if setting is not None:
        monkeypatch.setenv("MEMTRAIL_STREAM_SESSION_TIMEOUT_S", str(setting))
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1", partitions=1))
    opts = StreamOptions(container_join="reader", replay=False)
    assert opts.session_timeout_s == setting
    app, _ = build_app(settings, opts, ContainedCorrelator(default_engine_factory(settings.patterns_dirs)))
    assert app.conf.broker_session_timeout == session
    assert app.conf.broker_heartbeat_interval == pytest.approx(heartbeat, abs=0.01)


@pytest.mark.parametrize(("setting", "linger"), [(None, 0), ("5", 5)])
def test_producer_linger_setting_reaches_the_producer(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, linger: int
) -> None:
    """Each agent waits for its output to be confirmed before its next batch, so the linger is
    paid on every hop: none by default, ``MEMTRAIL_STREAM_PRODUCER_LINGER_MS`` to batch more."""
    monkeypatch.delenv("MEMTRAIL_STREAM_PRODUCER_LINGER_MS", raising=False)
    if setting is not None:
        monkeypatch.setenv("MEMTRAIL_STREAM_PRODUCER_LINGER_MS", setting)
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1", partitions=1))
    opts = StreamOptions(container_join="reader", replay=False)
    app, _ = build_app(settings, opts, ContainedCorrelator(default_engine_factory(settings.patterns_dirs)))
    assert app.conf.producer_linger_ms == linger
