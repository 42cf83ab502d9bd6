"""Process cache fed by fork/exec/exit events, seeded by a /proc scan at start-up.

Gives each event its process's exe, command line, start time and a bounded list of
ancestors without asking /proc per event (short-lived processes are gone by then).
Bounded: the least recently touched entries are evicted (processes that exited while
the sensor was not looking, e.g. during a ring-buffer overflow, would otherwise stay).

Process identity (``entity_id``): ``<boot>-<pid>-<start>``, where ``<boot>`` is the first
12 hex digits of the kernel's boot id (/proc/sys/kernel/random/boot_id), ``<pid>`` the
process id (thread-group id) in decimal and ``<start>`` the process's start time in
10 ms ticks since boot, in decimal: the kernel's ``start_boottime`` // 10_000_000, which
is also /proc/PID/stat field 22 (starttime, with USER_HZ 100), so a process seen by the
kernel and one seen only in /proc get the same id. Unique across pid reuse (a pid is
not reused within 10 ms) and across reboots; stable across exec.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensors.exe import PROC, proc_exe

MAX_ANCESTORS = 5
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
TICK_NS = 10_000_000  # entity-id time unit: 10 ms, /proc's starttime unit with USER_HZ 100


def read_boot_id(proc: Path = Path("/proc")) -> str:
    """The first 12 hex digits of the boot id ("000000000000" when unreadable)."""
    try:
        raw = (proc / "sys/kernel/random/boot_id").read_text()
    except OSError:
        return "0" * 12
    return raw.strip().replace("-", "")[:12] or "0" * 12


def entity_id(boot: str, pid: int, start_ticks: int) -> str:
    """The process entity id (module docstring); ``start_ticks`` = start_boottime_ns // TICK_NS."""
    return f"{boot}-{pid}-{start_ticks}"


@dataclass(slots=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    exe: str | None = None
    cmdline: str | None = None
    start_time_ns: int | None = None
    #: start_boottime in 10 ms ticks (the entity-id time); None until an event or /proc says
    start_ticks: int | None = None
    entity_id: str | None = None
    #: how ``exe`` was learned: kernel | proc | typed (sensors.exe); None when unknown
    exe_source: str | None = None


def read_proc(pid: int, proc: Path = Path("/proc")) -> Proc | None:
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split at the last ')'
    lpar, rpar = stat.index("("), stat.rindex(")")
    comm = stat[lpar + 1 : rpar]
    rest = stat[rpar + 2 :].split()
    ppid = int(rest[1])
    start_ns = int(rest[19]) * 1_000_000_000 // CLK_TCK
    ticks = int(rest[19]) * 100 // CLK_TCK
    exe = proc_exe(base)
    try:
        raw = (base / "cmdline").read_bytes()
        cmdline: str | None = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or None
    except OSError:
        cmdline = None
    return Proc(pid, ppid, comm, exe, cmdline, start_ns, ticks, exe_source=PROC if exe else None)


class ProcTable:
    def __init__(self, max_entries: int = 65536, proc: Path = Path("/proc"), boot: str | None = None) -> None:
        self.max_entries = max_entries
        self.proc = proc
        self.boot = boot or read_boot_id(proc)
        self._procs: OrderedDict[int, Proc] = OrderedDict()

    def __len__(self) -> int:
        return len(self._procs)

    def scan(self) -> int:
        """Seed from /proc (processes that existed before the sensor attached)."""
        for name in os.listdir(self.proc):
            if name.isdigit():
                p = read_proc(int(name), self.proc)
                if p:
                    self._put(p)
        return len(self._procs)

    def _put(self, p: Proc) -> None:
        self._procs[p.pid] = p
        self._procs.move_to_end(p.pid)
        while len(self._procs) > self.max_entries:
            self._procs.popitem(last=False)

    def get(self, pid: int) -> Proc | None:
        p = self._procs.get(pid)
        if p is None:
            p = read_proc(pid, self.proc)  # existed before us and was evicted, or raced the scan
            if p:
                self._put(p)
        return p

    def peek(self, pid: int) -> Proc | None:
        """The table's entry, without a /proc read on a miss."""
        return self._procs.get(pid)

    def entity(self, p: Proc) -> str | None:
        """``p``'s entity id; a start time not yet learned from an event is read from /proc."""
        if p.entity_id is not None:
            return p.entity_id
        if p.start_ticks is None:
            fresh = read_proc(p.pid, self.proc)
            if fresh is None or fresh.ppid != p.ppid:
                return None  # gone, or the pid is already someone else's: no guess
            p.start_ticks = fresh.start_ticks
        if p.start_ticks is None:
            return None
        p.entity_id = entity_id(self.boot, p.pid, p.start_ticks)
        return p.entity_id

    def learn_start(self, pid: int, start_boottime_ns: int, ppid: int = 0, comm: str = "") -> Proc:
        """Record the kernel's start time of ``pid`` (from any of its events). A different
        start than the one known means the pid was reused while the sensor missed the old
        process's exit: the stale entry is replaced from /proc when possible. A process
        neither in the table nor in /proc is entered with what its event says."""
        ticks = start_boottime_ns // TICK_NS
        p = self._procs.get(pid)
        if p is not None and p.start_ticks is not None and p.start_ticks != ticks:
            fresh = read_proc(pid, self.proc)
            if fresh is not None and fresh.start_ticks == ticks:
                self._put(fresh)
                p = fresh
            else:
                p.exe = p.cmdline = p.exe_source = None  # the old image's, not this process's
        elif p is None:
            p = self.get(pid)
            if p is None:
                p = Proc(pid, ppid, comm)
                self._put(p)
        if p.start_ticks != ticks:
            p.start_ticks = ticks
            p.entity_id = None
        return p

    def on_fork(self, parent: int, child: int, comm: str, ts_ns: int) -> None:
        par = self._procs.get(parent)
        self._put(
            Proc(
                child,
                parent,
                comm,
                par.exe if par else None,
                par.cmdline if par else None,
                ts_ns,
                exe_source=par.exe_source if par else None,
            )
        )

    def on_exec(
        self,
        pid: int,
        ppid: int,
        comm: str,
        exe: str | None,
        cmdline: str | None,
        exe_source: str | None = None,
    ) -> None:
        old = self._procs.get(pid)
        self._put(
            Proc(
                pid,
                ppid,
                comm,
                exe,
                cmdline,
                old.start_time_ns if old else None,
                old.start_ticks if old else None,  # exec keeps the process (and its identity)
                old.entity_id if old else None,
                exe_source,
            )
        )

    def on_exit(self, pid: int) -> None:
        self._procs.pop(pid, None)

    def ancestors(self, ppid: int, limit: int = MAX_ANCESTORS) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen = set()
        pid = ppid
        while pid > 0 and len(out) < limit and pid not in seen:
            seen.add(pid)
            p = self._procs.get(pid)
            if p is None:
                p = self.get(pid)
                if p is None:
                    break
            out.append(
                {
                    "pid": p.pid,
                    "entity_id": p.entity_id or self.entity(p),
                    "exe": p.exe,
                    "comm": p.comm,
                    "cmdline": p.cmdline,
                }
            )
            pid = p.ppid
        return out
