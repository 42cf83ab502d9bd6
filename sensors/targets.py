"""The process an injection primitive acts on: ``args.target`` of ptrace, process_vm_* and
opens of ``/proc/<pid>/mem``.

The tracer names its target by a pid in its own pid namespace; this module turns that
pid into the target's identity from the process table (and /proc on a miss): host pid,
entity id, exe, comm, container id, whether it lives in the tracer's container and
whether it descends from the tracer (a debugger running its own program: ``gdb ./prog``,
``strace cmd``). Patterns decide on these kernel facts, never on the tracer's name.

``{"pid": 4711, "entity_id": "...", "exe": "/usr/sbin/sshd", "comm": "sshd",
"container_id": null, "same_container": true, "is_descendant": false}``; ``pid`` is the
host pid (``ns_pid`` is added when the tracer lives in another pid namespace). A target
that cannot be resolved (already gone, or a tracer in a container whose namespace can no
longer be read) gives ``{"pid": <as passed>, "resolved": false}``: never a guess.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sensors.cgroups import container_id_from_path, path_from_proc
from sensors.proctable import Proc, ProcTable

#: ptrace requests that write into the tracee or redirect its execution, plus the attach
#: requests that start it all (the reads and resumes do not get a target)
TARGET_REQUESTS = frozenset(
    {
        "PTRACE_POKETEXT",
        "PTRACE_POKEDATA",
        "PTRACE_POKEUSR",
        "PTRACE_SETREGS",
        "PTRACE_SETFPREGS",
        "PTRACE_SETREGSET",
        "PTRACE_SETSIGINFO",
        "PTRACE_ATTACH",
        "PTRACE_SEIZE",
    }
)
_MEM_PATH = re.compile(r"^/proc/+(\d+|self|thread-self)(?:/+task/+(\d+))?/+mem$")
MAX_DEPTH = 64  # ancestry walked for is_descendant
_CACHE_MAX = 1024


def mem_path_pid(path: str, pid: int) -> int | None:
    """The process a ``/proc/<pid>/mem`` (or ``/proc/<pid>/task/<tid>/mem``) path names,
    ``pid`` being the opener's; None for any other path."""
    m = _MEM_PATH.match(path)
    if m is None:
        return None
    who = m.group(1)
    if who in ("self", "thread-self"):
        return pid
    # /proc/<tgid>/task/<tid>/mem: the process is the tgid (a tid is resolved below)
    return int(who)


def _status(proc: Path, pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
    except OSError:
        pass
    return out


class TargetResolver:
    def __init__(self, procs: ProcTable, proc: Path = Path("/proc")) -> None:
        self.procs = procs
        self.proc = proc
        self._cache: OrderedDict[tuple[Any, int], dict[str, Any]] = OrderedDict()
        self._ns_map: dict[tuple[str, int], int] = {}
        self._host_ns = self._pidns(os.getpid())

    def _pidns(self, pid: int) -> str | None:
        try:
            return os.readlink(self.proc / str(pid) / "ns" / "pid")
        except OSError:
            return None

    def _tracer_ns(self, ev: dict[str, Any]) -> str | None:
        """The tracer's pid namespace; if it is gone already, its parent's when that lives in
        the same container. None: unknown (a container tracer must not be guessed at)."""
        proc = ev["process"]
        ns = self._pidns(proc["pid"])
        if ns is not None:
            return ns
        cid = ev.get("container_id")
        if not cid:
            return self._host_ns  # a host process: the host's namespace
        ppid = proc.get("ppid") or 0
        if ppid > 1 and container_id_from_path(path_from_proc(ppid, self.proc) or "") == cid:
            return self._pidns(ppid)
        return None

    def _host_pid(self, ev: dict[str, Any], tpid: int) -> int | None:
        """``tpid`` as the tracer sees it → host pid (a tid gives its thread group)."""
        ns = self._tracer_ns(ev)
        if ns is None:
            return None
        if ns == self._host_ns:
            host = tpid
        else:
            host_opt = self._ns_map.get((ns, tpid))
            if host_opt is None:
                host_opt = self._scan_ns(ns, tpid)
                if host_opt is None:
                    return None
                if len(self._ns_map) > _CACHE_MAX:
                    self._ns_map.clear()
                self._ns_map[(ns, tpid)] = host_opt
            host = host_opt
        if self.procs.peek(host) is not None:
            return host
        tgid = _status(self.proc, host).get("Tgid")
        return int(tgid) if tgid and tgid.isdigit() else None

    def _scan_ns(self, ns: str, nspid: int) -> int | None:
        """The host pid of the task whose innermost pid in namespace ``ns`` is ``nspid``
        (only for tracers in another pid namespace: a bounded /proc walk, cached)."""
        try:
            names = os.listdir(self.proc)
        except OSError:
            return None
        for name in names:
            if not name.isdigit() or self._pidns(int(name)) != ns:
                continue
            nspids = _status(self.proc, int(name)).get("NSpid", "").split()
            if nspids and nspids[-1] == str(nspid):
                return int(name)
        return None

    def _is_descendant(self, target: Proc, tracer_pid: int) -> bool:
        pid = target.ppid
        for _ in range(MAX_DEPTH):
            if pid == tracer_pid:
                return True
            if pid <= 1:
                return False
            p = self.procs.get(pid)
            if p is None:
                return False
            pid = p.ppid
        return False

    def resolve(self, ev: dict[str, Any], tpid: int) -> dict[str, Any]:
        """``args.target`` for an event of the tracer ``ev`` aimed at ``tpid`` (its view)."""
        proc = ev["process"]
        tracer = proc["pid"]
        key = (proc.get("entity_id") or tracer, tpid)
        hit = self._cache.get(key)
        if hit is not None:
            live = self.procs.peek(hit["pid"])
            if live is not None and self.procs.entity(live) == hit["entity_id"]:
                return hit
        host = self._host_pid(ev, tpid) if tpid > 0 else None
        p = self.procs.get(host) if host is not None else None
        if p is None:
            return {"pid": tpid, "resolved": False}
        cid = container_id_from_path(path_from_proc(p.pid, self.proc) or "")
        mine = ev.get("container_id")
        out: dict[str, Any] = {
            "pid": p.pid,
            "entity_id": self.procs.entity(p),
            "exe": p.exe,
            "comm": p.comm,
            "container_id": cid,
            "same_container": cid == mine,
            "is_descendant": self._is_descendant(p, tracer),
        }
        if host != tpid:
            out["ns_pid"] = tpid
        self._cache[key] = out
        if len(self._cache) > _CACHE_MAX:
            self._cache.popitem(last=False)
        return out
