"""Who is on the other end of a shell's stdio pipes: ``args.stdio.stdin_peer`` / ``stdout_peer``.

For a shell or interpreter exec'd with a pipe on stdin or stdout, the process holding the
other end of that pipe, and whether it talks to the network:
``{"pid": 812, "entity_id": "...", "exe": "/tmp/x1", "comm": "x1", "net": true}``.
``curl | sh``, ``wget -O- | python`` and a relay that holds a socket and pipes to a shell
are then recognisable without their command lines (a renamed curl is still a process
with a connection feeding a shell).

How: the pipe's inode number comes from the exec record (``args.stdio.<name>_ino`` when
the kernel reports it) or from /proc/<pid>/fd/N at decode time. Execs with a pipe on
stdin/stdout whose inode is known are remembered in a bounded map inode → holder; a miss
is filled by looking at the parent's fds and at fds 0-1 of the parent's other children
(bounded). ``net`` is true when the holder made an AF_INET/AF_INET6 connect (port 53 DNS
lookups aside) that the sensor saw. A peer that connects only after the shell started
completes the fact on its connect event instead: ``args.stdio_peer_of`` names the shell
whose stdin/stdout it feeds (patterns MT-NET-006/007).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sensors.exe import busybox_applet, busybox_argv
from sensors.proctable import ProcTable

#: programs whose stdio peers are looked up (a cost filter, not a verdict: patterns decide)
SHELLS_AND_INTERPRETERS = re.compile(
    r"^(sh|bash|dash|zsh|ksh|mksh|ash|csh|tcsh|fish|busybox|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|"
    r"php[0-9.]*|node|nodejs|lua[0-9.]*|awk|gawk|mawk|tclsh[0-9.]*|pwsh|deno|bun)$"
)
_SHELLS = re.compile(r"^(sh|bash|dash|zsh|ksh|mksh|ash|csh|tcsh|fish|busybox)$")
MAX_PIPES = 8192  # remembered pipe holders
MAX_PENDING = 1024  # shells waiting for a peer's first connect
PENDING_NS = 30_000_000_000  # how long a peer's later connect still counts
MAX_SIBLINGS = 64
MAX_PARENT_FDS = 256
MAX_DEPTH = 4  # levels a pipe passed down unchanged (subshells, sh -c 'exec sh') is followed up
_NAMES = ("stdin", "stdout")
_PIPE = re.compile(r"^pipe:\[(\d+)\]$")


def pipe_ino(link: str) -> int | None:
    m = _PIPE.match(link)
    return int(m.group(1)) if m else None


_SHELL_ARG_OPTS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_PY_ARG_OPTS = frozenset({"-W", "-X", "-Q"})
#: option that makes the interpreter run code given on the command line
_CODE_OPTS = {
    "python": {"-c", "-m"},
    "perl": {"-e", "-E"},
    "ruby": {"-e"},
    "node": {"-e", "-p", "--eval", "--print"},
}


def reads_program_from_stdin(exe_name: str, argv: list[str]) -> bool:
    """Whether a shell or interpreter exec'd with ``argv`` takes its program from stdin
    (``sh``, ``sh -s``, ``bash -i``, ``python3 -``, ``perl``) rather than from a script
    file or the command line (``sh -c ...``, ``bash -e script.sh``, ``python3 app.py``)."""
    if exe_name == "busybox":  # it runs the applet argv names: `busybox sh` reads stdin, `cat` no program
        applet, own = busybox_applet(argv), busybox_argv(argv)
        if applet is None or own is None or applet == "busybox" or not SHELLS_AND_INTERPRETERS.match(applet):
            return False
        exe_name, argv = applet, own
    kind = re.sub(r"[0-9.]+$", "", exe_name)
    code_opts = _CODE_OPTS.get("node" if kind == "nodejs" else kind, set())
    arg_opts = _PY_ARG_OPTS if kind == "python" else _SHELL_ARG_OPTS
    args = iter(argv[1:])
    for a in args:
        if a in ("-", "-s"):
            return True
        if a == "--":
            return next(args, None) in (None, "-")
        if a in code_opts or (
            kind not in _CODE_OPTS and a.startswith("-") and "c" in a[1:] and not a.startswith("--")
        ):
            return False  # -c / -e: code on the command line
        if a in arg_opts:
            next(args, None)
            continue
        if a.startswith(("-", "+")):
            continue
        return False  # the first operand is the script file
    return True


class StdioPeers:
    def __init__(self, procs: ProcTable, proc: Path = Path("/proc")) -> None:
        self.procs = procs
        self.proc = proc
        self._root = str(proc)
        self._pipes: OrderedDict[int, list[tuple[int, str | None, str]]] = OrderedDict()
        self._net: OrderedDict[str, bool] = OrderedDict()
        #: peer entity -> the shells (and which of their stdio) it feeds, until its first connect
        self._pending: OrderedDict[str, list[tuple[dict[str, Any], str]]] = OrderedDict()
        #: (pipe inode, stdio name) of a shell whose peer on that pipe was not found yet
        self._orphans: OrderedDict[tuple[int, str], dict[str, Any]] = OrderedDict()

    # -- /proc helpers ---------------------------------------------------------------------
    def _fd_ino(self, pid: int, fd: int) -> int | None:
        try:
            return pipe_ino(os.readlink(f"{self._root}/{pid}/fd/{fd}"))
        except OSError:
            return None

    def _children(self, pid: int) -> list[int]:
        out: list[int] = []
        try:
            tasks = os.listdir(self.proc / str(pid) / "task")
        except OSError:
            return out
        for tid in tasks[:16]:
            try:
                out.extend(
                    int(x) for x in (self.proc / str(pid) / "task" / tid / "children").read_text().split()
                )
            except (OSError, ValueError):
                continue
            if len(out) >= MAX_SIBLINGS:
                break
        return out[:MAX_SIBLINGS]

    def _fds(self, pid: int) -> list[int]:
        try:
            names = os.listdir(self.proc / str(pid) / "fd")[:MAX_PARENT_FDS]
        except OSError:
            return []
        return [int(n) for n in names if n.isdigit()]

    # -- facts -----------------------------------------------------------------------------
    def _peer(self, pid: int, ppid: int, ino: int, name: str) -> int | None:
        """The pid holding the other end of pipe ``ino`` (``name`` of process ``pid``).

        Remembered exec'd holders first; then the parent's other children (their fd 1 for
        a stdin pipe, fd 0 for a stdout pipe); then the parent: holding the pipe on the
        same stdio fd, it only passed it down (``sh -c 'exec sh'``, a subshell), so the
        search moves up one level (bounded); holding it elsewhere, it is the other end
        (a relay that created the pipe)."""
        want = "stdout" if name == "stdin" else "stdin"
        own_fd, other_fd = (0, 1) if name == "stdin" else (1, 0)
        for _ in range(MAX_DEPTH):
            for hpid, _eid, hname in self._pipes.get(ino, ()):
                if hpid != pid and hname == want:
                    return hpid
            for sib in self._children(ppid):
                if sib != pid and self._fd_ino(sib, other_fd) == ino:
                    return sib
            if ppid <= 1:
                return None
            fds = [fd for fd in self._fds(ppid) if self._fd_ino(ppid, fd) == ino]
            if not fds:
                return None
            parent = self.procs.get(ppid)
            if own_fd not in fds:
                # a shell holding a pipe it has not handed out yet is building a pipeline:
                # the real peer is the command it forks next (bound when that one execs)
                exe = (parent.exe or "") if parent else ""
                if _SHELLS.match(exe[exe.rfind("/") + 1 :]):
                    return None
                return ppid
            if parent is None:
                return None
            pid, ppid = ppid, parent.ppid
        return None

    def _describe(self, pid: int) -> dict[str, Any]:
        p = self.procs.get(pid)
        eid = self.procs.entity(p) if p else None
        return {
            "pid": pid,
            "entity_id": eid,
            "exe": p.exe if p else None,
            "comm": p.comm if p else None,
            "net": bool(eid and eid in self._net),
        }

    def _remember(self, ino: int, pid: int, eid: str | None, name: str) -> None:
        lst = self._pipes.get(ino)
        if lst is None:
            lst = self._pipes[ino] = []
            if len(self._pipes) > MAX_PIPES:
                self._pipes.popitem(last=False)
        if len(lst) < 8:
            lst.append((pid, eid, name))

    def on_exec(self, ev: dict[str, Any]) -> None:
        """A successful exec: remember its stdio pipes; for a shell or interpreter, name the
        process on the other end of each; a process taking the other end of a pipe whose
        shell found no peer yet (it exec'd later, or its exec was read later) becomes that
        shell's peer from here on."""
        stdio = ev["args"].get("stdio")
        if not stdio or (stdio.get("stdin") != "pipe" and stdio.get("stdout") != "pipe"):
            return
        proc = ev["process"]
        if stdio.get("network") and proc.get("entity_id"):
            self._mark_net(proc["entity_id"])  # holds an internet socket on its stdio
        exe = proc.get("exe") or ""
        shell = SHELLS_AND_INTERPRETERS.match(exe[exe.rfind("/") + 1 :]) is not None
        if not shell and not self._orphans and "stdin_ino" not in stdio and "stdout_ino" not in stdio:
            return  # nothing to learn without a /proc read nobody needs
        pid, eid = proc["pid"], proc.get("entity_id")
        rec: dict[str, Any] | None = None
        for fd, name in enumerate(_NAMES):
            if stdio.get(name) != "pipe":
                continue
            ino = stdio.get(f"{name}_ino")
            if not isinstance(ino, int) or not ino:
                # no kernel inode: /proc, while the process lives; for other programs only
                # while a shell waits for its peer (a readlink costs ~10 µs)
                if not shell and not self._orphans:
                    continue
                ino = self._fd_ino(pid, fd)
                if ino is None:
                    continue
            self._remember(ino, pid, eid, name)
            other = "stdout" if name == "stdin" else "stdin"
            orphan = self._orphans.pop((ino, other), None)
            if orphan is not None and eid and orphan["pid"] != pid:
                orphan["peers"][other] = eid
                self._wait(eid, orphan, other)
            if not shell:
                continue
            if rec is None:
                rec = {
                    "pid": pid,
                    "entity_id": eid,
                    "exe": proc.get("exe"),
                    "comm": proc.get("comm"),
                    "ts_ns": ev.get("ts_ns") or 0,
                    "peers": {},
                    "reads_program_from_stdin": False,
                }
            if name == "stdin":
                rec["reads_program_from_stdin"] = stdio["reads_program_from_stdin"] = (
                    reads_program_from_stdin(exe.rsplit("/", 1)[-1], ev["args"].get("argv") or [])
                )
            peer_pid = self._peer(pid, proc["ppid"], ino, name)
            if peer_pid is None:
                self._orphans[(ino, name)] = rec
                while len(self._orphans) > MAX_PENDING:
                    self._orphans.popitem(last=False)
                continue
            peer = self._describe(peer_pid)
            stdio[f"{name}_peer"] = peer
            rec["peers"][name] = peer["entity_id"]
            if not peer["net"] and peer["entity_id"]:
                self._wait(peer["entity_id"], rec, name)

    def _mark_net(self, eid: str) -> None:
        self._net[eid] = True
        self._net.move_to_end(eid)
        if len(self._net) > MAX_PIPES:
            self._net.popitem(last=False)

    def _wait(self, peer_eid: str, rec: dict[str, Any], side: str) -> None:
        """``peer_eid`` feeds ``rec``'s ``side``: its first connect will say so."""
        self._pending.setdefault(peer_eid, []).append((rec, side))
        self._pending.move_to_end(peer_eid)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def on_connect(self, ev: dict[str, Any]) -> None:
        """An outbound internet connect: its process is now ``net``; the shell it already
        feeds through a pipe is named on this event as ``args.stdio_peer_of``."""
        a = ev["args"]
        if a.get("family") not in ("AF_INET", "AF_INET6") or a.get("port") == 53:
            return
        if ev.get("ret") not in (0, -115):
            return
        eid = ev["process"].get("entity_id")
        if not eid:
            return
        self._mark_net(eid)
        waiting = self._pending.pop(eid, None)
        if not waiting:
            return
        now = ev.get("ts_ns") or 0
        out = []
        for rec, side in waiting:
            if now - rec["ts_ns"] > PENDING_NS:
                continue
            peers = rec["peers"]
            out.append(
                {
                    "pid": rec["pid"],
                    "entity_id": rec["entity_id"],
                    "exe": rec["exe"],
                    "comm": rec["comm"],
                    "stdio": side,
                    "reads_program_from_stdin": rec["reads_program_from_stdin"],
                    "stdin_and_stdout_net": all(peers.get(n) in self._net for n in _NAMES),
                }
            )
        if out:  # the shell that reads its program from this peer first
            out.sort(key=lambda r: (not r["reads_program_from_stdin"], r["stdio"] != "stdin"))
            a["stdio_peer_of"] = out[0]
