"""Process table and context enrichment on hand-made events (no kernel needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sensors.cgroups import CgroupResolver
from sensors.context import Context
from sensors.proctable import ProcTable, read_proc

CID = "b" * 64


def ev(
    syscall: str, pid: int, ppid: int, args: dict[str, Any], cgroup_id: int = 0, ret: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "syscall": syscall,
        "ret": ret,
        "ts_ns": 5,
        "args": args,
        "cgroup_id": cgroup_id,
        "process": {"pid": pid, "tid": pid, "ppid": ppid, "uid": 0, "gid": 0, "comm": "x"},
        **extra,
    }


def test_read_proc_self() -> None:
    p = read_proc(os.getpid())
    assert p is not None and p.pid == os.getpid() and p.ppid == os.getppid()
    assert p.exe and Path(p.exe).name.startswith("python") and p.cmdline and "pytest" in p.cmdline
    assert read_proc(0x7FFFFFF0) is None


def test_fork_exec_exit_lineage(tmp_path: Path) -> None:
    procs = ProcTable(proc=tmp_path)  # empty /proc: only what the events say
    ctx = Context(procs, CgroupResolver(root=tmp_path, rescan_interval=3600))
    procs.on_exec(100, 1, "sh", "/bin/sh", "sh -c payload")
    ctx.apply(ev("process_fork", 100, 1, {"child_pid": 200}))
    x = ctx.apply(
        ev(
            "execve",
            200,
            100,
            {
                "filename": "/proc/self/fd/3",
                "argv": ["payload", "-x"],
                "exe_memfd": True,
                "exe_name": "memfd:payload",
            },
            cgroup_id=77,
            cgroup_name=f"libpod_parent/libpod-{CID}",
        )
    )
    assert x["process"]["exe"] == "memfd:payload" and x["process"]["cmdline"] == "payload -x"
    assert x["process"]["ancestors"] == [
        {"pid": 100, "exe": "/bin/sh", "comm": "sh", "cmdline": "sh -c payload"}
    ]
    assert x["container_id"] == CID  # learned from the kernel's cgroup name
    o = ctx.apply(ev("openat", 200, 100, {"path": "/etc/shadow"}, cgroup_id=77))
    assert o["process"]["exe"] == "memfd:payload" and o["container_id"] == CID
    ctx.apply(ev("process_exit", 200, 100, {"exit_code": 0}))
    assert procs.get(200) is None


def test_ancestors_bounded_and_cycle_safe(tmp_path: Path) -> None:
    procs = ProcTable(proc=tmp_path)
    for pid in range(2, 12):
        procs.on_exec(pid, pid - 1, f"p{pid}", f"/bin/p{pid}", None)
    procs.on_exec(1, 11, "init", "/sbin/init", None)  # a cycle must not loop
    assert [a["pid"] for a in procs.ancestors(11)] == [11, 10, 9, 8, 7]


def test_table_is_bounded(tmp_path: Path) -> None:
    procs = ProcTable(max_entries=3, proc=tmp_path)
    for pid in range(10):
        procs.on_fork(1, 100 + pid, "t", 0)
    assert len(procs) == 3


def test_wire_lineage_serializes_the_same(tmp_path: Path) -> None:
    """The sensor keeps ancestors as pre-serialized JSON: the bytes on the wire do not change."""
    import orjson

    out = []
    for wire in (False, True):
        procs = ProcTable(proc=tmp_path)
        for pid, ppid in ((2, 1), (3, 2), (4, 3)):
            procs.on_exec(pid, ppid, f"p{pid}", f"/bin/p{pid}", f'p{pid} --arg "quoted" ü')
        ctx = Context(procs, CgroupResolver(root=tmp_path, rescan_interval=3600), wire_lineage=wire)
        events = [ctx.apply(ev("openat", 4, 3, {"path": f"/etc/{i}"})) for i in range(3)]
        out.append(orjson.dumps({"events": events}))
    assert out[0] == out[1]
    assert orjson.loads(out[1])["events"][2]["process"]["ancestors"][1]["cmdline"] == 'p2 --arg "quoted" ü'
