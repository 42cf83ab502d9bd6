"""What a process started without an ELF interpreter actually maps: ``args.loader``.

``ld.so PROGRAM``, ``ld.so --preload LIB PROGRAM``, ``--audit`` and a renamed copy of the
loader are exec'd as the loader itself: the kernel only runs ld.so, and ``exe_path`` is
the loader. The kernel tells the case apart by a fact, not a name: the new image has no
ELF interpreter (``args.exe_file.interp`` false: AT_BASE 0 in the auxiliary vector). The
loader then maps the program and its libraries itself, and each executable mapping of a
file is an mmap event whose ``path`` the kernel resolved. This module marks those mmaps:

    "loader": {"loader": "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
               "role": "program" | "library", "program": "/dev/shm/x", "index": 0,
               "trace": false}

``role`` is ``program`` for the first file mapped executable (rtld maps the program before
preloads, audit modules and DT_NEEDED libraries) and ``library`` after it. ``trace``: the
exec had LD_TRACE_LOADED_OBJECTS (``ldd``: ld.so maps and lists, runs nothing). A static
program (also no interpreter) maps no executable file at start-up; if it does, it is
loading code by itself, which the same facts show. A fork inherits the run (the child runs
the same image): a child that maps the program or a library after its parent forked gets
the same ``loader`` facts. Pure state, no I/O: bounded to
``MAX_PROCS`` processes (oldest dropped) and ``MAX_MAPS`` mappings each.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_PROCS = 4096
MAX_MAPS = 32


class _Run:
    __slots__ = ("loader", "program", "seen", "trace")

    def __init__(self, loader: str | None, trace: bool) -> None:
        self.loader = loader
        self.trace = trace
        self.program: str | None = None
        self.seen = 0


class LoaderRuns:
    """Processes exec'd without an interpreter, and the files they map executable."""

    def __init__(self) -> None:
        self._runs: OrderedDict[int, _Run] = OrderedDict()

    def on_exec(self, ev: dict[str, Any]) -> None:
        pid = ev["process"]["pid"]
        self._runs.pop(pid, None)  # a new image: whatever it was is over
        if ev["ret"] != 0:
            return
        args = ev["args"]
        f = args.get("exe_file")
        if not f or f.get("interp") is not False:
            return
        self._runs[pid] = _Run(args.get("exe_path") or args.get("filename"), bool(args.get("ld_trace")))
        if len(self._runs) > MAX_PROCS:
            self._runs.popitem(last=False)

    def on_fork(self, parent: int, child: int) -> None:
        """A child forked from a tracked process runs the same image: it inherits the run as
        it stands (a fork before the program was mapped leaves the program to the first
        executable mapping either of them makes; one after it makes the child's maps libraries)."""
        run = self._runs.get(parent)
        if run is None:
            return
        copy = _Run(run.loader, run.trace)
        copy.program, copy.seen = run.program, run.seen
        self._runs[child] = copy
        if len(self._runs) > MAX_PROCS:
            self._runs.popitem(last=False)

    def on_exit(self, pid: int) -> None:
        self._runs.pop(pid, None)

    def on_mmap(self, ev: dict[str, Any]) -> None:
        run = self._runs.get(ev["process"]["pid"])
        if run is None:
            return
        args = ev["args"]
        path = args.get("path")
        if not path or ev["ret"] < 0 or "PROT_EXEC" not in args.get("prot", ()):
            return
        if run.program is None:
            run.program = path
            role = "program"
        elif path == run.program:
            role = "program"
        else:
            role = "library"
        args["loader"] = {
            "loader": run.loader,
            "role": role,
            "program": run.program,
            "index": run.seen,
            "trace": run.trace,
        }
        run.seen += 1
        if run.seen >= MAX_MAPS:
            self._runs.pop(ev["process"]["pid"], None)
