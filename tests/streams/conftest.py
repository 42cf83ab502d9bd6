"""Module-scoped settings and one real ``memtrail worker`` subprocess shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memtrail.core.broker import LocalBroker
from memtrail.core.kafka import ensure_topics
from memtrail.core.settings import KafkaSettings, Settings
from tests.streams.helpers import ARTIFACTS, WorkerProc


def module_settings(broker: LocalBroker, suffix: str) -> Settings:
    s = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, partitions=4, local_broker=True))
    for name, value in s.topics.model_dump().items():
        setattr(s.topics, name, f"{value}.{suffix}")
    ensure_topics(s)
    return s


@pytest.fixture(scope="module")
def stream_settings(local_broker: LocalBroker, request: pytest.FixtureRequest) -> Settings:
    return module_settings(local_broker, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def worker(stream_settings: Settings, request: pytest.FixtureRequest) -> Iterator[WorkerProc]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    ARTIFACTS.mkdir(exist_ok=True)
    with WorkerProc(stream_settings, ARTIFACTS / f"worker-{name}.log", f"g-{name}") as w:
        w.wait_ready()
        yield w
