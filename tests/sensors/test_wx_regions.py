"""Real eBPF: W->X at region granularity, from C triggers that run the code they arm."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sensors.cbuild import build, drained_run, trigger_pid
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf

RX = ["PROT_READ", "PROT_EXEC"]


def run(collector: Collector, mode: str, *extra: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Run ``wx_region MODE [connect]``; its printed numbers and the events of its pid and children."""
    stdout = drained_run(collector, [str(build("wx_region")), mode, *extra])
    nums = [int(x) for x in stdout.split()]
    pid = trigger_pid(collector, "wx_region", mode)
    kids = {
        e["args"]["child_pid"]
        for e in collector.events
        if e["syscall"] == "process_fork" and e["process"]["pid"] == pid
    }
    return nums, [e for e in collector.events if e["process"]["pid"] in {pid, *kids}]


def xmem(events: list[dict[str, Any]], addr: int) -> list[dict[str, Any]]:
    """mprotect events of ``addr`` and mmap events that mapped at ``addr``."""
    return [
        e
        for e in events
        if (e["syscall"] == "mprotect" and e["args"]["addr"] == addr)
        or (e["syscall"] == "mmap" and e["ret"] == addr)
    ]


def covers(args: dict[str, Any], start: int, length: int) -> bool:
    """The reported writable region holds [start, start+length) (adjacent regions merge, as VMAs do)."""
    return args["region_start"] <= start and args["region_start"] + args["region_len"] >= start + length


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def test_exact_start_w_to_x(collector: Collector) -> None:
    (region, x), ev = run(collector, "exact")
    (mp,) = xmem(ev, x)
    a = mp["args"]
    assert a["w_to_x"] is True and a["wx"] is False and a["prot"] == RX and mp["ret"] == 0
    assert a["prev_prot"] == ["PROT_READ", "PROT_WRITE"]
    assert covers(a, region, 2 * 4096) and a["region_kind"] == "anon"
    assert a["wx_count"] == 0
    # the RW mapping itself is state only, never an event
    assert not [e for e in ev if e["syscall"] == "mmap" and e["ret"] == region]
    got = alerts(ev)
    assert "MT-MEM-002" in got and "T1620" in got["MT-MEM-002"].threat.technique.id


def test_interior_sub_range(collector: Collector) -> None:
    (region, x), ev = run(collector, "interior")
    (mp,) = xmem(ev, x)
    a = mp["args"]
    assert x != region and a["w_to_x"] is True
    assert covers(a, region, 16 * 4096) and a["region_kind"] == "anon"
    assert "MT-MEM-002" in alerts(ev)


def test_pkey_mprotect_is_mprotect(collector: Collector) -> None:
    (region, x), ev = run(collector, "pkey")
    (mp,) = xmem(ev, x)
    assert (
        mp["syscall"] == "mprotect" and mp["args"]["w_to_x"] is True and covers(mp["args"], region, 4 * 4096)
    )
    assert "MT-MEM-002" in alerts(ev)


def test_decoy_regions_leave_a_trace(collector: Collector) -> None:
    """48 writable decoys after the payload overflow the 32-slot table: the payload's interval
    may be evicted, but the overflow is reported and alerts on its own."""
    (_, x), ev = run(collector, "decoys")
    (mp,) = xmem(ev, x)
    a = mp["args"]
    assert a["region_overflow"] is True
    got = alerts(ev)
    assert ("MT-MEM-002" in got) if a["w_to_x"] else ("MT-MEM-OVERFLOW-001" in got), (a, sorted(got))


def test_rw_then_rx_of_a_sub_range(collector: Collector) -> None:
    (rw, x), ev = run(collector, "subrange")
    (mp,) = xmem(ev, x)
    a = mp["args"]
    assert a["w_to_x"] is True and covers(a, rw, 2 * 4096)
    assert a["region_kind"] == "unknown"  # made writable by mprotect, its mmap was not writable
    assert "MT-MEM-002" in alerts(ev)


def test_map_fixed_rx_over_rw(collector: Collector) -> None:
    (_, x), ev = run(collector, "fixed")
    fixed = [e for e in xmem(ev, x) if e["syscall"] == "mmap"]
    assert len(fixed) == 1
    a = fixed[0]["args"]
    assert "MAP_FIXED" in a["flags"] and a["prot"] == RX and a["fd"] >= 0
    assert a["w_to_x"] is True and a["region_kind"] == "file" and fixed[0]["ret"] == x
    got = alerts(ev)
    assert "MT-MEM-FIXED-001" in got and "T1620" in got["MT-MEM-FIXED-001"].threat.technique.id

    (_, x), ev = run(collector, "fixed_anon")
    (e,) = [e for e in xmem(ev, x) if e["syscall"] == "mmap"]
    assert e["args"]["w_to_x"] is True and e["args"]["region_kind"] == "anon"


def test_fresh_rx_and_stale_and_read_only_first_are_not_w_to_x(collector: Collector) -> None:
    for mode in ("fresh", "stale", "relro"):
        (region, _), ev = run(collector, mode)
        mine = [
            e
            for e in ev
            if e["syscall"] in ("mmap", "mprotect") and region <= e["args"]["addr"] < region + 4 * 4096
        ]
        assert mine, mode
        assert not [e for e in mine if e["args"]["w_to_x"]], (mode, [e["args"] for e in mine])
        assert not {"MT-MEM-002", "MT-MEM-FIXED-001"} & set(alerts(ev)), mode


def test_heap_bss_mremap_and_fork(collector: Collector) -> None:
    for mode, kind in (("heap", "heap"), ("bss", "data"), ("mremap", "anon")):
        (_, x), ev = run(collector, mode)
        (mp,) = [e for e in xmem(ev, x) if e["syscall"] == "mprotect"]
        assert mp["args"]["w_to_x"] is True and mp["args"]["region_kind"] == kind, (mode, mp["args"])
        assert "MT-MEM-002" in alerts(ev), mode
    (_, x, child), ev = run(collector, "fork")
    (mp,) = [e for e in xmem(ev, x) if e["syscall"] == "mprotect"]
    assert mp["process"]["pid"] == child and mp["args"]["w_to_x"] is True


def test_wx_at_once_and_repeat_count(collector: Collector) -> None:
    (_, x), ev = run(collector, "wx")
    (mm,) = [e for e in xmem(ev, x) if e["syscall"] == "mmap"]
    assert mm["args"]["wx"] is True and mm["args"]["w_to_x"] is False
    assert "MT-MEM-001" in alerts(ev)

    (_, x), ev = run(collector, "toggle")
    rx = [e for e in xmem(ev, x) if e["syscall"] == "mprotect" and e["args"]["prot"] == RX]
    assert len(rx) == 20 and all(e["args"]["w_to_x"] for e in rx)
    assert [e["args"]["wx_count"] for e in rx] == list(range(20))


@pytest.mark.parametrize("mode", ["exact", "interior", "fixed", "wx"])
def test_w_to_x_then_a_connect_is_a_stager(collector: Collector, mode: str) -> None:
    """MT-MEM-SEQ-001 on each route to executable memory (mprotect of the whole region, of an
    interior page, a memfd mapped RX over its RW mapping, RWX at once), then a connect."""
    _, ev = run(collector, mode, "connect")
    assert any(e["syscall"] == "connect" for e in ev), "the trigger's connect was not seen"
    got = alerts(ev)
    assert "MT-MEM-SEQ-001" in got and "T1620" in got["MT-MEM-SEQ-001"].threat.technique.id, sorted(got)


def test_the_loader_mapping_a_library_then_a_connect_is_not_a_stager(collector: Collector) -> None:
    """dlopen of a system library then a connect stays quiet. (Here the loader's mapping is not
    W->X; the W->X library mapping a Python test run produced is kept as the pattern's no_match
    example, copied from that run's evidence, so `memtrail patterns test` guards that case.)"""
    _, ev = run(collector, "dlopen", "connect")
    libs = [
        e for e in ev if e["syscall"] == "mmap" and str(e["args"].get("path", "")).startswith("/usr/lib/")
    ]
    assert libs, "the library's mappings were not seen"
    assert any(e["syscall"] == "connect" for e in ev)
    assert "MT-MEM-SEQ-001" not in alerts(ev)
