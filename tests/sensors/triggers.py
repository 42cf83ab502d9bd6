"""Trigger programs for the real-eBPF tests: ``python -m tests.sensors.triggers ACTION`` makes the
named syscalls.

Each action runs in its own process so the test can pick its events by pid. Raw
syscalls go through libc's ``syscall()`` (ctypes) so arguments are exactly what the
test asserts.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import socket
import sys
import tempfile
from typing import Any

from tests.sensors.libc import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, IoVec, libc

SYS = {
    "open": 2,
    "mmap": 9,
    "mprotect": 10,
    "ptrace": 101,
    "unshare": 272,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "execveat": 322,
    "openat2": 437,
    "memfd_create": 319,
}


def sc(name: str, *args: Any) -> int:
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(libc.syscall(ctypes.c_long(SYS[name]), *cargs))


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def main(action: str) -> None:
    if action == "open":
        fd = sc("open", b"/etc/hostname", os.O_RDONLY | os.O_CLOEXEC)
        os.close(fd)
    elif action == "openat":
        # The path sits in a file-backed page this process never touched: at sys_enter
        # it cannot be read yet, so the sensor must read it at sys_exit.
        with tempfile.NamedTemporaryFile(dir="/tmp") as tf:
            tf.write(b"/etc/hostname\0")
            tf.flush()
            base = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, tf.fileno(), 0)
            fd = int(
                libc.syscall(
                    ctypes.c_long(257),
                    ctypes.c_long(-100),
                    ctypes.c_void_p(base),
                    ctypes.c_long(os.O_RDONLY),
                    ctypes.c_long(0),
                )
            )
            os.close(fd)
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.open("/dev/mem", os.O_RDWR)
    elif action == "openat2":
        how = OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, 0x4)  # RESOLVE_NO_SYMLINKS
        fd = sc("openat2", -100, b"/etc/passwd", ctypes.byref(how), ctypes.sizeof(how))
        os.close(fd)
    elif action == "memfd_exec":
        fd = os.memfd_create("payload", 0)
        with open("/bin/true", "rb") as f:
            os.write(fd, f.read())
        os.execv(f"/proc/self/fd/{fd}", ["payload", "--stealth"])
    elif action == "deleted_exec":
        # a dropper that unlinks itself and runs from the open descriptor (fexecve)
        d = tempfile.mkdtemp(dir="/tmp")
        path = os.path.join(d, "dropper")
        with open("/bin/true", "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        os.chmod(path, 0o755)
        fd = os.open(path, os.O_RDONLY)
        os.unlink(path)
        os.rmdir(d)
        argv = (ctypes.c_char_p * 3)(b"dropper", b"--quiet", None)
        envp = (ctypes.c_char_p * 1)(None)
        sc("execveat", fd, b"", argv, envp, 0x1000)  # AT_EMPTY_PATH
    elif action == "wx":
        size = 4096
        addr = sc("mmap", 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        ctypes.memset(addr, 0xC3, 1)
        sc("mprotect", addr, size, PROT_READ | PROT_EXEC)
        sc("mmap", 0, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        print(addr, flush=True)
    elif action == "ptrace":
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/sleep", ["sleep", "2"])
        sc("ptrace", 16, pid, 0, 0)  # PTRACE_ATTACH
        os.waitpid(pid, 0)
        sc("ptrace", 4, pid, 0x1000, 0x90)  # PTRACE_POKETEXT (fails: EIO on an unmapped address)
        sc("ptrace", 17, pid, 0, 0)  # PTRACE_DETACH
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print(pid, flush=True)
    elif action == "process_vm":
        buf = ctypes.create_string_buffer(64)
        data = ctypes.create_string_buffer(b"x" * 64)
        local, remote = IoVec(ctypes.addressof(buf), 64), IoVec(ctypes.addressof(data), 64)
        sc("process_vm_readv", os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        sc("process_vm_writev", os.getpid(), ctypes.byref(remote), 1, ctypes.byref(local), 1, 0)
    elif action == "ns":
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)  # the original namespace
        sc("unshare", 0x04000000)  # CLONE_NEWUTS
        sc("setns", fd, 0x04000000)  # and back
    elif action == "connect":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            s.connect(("127.0.0.1", 9))
        s.close()
    elif action == "execveat":
        argv = (ctypes.c_char_p * 3)(b"/bin/true", b"from-execveat", None)
        envp = (ctypes.c_char_p * 2)(b"LD_PRELOAD=/tmp/execveat.so", None)
        sc("execveat", -100, b"/bin/true", argv, envp, 0)
    elif action == "exec_fail":
        with contextlib.suppress(OSError):
            os.execv("/nonexistent/binary", ["nope"])
    elif action == "files":
        d = tempfile.mkdtemp(dir="/tmp")
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        with open(a, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(a, 0o4755)
        os.rename(a, b)
        os.unlink(b)
        os.rmdir(d)
        print(d, flush=True)
    elif action == "mount":
        sc("unshare", 0x00020000)  # CLONE_NEWNS: the mount stays private to this process
        libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC|MS_PRIVATE: no propagation
        d = tempfile.mkdtemp(dir="/tmp")
        libc.mount(b"none", d.encode(), b"tmpfs", 0, None)
        libc.umount(d.encode())
        os.rmdir(d)
        print(d, flush=True)
    elif action == "threads":
        import threading

        ts = [threading.Thread(target=lambda: None) for _ in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid, flush=True)
    elif action == "exit3":
        sys.exit(3)
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(sys.argv[1])
