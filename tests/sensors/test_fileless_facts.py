"""Real eBPF: MT-FILELESS-002/003 decided on the executed file's kernel facts, not on names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sensors.cbuild import build, drained_run
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def exec_of(collector: Collector, mode: str) -> dict[str, Any]:
    child = int(drained_run(collector, [str(build("fileless_exec")), mode]).split()[0])
    found = collector.wait_for(
        lambda e: e["syscall"] in ("execve", "execveat") and e["process"]["pid"] == child and e["ret"] == 0,
        timeout=20,
    )
    assert found, f"exec of fileless_exec {mode} not seen ({collector.program.counters()})"
    return found[-1]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def test_memfd_named_like_a_kernel_thread(collector: Collector) -> None:
    x = exec_of(collector, "memfd")
    f = x["args"]["exe_file"]
    assert f["fs"] == "tmpfs" and f["nlink"] == 0 and x["args"]["exe_memfd"] is True
    got = alerts([x])
    assert "MT-FILELESS-002" in got and "T1620" in got["MT-FILELESS-002"].threat.technique.id
    assert "MT-FILELESS-003" not in got


def test_unlinked_shm_object(collector: Collector) -> None:
    x = exec_of(collector, "shm")
    f = x["args"]["exe_file"]
    # no "memfd:" name at all: only the facts say memory-only
    assert f["fs"] == "tmpfs" and f["nlink"] == 0 and x["args"]["exe_memfd"] is False
    assert "MT-FILELESS-002" in alerts([x])


def test_deleted_disk_file_with_a_memfd_like_name(collector: Collector) -> None:
    x = exec_of(collector, "deleted")
    f = x["args"]["exe_file"]
    assert f["fs"] != "tmpfs" and f["nlink"] == 0 and x["args"]["exe_deleted"] is True
    got = alerts([x])
    assert "MT-FILELESS-003" in got and "T1070.004" in got["MT-FILELESS-003"].threat.technique.id
    assert "MT-FILELESS-002" not in got  # a disk file is not memory-only, whatever its name
