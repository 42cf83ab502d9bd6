"""The shim's store sink: a message parsed by ``ShimConsumer`` is validated once, not again in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from memtrail.core.settings import KafkaSettings, Settings
from schemas.alerts import Alert
from schemas.heartbeat import SensorHeartbeat
from sinks.base import Incoming
from sinks.shim.consumer import ShimConsumer, StoreSink
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import heartbeat, make_alert


def test_each_message_is_validated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1"))
    store = Store(str(tmp_path / "s.sqlite3"))
    consumer = ShimConsumer(settings, store)
    topics = settings.topics
    alert, beat = make_alert("a-1"), heartbeat("node-1", 1.0)
    raw_alert, raw_beat = alert.model_dump_json(by_alias=True).encode(), beat.model_dump_json().encode()

    calls: list[str] = []
    for cls in (Alert, SensorHeartbeat):
        for name in ("model_validate", "model_validate_json"):
            real = getattr(cls, name)

            def counted(
                *args: Any, _real: Any = real, _what: str = f"{cls.__name__}.{name}", **kw: Any
            ) -> Any:
                calls.append(_what)
                return _real(*args, **kw)

            monkeypatch.setattr(cls, name, counted)
    items = [
        Incoming(consumer._parse(topics.alerts, raw_alert), None, topics.alerts, 0, 0, raw_alert),
        Incoming(consumer._parse(topics.heartbeats, raw_beat), None, topics.heartbeats, 0, 1, raw_beat),
    ]
    rejected = asyncio.run(StoreSink(store, topics.alerts).deliver(items))
    assert rejected == []
    assert sorted(calls) == ["Alert.model_validate_json", "SensorHeartbeat.model_validate_json"]
    assert store.get_alert("a-1") is not None


def test_a_document_from_elsewhere_is_still_validated(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite3"))
    doc = make_alert("a-2").to_json_dict()
    item = Incoming(doc, None, "alerts", 0, 0, b"")
    assert asyncio.run(StoreSink(store, "alerts").deliver([item])) == []
    assert store.get_alert("a-2") is not None
