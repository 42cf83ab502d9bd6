"""Fixtures for the sink tests: recording stand-in servers and consumed-alert helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sinks.sinkfakes import OpenSearchStandIn, Recorder, WazuhStandIn


@pytest.fixture
def opensearch() -> Iterator[tuple[Recorder, OpenSearchStandIn]]:
    """A recording HTTP server answering like OpenSearch (none can run here)."""
    standin = OpenSearchStandIn()
    rec = Recorder(handler=standin).start()
    yield rec, standin
    rec.stop()


@pytest.fixture
def wazuh() -> Iterator[tuple[Recorder, WazuhStandIn]]:
    """A recording HTTP server answering like the Wazuh manager API (none can run here)."""
    standin = WazuhStandIn()
    rec = Recorder(handler=standin).start()
    yield rec, standin
    rec.stop()
