"""Adds what the kernel record lacks: process exe/cmdline/ancestors and the container id.

Pure apart from the /proc and cgroupfs reads its two caches do on a miss. The
per-process part (exe, cmdline, start time, ancestors) is built once per process and
shared by its events until that process execs or exits (a parent's later exec is not
reflected in the ancestors its existing children already carry).

With ``wire_lineage`` (the sensor, whose events go only to orjson), the ancestors
list is kept as its serialized JSON (``orjson.Fragment``): orjson copies those bytes
instead of walking up to five dicts per event. The JSON on the wire is the same.
"""

from __future__ import annotations

from typing import Any

import orjson

from sensors.cgroups import CgroupResolver
from sensors.proctable import ProcTable

_LIFECYCLE = frozenset(("process_fork", "execve", "execveat", "process_exit"))


class Context:
    def __init__(self, procs: ProcTable, cgroups: CgroupResolver, *, wire_lineage: bool = False) -> None:
        self.procs = procs
        self.cgroups = cgroups
        self.wire_lineage = wire_lineage
        self._proc_cache: dict[int, tuple[int, dict[str, Any]]] = {}

    def _process_part(self, pid: int, ppid: int) -> dict[str, Any]:
        hit = self._proc_cache.get(pid)
        if hit is not None and hit[0] == ppid:
            return hit[1]
        p = self.procs.get(pid)
        ancestors: Any = self.procs.ancestors(ppid)
        if self.wire_lineage:
            ancestors = orjson.Fragment(orjson.dumps(ancestors))
        part = {
            "exe": p.exe if p else None,
            "cmdline": p.cmdline if p else None,
            "start_time_ns": p.start_time_ns if p else None,
            "ancestors": ancestors,
        }
        if len(self._proc_cache) > 8192:
            self._proc_cache.clear()
        self._proc_cache[pid] = (ppid, part)
        return part

    def apply(self, ev: dict[str, Any]) -> dict[str, Any]:
        proc = ev["process"]
        pid = proc["pid"]
        if ev["syscall"] in _LIFECYCLE:
            return self._apply_lifecycle(ev)
        # the per-event hot path: a process already seen, an event that changes nothing
        hit = self._proc_cache.get(pid)
        ppid = proc["ppid"]
        proc.update(hit[1] if hit is not None and hit[0] == ppid else self._process_part(pid, ppid))
        ev["container_id"] = self.cgroups.container_id(ev["cgroup_id"], pid)
        return ev

    def _apply_lifecycle(self, ev: dict[str, Any]) -> dict[str, Any]:
        """fork, exec and exit: update the process table (and the kernel's cgroup name) first."""
        proc = ev["process"]
        pid = proc["pid"]
        syscall = ev["syscall"]
        args = ev["args"]
        if syscall != "process_fork":
            self._proc_cache.pop(pid, None)  # exe/cmdline change (exec) or it is gone (exit)
        if syscall == "process_fork":
            self.procs.on_fork(pid, args["child_pid"], proc["comm"], ev["ts_ns"])
        elif syscall != "process_exit" and ev["ret"] == 0:
            exe = (
                f"memfd:{args['exe_name'][6:]}"
                if args["exe_memfd"] and args["exe_name"]
                else args["filename"]
            )
            self.procs.on_exec(pid, proc["ppid"], proc["comm"], exe, " ".join(args["argv"]) or None)
        proc.update(self._process_part(pid, proc["ppid"]))
        if syscall == "process_exit":
            self.procs.on_exit(pid)
            self._proc_cache.pop(pid, None)
        if "cgroup_name" in ev:
            self.cgroups.learn(ev["cgroup_id"], ev["cgroup_name"])
        ev["container_id"] = self.cgroups.container_id(ev["cgroup_id"], pid)
        return ev
