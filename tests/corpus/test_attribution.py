"""Attribution of alerts to corpus workloads (pure logic, no I/O)."""

from __future__ import annotations

from typing import Any

from bench.noise.attribution import Identity, attribute, latest, table, warn_or_above

CID = "a" * 64


def _alert(i: str, *, cid: str | None = None, cg: int = 0, pid: int = 10, ancestors: tuple[int, ...] = (),
           sev: str = "warning", count: int = 1, rule: str = "MT-X-001") -> dict[str, Any]:  # fmt: skip
    proc = {"pid": pid, "ppid": 1, "executable": "/bin/x", "ancestors": [{"pid": a} for a in ancestors]}
    return {
        "id": i,
        "rule": {"id": rule, "name": "x", "severity": sev},
        "container": {"id": cid},
        "process": proc,
        "evidence": [{"cgroup_id": cg, "process": proc}],
        "first_seen": "2026-01-01T00:00:10+00:00",
        "count": count,
    }


IDS = [
    Identity("web", container_ids={CID}, cgroup_ids={7}),
    Identity("build", cgroup_ids={9}, root_pids={500}, start=1767225600.0, end=1767225620.0),
]


def test_container_id_then_cgroup_then_pid_tree() -> None:
    assert attribute(_alert("1", cid=CID), IDS) == "web"
    assert attribute(_alert("2", cg=7), IDS) == "web"  # podman client / conmon / runc of the workload
    assert attribute(_alert("3", cg=9), IDS) == "build"
    assert attribute(_alert("4", ancestors=(42, 500)), IDS) == "build"


def test_other_processes_stay_unattributed() -> None:
    assert (
        attribute(_alert("1", cid="b" * 64, cg=7), IDS) is None
    )  # another container, same cgroup id ignored
    assert attribute(_alert("2", cg=3, pid=77), IDS) is None
    late = _alert("3", ancestors=(500,))
    late["first_seen"] = "2026-01-01T01:00:00+00:00"  # pid 500 reused long after the workload ended
    assert attribute(late, IDS) is None


def test_table_counts_distinct_alerts_and_keeps_the_last_update() -> None:
    alerts = [
        _alert("1", cid=CID, count=1),
        _alert("1", cid=CID, count=3),
        _alert("2", cid=CID, sev="info", rule="MT-Y-001"),
        _alert("3", cg=99, sev="critical", rule="MT-Z-001"),
    ]
    assert len(latest(alerts)) == 3
    per, other = table(alerts, IDS)
    assert per["web"]["MT-X-001"].alerts == 1 and per["web"]["MT-X-001"].count == 3
    assert warn_or_above(per["web"]) == 1
    assert per["build"] == {}
    assert list(other) == ["MT-Z-001"]
