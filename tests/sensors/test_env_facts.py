"""Real eBPF: the loader's variables anywhere in the environment (scanned by bytes, not by count)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sensors.cbuild import build, drained_run
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def exec_of(collector: Collector, mode: str) -> dict[str, Any]:
    """The /bin/true exec the ``envhide MODE`` trigger's child made (its pid is printed)."""
    child = int(drained_run(collector, [str(build("envhide")), mode]).split()[0])
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["process"]["pid"] == child and e["ret"] == 0, timeout=20
    )
    assert found, f"exec of envhide {mode} not seen ({collector.program.counters()})"
    return found[-1]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def techniques(got: dict[str, Any]) -> set[str]:
    return {t for a in got.values() for t in a.threat.technique.id}


def test_preload_after_30k_of_filler(collector: Collector) -> None:
    x = exec_of(collector, "deep")
    a = x["args"]
    assert a["ld_preload"] == "/tmp/kfacts-evil.so" and a["ld_preload_len"] == len("/tmp/kfacts-evil.so")
    assert a["ld_preload_truncated"] is False and a["env_truncated"] is False
    assert a["env_count"] == 200 and a["env_size"] > 30_000 and a["env_scanned"] == a["env_size"]
    assert a["ld_audit"] is None and a["glibc_tunables"] is None
    assert any(t.startswith("T1574.006") for t in techniques(alerts([x])))


def test_ld_audit(collector: Collector) -> None:
    x = exec_of(collector, "audit")
    a = x["args"]
    assert a["ld_audit"] == "/dev/shm/kfacts-audit.so" and a["ld_preload"] is None
    got = alerts([x])
    assert "MT-LOADER-AUDIT-001" in got and "T1574.006" in got["MT-LOADER-AUDIT-001"].threat.technique.id


def test_glibc_tunables_long_value(collector: Collector) -> None:
    x = exec_of(collector, "tunables")
    a = x["args"]
    assert a["glibc_tunables"].startswith("glibc.malloc.mxfast=glibc.malloc.mxfast=AAAA")
    assert len(a["glibc_tunables"]) == 127 and a["glibc_tunables_truncated"] is True
    assert a["glibc_tunables_len"] == 6000 - len("GLIBC_TUNABLES=")
    assert a["env_truncated"] is False
    got = alerts([x])
    assert "MT-LOADER-TUNABLES-001" in got and "T1068" in got["MT-LOADER-TUNABLES-001"].threat.technique.id


def test_scan_past_the_byte_budget_is_flagged(collector: Collector) -> None:
    x = exec_of(collector, "beyond")
    a = x["args"]
    assert a["env_size"] > 40_000 and a["env_scanned"] < a["env_size"] and a["env_truncated"] is True
    assert a["ld_preload"] is None  # never a guess: the flag says the scan did not reach it


def test_many_tiny_variables_are_flagged(collector: Collector) -> None:
    x = exec_of(collector, "tiny")
    a = x["args"]
    assert a["env_truncated"] is True and a["env_count"] < 1000
    assert "MT-LOADER-ENVHIDE-001" in alerts([x])
