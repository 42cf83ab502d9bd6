"""bcc loader for ``sensor.bpf.c``: compile, configure through maps, drain the ring buffer.

The C text is compiled as written; the only build-time inputs are ``-D`` flags
(kernel field offsets from BTF, ring-buffer size). Filters are map contents and can
be changed while attached (:meth:`SensorProgram.set_open_prefixes`).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ebpf import ringbuf
from ebpf.btf import sensor_offsets
from ebpf.ringbuf import RingReader

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "sensor.bpf.c"
HEADER = HERE / "sensor.h"

MT_PREFIX_LEN = 64
CFG_SELF_TGID, CFG_OPEN_FILTER, CFG_MMAP_FILTER, CFG_CONNECT_ALL, CFG_RATE_LIMIT, CFG_ALLOW_COMMS = (
    0,
    1,
    2,
    3,
    4,
    5,
)
CNT_LOST, CNT_FILTERED, CNT_RATE_LIMITED = 0, 1, 2

#: Where opens are reported by default: what fileless and injection detections read.
DEFAULT_OPEN_PREFIXES: tuple[str, ...] = (
    "/proc/",
    "/dev/",
    "/etc/",
    "/tmp/",
    "/root/",
    "/var/run/",
    "/run/",
    "/var/tmp/",
    "/sys/kernel/",
    "/boot/",
    "/lib/modules/",
    "/home/",
)
#: Where write opens (O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND) are reported: persistence,
#: tampering and escapes are writes (cron, ld.so.preload, authorized_keys, binaries, logs,
#: cgroup release_agent, /proc/<pid>/mem).
DEFAULT_WRITE_PREFIXES: tuple[str, ...] = (
    *DEFAULT_OPEN_PREFIXES,
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/opt/",
    "/var/log/",
    "/var/spool/",
    "/var/lib/",
    "/sys/",
)
#: Where unlink/rename are reported: files droppers stage and remove, binaries replaced, logs wiped.
DEFAULT_PATH_PREFIXES: tuple[str, ...] = (
    "/tmp/",
    "/dev/shm/",
    "/var/tmp/",
    "/run/",
    "/etc/",
    "/root/",
    "/home/",
    "/var/log/",
    "/usr/bin/",
    "/usr/sbin/",
    "/bin/",
    "/sbin/",
    "/usr/lib/",
    "/lib/",
    "/var/spool/cron/",
)

#: The tracepoints the program attaches (for the heartbeat and docs).
_SYSCALLS = (
    "execve",
    "execveat",
    "memfd_create",
    "ptrace",
    "process_vm_writev",
    "process_vm_readv",
    "mprotect",
    "mmap",
    "munmap",
    "mremap",
    "brk",
    "pkey_mprotect",
    "fsopen",
    "fsconfig",
    "open_tree",
    "move_mount",
    "open",
    "openat",
    "openat2",
    "unshare",
    "setns",
    "connect",
    "unlink",
    "unlinkat",
    "rename",
    "renameat2",
    "chmod",
    "fchmodat",
    "mount",
    "clone",
    "clone3",
)
TRACEPOINTS: tuple[str, ...] = (
    *(f"syscalls:sys_{d}_{s}" for s in _SYSCALLS for d in ("enter", "exit")),
    "sched:sched_process_exec",
    "sched:sched_process_fork",
    "sched:sched_process_exit",
)


class LoadError(RuntimeError):
    """The program could not be compiled, loaded or attached."""


def source_text() -> str:
    """The C program (header inlined) exactly as compiled: what ``--print-bpf`` shows."""
    text = SOURCE.read_text()
    return text.replace('#include "sensor.h"', HEADER.read_text(), 1)


def build_cflags(offsets: dict[str, int] | None = None, ringbuf_pages: int = 2048) -> list[str]:
    if ringbuf_pages & (ringbuf_pages - 1):
        raise ValueError("ring buffer pages must be a power of two")
    offsets = offsets if offsets is not None else sensor_offsets()
    return [f"-D{k}={v}" for k, v in sorted(offsets.items())] + [f"-DMT_RINGBUF_PAGES={ringbuf_pages}", "-w"]


def _prefix_key(table: Any, prefix: str) -> Any:
    raw = prefix.encode()
    if len(raw) > MT_PREFIX_LEN:
        raise ValueError(f"path prefix longer than {MT_PREFIX_LEN} bytes: {prefix!r}")
    key = table.Key()
    key.prefixlen = len(raw) * 8
    ctypes.memmove(ctypes.addressof(key) + type(key).data.offset, raw, len(raw))
    return key


class SensorProgram:
    """The compiled, attached program. ``callback(data: bytes)`` gets each raw record."""

    def __init__(
        self,
        callback: Callable[[bytes], None],
        *,
        open_prefixes: Iterable[str] = DEFAULT_OPEN_PREFIXES,
        path_prefixes: Iterable[str] = DEFAULT_PATH_PREFIXES,
        write_prefixes: Iterable[str] = DEFAULT_WRITE_PREFIXES,
        open_filter: bool = True,
        mmap_filter: bool = True,
        connect_all: bool = False,
        exclude_pid: int | None = None,
        ringbuf_pages: int = 2048,
        allow_comms: Iterable[str] = (),
        rate_limit: int = 0,
        direct_ring: bool | None = None,
    ) -> None:
        """``direct_ring``: read the ring buffer through its mmap'd pages (default: where
        :func:`ebpf.ringbuf.supported`), else through bcc's per-record callback."""
        from bcc import BPF  # Debian's python3-bpfcc: imported late so pure modules stay importable

        try:
            self.bpf = BPF(text=source_text().encode(), cflags=build_cflags(ringbuf_pages=ringbuf_pages))
        except Exception as exc:  # bcc raises plain Exception on compile/load failure
            raise LoadError(f"cannot load the eBPF program: {exc}") from exc
        cfg = self.bpf[b"config"]
        cfg[ctypes.c_int(CFG_OPEN_FILTER)] = ctypes.c_uint64(int(open_filter))
        cfg[ctypes.c_int(CFG_MMAP_FILTER)] = ctypes.c_uint64(int(mmap_filter))
        cfg[ctypes.c_int(CFG_CONNECT_ALL)] = ctypes.c_uint64(int(connect_all))
        self.set_open_prefixes(open_prefixes)
        self.set_path_prefixes(path_prefixes)
        self.set_write_prefixes(write_prefixes)
        self.set_allow_comms(allow_comms)
        self.set_rate_limit(rate_limit)
        self.set_host_namespaces()
        # last: until the tracer's own pid is set the program reports nothing, so no
        # event is emitted under a half-written configuration
        cfg[ctypes.c_int(CFG_SELF_TGID)] = ctypes.c_uint64(
            exclude_pid if exclude_pid is not None else os.getpid()
        )

        self._callback = callback
        self._budget = 0
        self._seen = 0
        self._reader: RingReader | None = None
        events = self.bpf[b"events"]
        if direct_ring if direct_ring is not None else ringbuf.supported():
            try:
                self._reader = RingReader(events.map_fd, events.max_entries)
            except (OSError, ValueError):
                self._reader = None  # fall back to bcc's callback below
        if self._reader is None:

            def _on_event(_ctx: Any, data: Any, size: int) -> int:
                callback(ctypes.string_at(data, size))
                self._seen += 1
                # A negative return makes libbpf stop after this (consumed) record: one
                # poll never runs unbounded while the kernel produces faster than we read.
                return -1 if self._budget and self._seen >= self._budget else 0

            self._cb = _on_event  # keep a reference: bcc holds only a ctypes pointer
            events.open_ring_buffer(self._cb)

    def _set_prefixes(self, name: str, prefixes: Iterable[str]) -> None:
        table = self.bpf[name.encode()]
        table.clear()
        for p in prefixes:
            table[_prefix_key(table, p)] = ctypes.c_uint8(1)

    def set_open_prefixes(self, prefixes: Iterable[str]) -> None:
        """Replace the open/openat/openat2 prefix list ("/" = every absolute path)."""
        self._set_prefixes("open_prefixes", prefixes)

    def set_path_prefixes(self, prefixes: Iterable[str]) -> None:
        """Replace the unlink/rename prefix list."""
        self._set_prefixes("path_prefixes", prefixes)

    def set_write_prefixes(self, prefixes: Iterable[str]) -> None:
        """Replace the prefix list for write opens (create, truncate, append, O_WRONLY/O_RDWR)."""
        self._set_prefixes("write_prefixes", prefixes)

    def set_allow_comms(self, comms: Iterable[str]) -> None:
        """Task names whose *noisy* events (read-only opens and executable mappings,
        connects) are dropped in the kernel. Ships empty: add what a node's own agents do."""
        table = self.bpf[b"comm_allow"]
        table.clear()
        n = 0
        for c in comms:
            raw = c.encode()[:15]
            key = table.Key()
            ctypes.memmove(ctypes.addressof(key), raw, len(raw))
            table[key] = ctypes.c_uint8(1)
            n += 1
        self.bpf[b"config"][ctypes.c_int(CFG_ALLOW_COMMS)] = ctypes.c_uint64(int(n > 0))

    def set_rate_limit(self, per_second: int) -> None:
        """Noisy events per second per cgroup (0 = unlimited); excess is counted as rate_limited."""
        self.bpf[b"config"][ctypes.c_int(CFG_RATE_LIMIT)] = ctypes.c_uint64(max(0, per_second))

    def set_host_namespaces(self) -> None:
        """The inode numbers of PID 1's namespaces: a setns into one of them is flagged
        (``args.ns_host``). Where PID 1's are unreadable (a restricted init), the sensor's
        own, which are the host's: the sensor runs in the host's namespaces."""
        table = self.bpf[b"host_ns"]
        table.clear()
        for name in ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"):
            for root in ("/proc/1/ns", "/proc/self/ns"):
                try:
                    inum = os.stat(os.path.join(root, name)).st_ino
                except OSError:
                    continue
                table[ctypes.c_uint32(inum)] = ctypes.c_uint8(1)
                break

    def poll(self, budget: int = 0) -> int:
        """Drain what the ring buffer holds (records were submitted without wake-ups).

        With ``budget`` > 0, stop after that many records; returns how many were read
        (== budget means more may be waiting).
        """
        if self._reader is not None:
            return self._reader.consume(self._callback, budget)
        self._budget, self._seen = budget, 0
        self.bpf.ring_buffer_consume()
        return self._seen

    def counters(self) -> dict[str, int]:
        table = self.bpf[b"counters"]
        lost = sum(table[ctypes.c_int(CNT_LOST)])
        filtered = sum(table[ctypes.c_int(CNT_FILTERED)])
        limited = sum(table[ctypes.c_int(CNT_RATE_LIMITED)])
        return {"lost": int(lost), "filtered": int(filtered), "rate_limited": int(limited)}

    @property
    def direct_ring(self) -> bool:
        """True when the ring buffer is read through its mmap'd pages (:mod:`ebpf.ringbuf`)."""
        return self._reader is not None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.bpf.cleanup()
