"""Shared fixtures: real parts only (local broker, eBPF, podman, Chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from memtrail.core.broker import LocalBroker
from memtrail.core.settings import KafkaSettings, Settings

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def _ebpf_missing() -> str | None:
    if os.geteuid() != 0:
        return "eBPF tests need root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc (Debian python3-bpfcc) does not import: run `make test`, which builds the venv from /usr/bin/python3"
    if not Path("/sys/kernel/tracing/events/syscalls").exists():
        return "tracefs with syscall tracepoints not mounted at /sys/kernel/tracing"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # In CI every real part is installed by the bootstrap, so a missing one is a failure, not a skip.
    reasons = {
        "ebpf": _ebpf_missing(),
        "podman": None if shutil.which("podman") else "podman not installed",
        "browser": None if shutil.which("chromium") else "chromium not installed",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords and os.environ.get("CI") != "true":
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def local_broker() -> Iterator[LocalBroker]:
    """One real Tansu broker for the whole session (memory storage)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalBroker(log_path=ARTIFACTS / "tansu.log") as broker:
        yield broker


@pytest.fixture
def settings(local_broker: LocalBroker, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings on the local broker with topic names unique to this test (no cross-test leaks)."""
    suffix = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]
    s = Settings(kafka=KafkaSettings(bootstrap=local_broker.bootstrap, partitions=4, local_broker=True))
    for field_name, value in s.topics.model_dump().items():
        setattr(s.topics, field_name, f"{value}.{suffix}")
    return s
