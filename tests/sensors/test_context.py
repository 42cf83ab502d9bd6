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
        {"pid": 100, "entity_id": None, "exe": "/bin/sh", "comm": "sh", "cmdline": "sh -c payload"}
    ]  # the parent's start time is unknown here (no event of its own, no /proc)
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


def _at(e: dict[str, Any], start_ns: int) -> dict[str, Any]:
    e["process"]["start_boottime_ns"] = start_ns
    return e


def test_entity_ids_from_kernel_start_and_pid_reuse(tmp_path: Path) -> None:
    """Identity from (boot id, pid, kernel start): stable across exec, new on pid reuse."""
    procs = ProcTable(proc=tmp_path, boot="feedc0ffee12")
    ctx = Context(procs, CgroupResolver(root=tmp_path, rescan_interval=3600))
    ctx.apply(_at(ev("process_fork", 100, 1, {"child_pid": 200}), 5_000_000_000))
    e1 = ctx.apply(_at(ev("openat", 200, 100, {"path": "/a"}), 7_123_456_789))
    assert e1["process"]["entity_id"] == "feedc0ffee12-200-712"
    assert e1["process"]["ancestors"][0]["entity_id"] == "feedc0ffee12-100-500"
    x = ctx.apply(
        _at(
            ev(
                "execve",
                200,
                100,
                {"filename": "/bin/x", "argv": ["x"], "exe_memfd": False, "exe_name": None},
            ),
            7_123_456_789,
        )
    )
    assert x["process"]["entity_id"] == e1["process"]["entity_id"] and x["process"]["exe"] == "/bin/x"
    # the exit was missed; a new process reuses pid 200 under the same parent
    e2 = ctx.apply(_at(ev("openat", 200, 100, {"path": "/b"}), 9_000_000_000))
    assert e2["process"]["entity_id"] == "feedc0ffee12-200-900"
    assert e2["process"]["exe"] is None  # not the old image's
    # a child of the new process names the new one as its parent
    ctx.apply(_at(ev("process_fork", 200, 100, {"child_pid": 300}), 9_000_000_000))
    c = ctx.apply(_at(ev("openat", 300, 200, {"path": "/c"}), 9_500_000_000))
    assert [a["entity_id"] for a in c["process"]["ancestors"]] == [
        "feedc0ffee12-200-900",
        "feedc0ffee12-100-500",
    ]


def test_proc_scan_and_kernel_agree_on_entity_id() -> None:
    """A process known only from /proc gets the id the kernel's start time gives it."""
    procs = ProcTable()
    procs.scan()
    me = procs.get(os.getpid())
    assert me is not None
    eid = procs.entity(me)
    assert eid is not None and eid.split("-")[1] == str(os.getpid())
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    assert eid.startswith(boot + "-")
    ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert eid == f"{boot}-{os.getpid()}-{ticks}"
    ctx = Context(procs, CgroupResolver())
    e = ctx.apply(
        _at(ev("openat", os.getpid(), os.getppid(), {"path": "/x"}), ticks * 10_000_000 + 4_999_999)
    )
    assert e["process"]["entity_id"] == eid
    assert e["process"]["ancestors"][0]["entity_id"].startswith(f"{boot}-{os.getppid()}-")


def test_injection_target_identity_from_the_table_and_proc() -> None:
    """args.target: the target's identity and kernel facts, whatever the tracer is called."""
    import subprocess
    import sys

    procs = ProcTable()
    procs.scan()
    ctx = Context(procs, CgroupResolver())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    other = subprocess.Popen(["/bin/sleep", "30"], start_new_session=True)
    try:
        me, parent = os.getpid(), os.getppid()

        def traced(syscall: str, args: dict[str, Any]) -> dict[str, Any]:
            e = ev(syscall, me, parent, args)
            e["process"]["start_boottime_ns"] = 0
            return ctx.apply(e)["args"]

        t = traced("ptrace", {"request": "PTRACE_SETREGS", "target_pid": child.pid})["target"]
        assert t["pid"] == child.pid and t["is_descendant"] is True and t["same_container"] is True
        assert t["entity_id"] and t["entity_id"].split("-")[1] == str(child.pid)
        assert t["exe"] and Path(t["exe"]).name.startswith("python")
        # pid 1 descends from nobody
        t = traced("process_vm_writev", {"target_pid": 1})["target"]
        assert t["pid"] == 1 and t["is_descendant"] is False
        # reads and resumes carry no target; writes to /proc/<pid>/mem and task/<tid>/mem do
        assert "target" not in traced("ptrace", {"request": "PTRACE_PEEKDATA", "target_pid": child.pid})
        a = traced("openat", {"path": f"/proc/{other.pid}/task/{other.pid}/mem", "flags": ["O_RDWR"]})
        assert a["target"]["pid"] == other.pid and a["target"]["is_descendant"] is True
        a = traced("openat", {"path": "/proc/self/mem", "flags": ["O_RDWR"]})
        assert a["target"]["pid"] == me and a["target"]["is_descendant"] is False
        assert "target" not in traced("openat", {"path": "/proc/self/meminfo", "flags": []})
        gone = traced("ptrace", {"request": "PTRACE_ATTACH", "target_pid": 0x3FFFFFF0})["target"]
        assert gone == {"pid": 0x3FFFFFF0, "resolved": False}
    finally:
        child.kill()
        other.kill()
        child.wait()
        other.wait()


def test_container_tracer_already_gone_is_not_guessed(tmp_path: Path) -> None:
    """A tracer in a container names the target by its namespace's pid: with the tracer
    gone, the sensor cannot map it and says so instead of naming a host process."""
    from sensors.targets import TargetResolver

    procs = ProcTable()
    procs.scan()
    r = TargetResolver(procs)
    ev_c = {"process": {"pid": 0x3FFFFFF1, "ppid": 0x3FFFFFF2}, "container_id": CID}
    assert r.resolve(ev_c, 1) == {"pid": 1, "resolved": False}
    ev_h = {"process": {"pid": 0x3FFFFFF1, "ppid": 0x3FFFFFF2}, "container_id": None}
    assert r.resolve(ev_h, 1)["pid"] == 1 and r.resolve(ev_h, 1)["is_descendant"] is False


def test_events_of_one_thread_share_a_process_an_exec_does_not_rewrite_them(tmp_path: Path) -> None:
    procs = ProcTable(proc=tmp_path)
    ctx = Context(procs, CgroupResolver(root=tmp_path, rescan_interval=3600))
    procs.on_exec(300, 1, "sh", "/usr/bin/dash", "sh -c x")
    a = ctx.apply(ev("openat", 300, 1, {"path": "/etc/hostname"}))
    b = ctx.apply(ev("openat", 300, 1, {"path": "/etc/hosts"}))
    assert a["process"] is b["process"] and a["process"]["exe"] == "/usr/bin/dash"
    other = ev("openat", 300, 1, {"path": "/etc/hosts"})
    other["process"]["uid"] = 1000  # a setuid between events: a process dict of its own
    c = ctx.apply(other)
    assert c["process"] is not b["process"] and c["process"]["uid"] == 1000
    ctx.apply(ev("execve", 300, 1, {"filename": "/usr/bin/python3", "argv": ["python3"], "exe_memfd": False}))
    d = ctx.apply(ev("openat", 300, 1, {"path": "/etc/passwd"}))
    assert d["process"]["exe"] == "/usr/bin/python3" and d["process"]["cmdline"] == "python3"
    assert a["process"]["exe"] == "/usr/bin/dash" and a["process"]["cmdline"] == "sh -c x"


def _exec(pid: int, ppid: int, filename: str, **args: Any) -> dict[str, Any]:
    a = {"filename": filename, "argv": [filename], "exe_memfd": False, "exe_name": None, **args}
    return ev("execve", pid, ppid, a)


def test_exe_is_the_kernel_resolved_path(tmp_path: Path) -> None:
    """process.exe after an exec is args.exe_path, not the spelling the exec was given;
    the typed filename only when the kernel walk was truncated (and then says so)."""
    procs = ProcTable(proc=tmp_path)
    ctx = Context(procs, CgroupResolver(root=tmp_path, rescan_interval=3600))
    x = ctx.apply(_exec(200, 100, "./nginx", exe_path="/tmp/t/dash", exe_path_truncated=False))
    assert (x["process"]["exe"], x["process"]["exe_source"]) == ("/tmp/t/dash", "kernel")
    assert x["args"]["filename"] == "./nginx"  # the typed spelling stays on the exec event
    ctx.apply(ev("process_fork", 200, 100, {"child_pid": 201}))
    c = ctx.apply(ev("openat", 201, 200, {"path": "/etc/passwd"}))
    assert (c["process"]["exe"], c["process"]["exe_source"]) == ("/tmp/t/dash", "kernel")  # inherited
    assert c["process"]["ancestors"][0]["exe"] == "/tmp/t/dash"
    t = ctx.apply(_exec(201, 200, "//usr/./bin//" + "d" * 300, exe_path=None, exe_path_truncated=True))
    assert (t["process"]["exe"], t["process"]["exe_source"]) == ("//usr/./bin//" + "d" * 300, "typed")
    # runc 1.1 re-executes a clone of itself bind-mounted on a detached file: the walk says "/"
    r = ctx.apply(_exec(201, 200, "/proc/self/exe", exe_path="/", exe_path_truncated=False))
    assert (r["process"]["exe"], r["process"]["exe_source"]) == ("/proc/self/exe", "typed")
    m = ctx.apply(_exec(201, 200, "/proc/self/fd/3", exe_memfd=True, exe_name="memfd:x", exe_path="memfd:x"))
    assert (m["process"]["exe"], m["process"]["exe_source"]) == ("memfd:x", "kernel")


def test_proc_route_spells_exe_like_the_kernel_walk(tmp_path: Path) -> None:
    """A process learned from /proc gets readlink(/proc/PID/exe), normalised to the walk's
    spelling (a memfd as memfd:<name>)."""
    base = tmp_path / "321"
    base.mkdir()
    (base / "stat").write_text("321 (x) S 1 321 321 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4200 0 0\n")
    (base / "cmdline").write_bytes(b"x\0")
    (base / "exe").symlink_to("/memfd:stage (deleted)")
    p = read_proc(321, tmp_path)
    assert p is not None and (p.exe, p.exe_source) == ("memfd:stage", "proc")
    (base / "exe").unlink()
    (base / "exe").symlink_to("/usr/bin/dash")
    p = read_proc(321, tmp_path)
    assert p is not None and (p.exe, p.exe_source) == ("/usr/bin/dash", "proc")
