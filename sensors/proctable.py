"""Process cache fed by fork/exec/exit events, seeded by a /proc scan at start-up.

Gives each event its process's exe, command line, start time and a bounded list of
ancestors without asking /proc per event (short-lived processes are gone by then).
Bounded: the least recently touched entries are evicted (processes that exited while
the sensor was not looking, e.g. during a ring-buffer overflow, would otherwise stay).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_ANCESTORS = 5
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(slots=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    exe: str | None = None
    cmdline: str | None = None
    start_time_ns: int | None = None


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
    try:
        exe: str | None = os.readlink(base / "exe")
    except OSError:
        exe = None
    try:
        raw = (base / "cmdline").read_bytes()
        cmdline: str | None = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or None
    except OSError:
        cmdline = None
    return Proc(pid, ppid, comm, exe, cmdline, start_ns)


class ProcTable:
    def __init__(self, max_entries: int = 65536, proc: Path = Path("/proc")) -> None:
        self.max_entries = max_entries
        self.proc = proc
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

    def on_fork(self, parent: int, child: int, comm: str, ts_ns: int) -> None:
        par = self._procs.get(parent)
        self._put(Proc(child, parent, comm, par.exe if par else None, par.cmdline if par else None, ts_ns))

    def on_exec(self, pid: int, ppid: int, comm: str, exe: str | None, cmdline: str | None) -> None:
        old = self._procs.get(pid)
        self._put(Proc(pid, ppid, comm, exe, cmdline, old.start_time_ns if old else None))

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
            out.append({"pid": p.pid, "exe": p.exe, "comm": p.comm, "cmdline": p.cmdline})
            pid = p.ppid
        return out
