"""Adds what the kernel record lacks: process exe/cmdline/ancestors and the container id.

Pure apart from the /proc and cgroupfs reads its two caches do on a miss. The
per-process part (exe, cmdline, start time, ancestors) is built once per process and
shared by its events until that process execs or exits (a parent's later exec is not
reflected in the ancestors its existing children already carry).

With ``wire_lineage`` (the sensor, whose events go only to orjson), the ancestors
list is kept as its serialized JSON (``orjson.Fragment``): orjson copies those bytes
instead of walking up to five dicts per event. The JSON on the wire is the same.

Executable: ``exe`` is the file the kernel executed (``sensors.exe``: the exec's resolved
``exe_path``, or /proc/PID/exe for a process learned from /proc), ``exe_source`` how it
was learned; a fork inherits both, and ancestors carry the same ``exe``.

Identity: the process and each ancestor carry ``entity_id`` (``sensors.proctable``),
the event's own from the kernel's ``start_boottime_ns`` in the record. The per-process
part is cached per (pid, ppid, kernel start time), so a new process that reuses a pid
never inherits the old one's exe, cmdline or identity.
"""

from __future__ import annotations

from typing import Any

import orjson

from sensors.cgroups import CgroupResolver
from sensors.exe import exec_exe
from sensors.loader import LoaderRuns
from sensors.peers import StdioPeers
from sensors.proctable import TICK_NS, Proc, ProcTable, entity_id
from sensors.targets import TARGET_REQUESTS, TargetResolver, mem_path_pid

_LIFECYCLE = frozenset(("process_fork", "execve", "execveat", "process_exit"))
#: syscalls that name another process (``args.target``, sensors.targets), and connect
#: (stdio peers, sensors.peers); opens are checked inline (``/proc/<pid>/mem``)
_SPECIAL = frozenset(("ptrace", "process_vm_writev", "process_vm_readv", "connect"))
_OPENS = frozenset(("openat", "open", "openat2"))


class Context:
    def __init__(self, procs: ProcTable, cgroups: CgroupResolver, *, wire_lineage: bool = False) -> None:
        self.procs = procs
        self.cgroups = cgroups
        self.wire_lineage = wire_lineage
        self._proc_cache: dict[int, tuple[int, Any, dict[str, Any]]] = {}
        #: tid -> (decoded process values, per-process part, the shared process dict)
        self._shared: dict[Any, tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]] = {}
        self.targets = TargetResolver(procs, procs.proc)
        self.peers = StdioPeers(procs, procs.proc)
        self.loader_runs = LoaderRuns()

    def _process_part(self, pid: int, ppid: int, pstart: Any) -> dict[str, Any]:
        hit = self._proc_cache.get(pid)
        if hit is not None and hit[0] == ppid and hit[1] == pstart:
            return hit[2]
        procs = self.procs
        if pstart:  # the kernel's start time: learn it (and notice a reused pid)
            p: Proc | None = procs.learn_start(pid, pstart, ppid)
            eid: str | None = entity_id(procs.boot, pid, pstart // TICK_NS)
        else:
            p = procs.get(pid)
            eid = procs.entity(p) if p else None
        ancestors: Any = procs.ancestors(ppid)
        if self.wire_lineage:
            ancestors = orjson.Fragment(orjson.dumps(ancestors))
        part = {
            "entity_id": eid,
            "exe": p.exe if p else None,
            "exe_source": p.exe_source if p else None,
            "cmdline": p.cmdline if p else None,
            "start_time_ns": p.start_time_ns if p else None,
            "ancestors": ancestors,
        }
        if len(self._proc_cache) > 8192:
            self._proc_cache.clear()
        self._proc_cache[pid] = (ppid, pstart, part)
        return part

    def apply(self, ev: dict[str, Any]) -> dict[str, Any]:
        proc = ev["process"]
        pid = proc["pid"]
        if ev["syscall"] in _LIFECYCLE:
            return self._apply_lifecycle(ev)
        # the per-event hot path: a process already seen, an event that changes nothing
        hit = self._proc_cache.get(pid)
        ppid = proc["ppid"]
        pstart = proc.get("start_boottime_ns")
        if hit is not None and hit[0] == ppid and hit[1] == pstart:
            part = hit[2]
        else:
            part = self._process_part(pid, ppid, pstart)
        # Consecutive events of one thread with the same kernel identity share one process
        # dict: the wire encoder then recognises it by identity instead of comparing fields.
        vals = tuple(proc.values())
        tid = proc.get("tid")
        last = self._shared.get(tid)
        if last is not None and last[1] is part and last[0] == vals:
            ev["process"] = last[2]
        else:
            proc.update(part)
            if len(self._shared) > 8192:
                self._shared.clear()
            self._shared[tid] = (vals, part, proc)
        ev["container_id"] = self.cgroups.container_id(ev["cgroup_id"], pid)
        sc = ev["syscall"]
        if sc in _OPENS:
            if ev["args"]["path"].endswith("/mem"):
                self._add_target(ev)
        elif sc == "mmap":
            if "path" in ev["args"]:  # a file mapped executable: the loader's own loads
                self.loader_runs.on_mmap(ev)
        elif sc in _SPECIAL:
            if sc == "connect":
                self.peers.on_connect(ev)
            else:
                self._add_target(ev)
        return ev

    def _add_target(self, ev: dict[str, Any]) -> None:
        """``args.target`` for injection primitives and ``/proc/<pid>/mem`` opens."""
        args = ev["args"]
        sc = ev["syscall"]
        if sc == "ptrace":
            if args.get("request") not in TARGET_REQUESTS:
                return
            tpid = args.get("target_pid")
        elif sc.startswith("process_vm"):
            tpid = args.get("target_pid")
        else:
            path = args.get("path")
            if not (isinstance(path, str) and path.endswith("mem") and path.startswith("/proc/")):
                return
            tpid = mem_path_pid(path, ev["process"]["pid"])
        if isinstance(tpid, int):
            args["target"] = self.targets.resolve(ev, tpid)

    def _apply_lifecycle(self, ev: dict[str, Any]) -> dict[str, Any]:
        """fork, exec and exit: update the process table (and the kernel's cgroup name) first."""
        proc = ev["process"]
        pid = proc["pid"]
        syscall = ev["syscall"]
        args = ev["args"]
        pstart = proc.get("start_boottime_ns")
        if syscall != "process_fork":
            self._proc_cache.pop(pid, None)  # exe/cmdline change (exec) or it is gone (exit)
        if pstart:
            self.procs.learn_start(pid, pstart, proc["ppid"], proc["comm"])
        if syscall == "process_fork":
            self.procs.on_fork(pid, args["child_pid"], proc["comm"], ev["ts_ns"])
            self.loader_runs.on_fork(pid, args["child_pid"])
        elif syscall != "process_exit" and ev["ret"] == 0:
            exe, source = exec_exe(args)
            self.procs.on_exec(pid, proc["ppid"], proc["comm"], exe, " ".join(args["argv"]) or None, source)
        proc.update(self._process_part(pid, proc["ppid"], pstart))
        if syscall == "process_exit":
            self.loader_runs.on_exit(pid)
            self.procs.on_exit(pid)
            self._proc_cache.pop(pid, None)
        if "cgroup_name" in ev:
            self.cgroups.learn(ev["cgroup_id"], ev["cgroup_name"])
        ev["container_id"] = self.cgroups.container_id(ev["cgroup_id"], pid)
        if syscall != "process_exit" and syscall != "process_fork":
            self.loader_runs.on_exec(ev)
        if "stdio" in args:
            self.peers.on_exec(ev)
        return ev
