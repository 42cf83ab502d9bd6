"""sensors.loader: the mmaps of a process exec'd without an ELF interpreter (pure state)."""

from __future__ import annotations

from typing import Any

from sensors.loader import MAX_MAPS, LoaderRuns


def exec_ev(pid: int, interp: bool | None, *, trace: bool = False, ret: int = 0) -> dict[str, Any]:
    f = None if interp is None else {"fs": "ext4", "nlink": 1, "interp": interp}
    return {
        "syscall": "execve",
        "ret": ret,
        "process": {"pid": pid},
        "args": {"exe_path": "/tmp/helper", "filename": "/tmp/helper", "exe_file": f, "ld_trace": trace},
    }


def mmap_ev(pid: int, path: str, prot: tuple[str, ...] = ("PROT_READ", "PROT_EXEC")) -> dict[str, Any]:
    return {
        "syscall": "mmap",
        "ret": 0x7F0000000000,
        "process": {"pid": pid},
        "args": {"path": path, "prot": list(prot)},
    }


def test_program_then_libraries() -> None:
    lr = LoaderRuns()
    lr.on_exec(exec_ev(10, interp=False))
    evs = [mmap_ev(10, p) for p in ("/dev/shm/x", "/tmp/evil.so", "/dev/shm/x", "/usr/lib/libc.so.6")]
    for e in evs:
        lr.on_mmap(e)
    roles = [(e["args"]["loader"]["role"], e["args"]["loader"]["index"]) for e in evs]
    assert roles == [("program", 0), ("library", 1), ("program", 2), ("library", 3)]
    assert all(e["args"]["loader"]["program"] == "/dev/shm/x" for e in evs)
    assert evs[0]["args"]["loader"]["loader"] == "/tmp/helper" and evs[0]["args"]["loader"]["trace"] is False


def test_untracked_cases() -> None:
    lr = LoaderRuns()
    lr.on_exec(exec_ev(1, interp=True))  # an ordinary dynamic program
    lr.on_exec(exec_ev(2, interp=None))  # facts unknown: claim nothing
    lr.on_exec(exec_ev(3, interp=False, ret=-2))  # failed exec
    for pid in (1, 2, 3):
        e = mmap_ev(pid, "/tmp/x.so")
        lr.on_mmap(e)
        assert "loader" not in e["args"]
    # a new exec or the exit ends the tracking
    lr.on_exec(exec_ev(4, interp=False))
    lr.on_exec(exec_ev(4, interp=True))
    e = mmap_ev(4, "/tmp/x.so")
    lr.on_mmap(e)
    assert "loader" not in e["args"]
    lr.on_exec(exec_ev(5, interp=False, trace=True))
    e = mmap_ev(5, "/tmp/p")
    lr.on_mmap(e)
    assert e["args"]["loader"]["trace"] is True
    lr.on_exit(5)
    e = mmap_ev(5, "/tmp/q")
    lr.on_mmap(e)
    assert "loader" not in e["args"]


def test_bounded_per_process() -> None:
    lr = LoaderRuns()
    lr.on_exec(exec_ev(7, interp=False))
    evs = [mmap_ev(7, f"/lib/l{i}.so") for i in range(MAX_MAPS + 5)]
    for e in evs:
        lr.on_mmap(e)
    assert sum("loader" in e["args"] for e in evs) == MAX_MAPS


def test_fork_inherits_the_run() -> None:
    """A process exec'd without an interpreter that forks before (or after) the program is
    mapped: the child's executable mappings carry the same loader facts."""
    lr = LoaderRuns()
    lr.on_exec(exec_ev(20, interp=False))
    lr.on_fork(20, 21)  # forked before anything was mapped
    first = mmap_ev(21, "/dev/shm/x")
    lr.on_mmap(first)
    assert first["args"]["loader"]["role"] == "program" and first["args"]["loader"]["loader"] == "/tmp/helper"
    lib = mmap_ev(21, "/tmp/evil.so")
    lr.on_mmap(lib)
    assert lib["args"]["loader"]["role"] == "library" and lib["args"]["loader"]["program"] == "/dev/shm/x"
    # the parent's own state is its own
    par = mmap_ev(20, "/dev/shm/y")
    lr.on_mmap(par)
    assert par["args"]["loader"]["role"] == "program" and par["args"]["loader"]["program"] == "/dev/shm/y"
    lr.on_fork(20, 22)  # forked after: the program is known, the child's maps are libraries
    late = mmap_ev(22, "/tmp/other.so")
    lr.on_mmap(late)
    assert late["args"]["loader"]["role"] == "library" and late["args"]["loader"]["program"] == "/dev/shm/y"
    lr.on_fork(99, 100)  # an untracked parent: nothing
    e = mmap_ev(100, "/tmp/x.so")
    lr.on_mmap(e)
    assert "loader" not in e["args"]
