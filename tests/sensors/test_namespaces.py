"""Real eBPF: the namespaces a setns really joins (nsfs type, pidfd target), unshare + mount."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.sensors.cbuild import build, drained_run, trigger_pid
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def run(collector: Collector, mode: str) -> tuple[int, list[dict[str, Any]]]:
    """Run ``ns_escape MODE``; the pid it printed and the events of the trigger's pid."""
    stdout = drained_run(collector, [str(build("ns_escape")), mode])
    pid = trigger_pid(collector, "ns_escape", mode)
    return int(stdout.split()[0]), [e for e in collector.events if e["process"]["pid"] == pid]


def one(events: list[dict[str, Any]], syscall: str) -> dict[str, Any]:
    found = [e for e in events if e["syscall"] == syscall]
    assert len(found) == 1, [(e["syscall"], e["args"]) for e in events]
    return found[0]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def test_setns_fd_zero_joins_the_type_of_the_ns_file(collector: Collector) -> None:
    _, ev = run(collector, "setns0")
    s = one(ev, "setns")
    a = s["args"]
    assert s["ret"] == 0 and a["nstype"] == [] and a["ns_joined"] == ["CLONE_NEWNET"]
    assert a["fd_kind"] == "nsfs" and a["target_pid"] is None and a["ns_host"] is False
    assert a["ns_inum"] and a["ns_inum"] != os.stat("/proc/self/ns/net").st_ino  # the child's new netns
    got = alerts(ev)
    assert (
        "MT-ESCAPE-SETNS-UNPACKAGED-001" in got
        and "T1611" in got["MT-ESCAPE-SETNS-UNPACKAGED-001"].threat.technique.id
    )


def test_setns_into_the_host_namespace(collector: Collector) -> None:
    _, ev = run(collector, "host")
    a = one(ev, "setns")["args"]
    assert a["ns_joined"] == ["CLONE_NEWNS"] and a["fd_kind"] == "nsfs" and a["ns_host"] is True
    assert a["ns_inum"] == os.stat("/proc/self/ns/mnt").st_ino


def test_setns_on_a_pidfd_names_the_target(collector: Collector) -> None:
    target, ev = run(collector, "pidfd")
    s = one(ev, "setns")
    a = s["args"]
    assert s["ret"] == 0 and a["fd_kind"] == "pidfd" and a["target_pid"] == target
    assert sorted(a["ns_joined"]) == ["CLONE_NEWNET", "CLONE_NEWUTS"] and a["ns_inum"] is None
    assert "MT-ESCAPE-SETNS-UNPACKAGED-001" in alerts(ev)


def test_unshare_user_namespace_then_mount(collector: Collector) -> None:
    _, ev = run(collector, "userns_mount")
    u = one(ev, "unshare")
    assert u["ret"] == 0 and sorted(u["args"]["flags"]) == ["CLONE_NEWNS", "CLONE_NEWUSER"]
    mounts = [e for e in ev if e["syscall"] == "mount"]
    assert [m["ret"] for m in mounts] == [0, 0, 0]
    assert mounts[1]["args"]["fstype"] == "tmpfs"
    bind = mounts[2]["args"]
    assert bind["source"] == "/" and sorted(bind["flags"]) == ["MS_BIND", "MS_REC"]
    got = alerts(ev)
    assert (
        "MT-PRIVESC-USERNS-MOUNT-001" in got
        and "T1068" in got["MT-PRIVESC-USERNS-MOUNT-001"].threat.technique.id
    )


def test_new_mount_api_is_reported_as_mount(collector: Collector) -> None:
    """fsopen/fsconfig/fsmount + move_mount and open_tree + move_mount never call mount(2)."""
    _, ev = run(collector, "newapi")
    moves = [e for e in ev if e["syscall"] == "mount" and e["args"]["api"] == "move_mount"]
    assert [m["ret"] for m in moves] == [0, 0], [e["args"] for e in ev if e["syscall"] == "mount"]
    tmpfs, tree = moves[0]["args"], moves[1]["args"]
    assert (
        tmpfs["fstype"] == "tmpfs"
        and tmpfs["source"] == "mt-newapi"
        and tmpfs["target"].startswith("/tmp/mt-ns")
    )
    assert (
        tree["fstype"] == "bind" and tree["source"] == "/" and sorted(tree["flags"]) == ["MS_BIND", "MS_REC"]
    )
    got = alerts(ev)
    assert "MT-PRIVESC-USERNS-MOUNT-001" in got
