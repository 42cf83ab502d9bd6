"""Fixtures for the extra sources: a real HTTPS audit webhook on the local broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memtrail.core.settings import Settings
from tests.sensors.k8s_audit.sources_helpers import Webhook
from tests.webhook_support import running_webhook


@pytest.fixture
def webhook(settings: Settings, tmp_path: Path) -> Iterator[Webhook]:
    """The real webhook (uvicorn + TLS) in a thread, publishing to this test's topics."""
    with running_webhook(settings, tmp_path / "tls") as (base, path, cert):
        yield Webhook(url=base + path, base=base, ca=cert)
