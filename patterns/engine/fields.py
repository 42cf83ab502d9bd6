"""Field access: dotted paths into an event dict, compiled once into getters.

Generic on purpose (``args.path``, ``process.ancestors.exe``, ``ka.verb`` for Kubernetes
audit events later): a path walks dicts; meeting a list it maps over the elements and
flattens, so ``process.ancestors.exe`` is the list of every ancestor's executable.
A few short aliases name the fields patterns use most (see ``ALIASES``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Getter = Callable[[Mapping[str, Any]], Any]

#: Short names for common fields. ``path`` is the file a syscall names, resolved by the
#: kernel (open's ``path``, exec's ``exe_path``, else ``filename``; /proc/<own pid>/ reads
#: as /proc/self/), ``path.typed`` the text the caller wrote; ``exe`` etc. are the acting
#: process's.
ALIASES: dict[str, str] = {
    "exe": "process.exe",
    "comm": "process.comm",
    "cmdline": "process.cmdline",
    "uid": "process.uid",
    "gid": "process.gid",
    "pid": "process.pid",
    "ppid": "process.ppid",
    "ancestors": "process.ancestors",
    "flags": "args.flags",
    "argv": "args.argv",
    "container.image": "container.image",
    "container.name": "container.name",
    "container.labels": "container.labels",
}


def _basename(v: Any) -> Any:
    if isinstance(v, str):
        return v.rsplit("/", 1)[-1]
    if isinstance(v, list):
        return [_basename(x) for x in v]
    return v


EXECS = frozenset({"execve", "execveat"})
_PROC_PID = re.compile(r"/proc/(\d+)(?=/|$)")


def proc_self(p: str, e: Mapping[str, Any]) -> str:
    """A resolved /proc/<own pid or tid>/... back to /proc/self/...: the kernel resolves
    /proc/self to the caller's pid, and "own" versus "another process" is what patterns ask."""
    m = _PROC_PID.match(p)
    if m:
        proc = e.get("process") or {}
        n = int(m.group(1))
        if n == proc.get("pid") or n == proc.get("tid"):
            return "/proc/self" + p[m.end(1) :]
    return p


def _path_of(e: Mapping[str, Any]) -> Any:
    """The file the event names, resolved by the kernel where the sensor could: an exec's
    ``exe_path`` (the file actually executed), else ``path``, else the typed ``filename``."""
    a = e.get("args")
    if not a:
        return None
    p = a.get("exe_path") if e.get("syscall") in EXECS else None
    if p is None:
        p = a.get("path")
    if p is None:
        p = a.get("filename")
    if isinstance(p, str) and p.startswith("/proc/"):
        return proc_self(p, e)
    return p


def _path_typed(e: Mapping[str, Any]) -> Any:
    """The path as the caller wrote it (``path_typed``, an exec's ``filename``)."""
    a = e.get("args")
    if not a:
        return None
    p = a.get("path_typed")
    if p is None:
        p = a.get("filename")
    return p if p is not None else a.get("path")


def _path_name(e: Mapping[str, Any]) -> Any:
    """Basename of ``path``; for an exec, of the name it was invoked by (``filename``):
    multi-call binaries (busybox) and alternatives (awk -> mawk) dispatch on that name."""
    a = e.get("args")
    if a and e.get("syscall") in EXECS and a.get("filename"):
        return _basename(a.get("filename"))
    return _basename(_path_of(e))


def _container_id(e: Mapping[str, Any]) -> Any:
    cid = e.get("container_id")
    if cid:
        return cid
    c = e.get("container")
    return c.get("id") if isinstance(c, Mapping) else None


def _parent_exe(e: Mapping[str, Any]) -> Any:
    anc = (e.get("process") or {}).get("ancestors") or ()
    return anc[0].get("exe") if anc else None


def _parent_comm(e: Mapping[str, Any]) -> Any:
    anc = (e.get("process") or {}).get("ancestors") or ()
    return anc[0].get("comm") if anc else None


def _exe_name(e: Mapping[str, Any]) -> Any:
    p = e.get("process") or {}
    exe = p.get("exe")
    return exe.rsplit("/", 1)[-1] if exe else p.get("comm")


def _in_container(e: Mapping[str, Any]) -> Any:
    return bool(_container_id(e))


def _env(e: Mapping[str, Any]) -> Any:
    """``NAME=value`` facts of the exec environment the sensor reports (seed ``env`` indicators)."""
    a = e.get("args") or {}
    out = [f"{k.upper()}={a[k]}" for k in ("ld_preload", "ld_library_path") if a.get(k)]
    env = a.get("env")
    if isinstance(env, list):
        out.extend(x for x in env if isinstance(x, str))
    return out


def _behavior(e: Mapping[str, Any]) -> Any:
    """Named kernel facts of one event (seed ``behavior`` indicators)."""
    a = e.get("args") or {}
    out = []
    if a.get("exe_memfd"):
        out.append("memfd_exec")
    if a.get("exe_deleted"):
        out.append("deleted_exec")
    if a.get("wx"):
        out.append("wx_memory")
    if a.get("w_to_x"):
        out.append("w_to_x")
    if a.get("ld_preload"):
        out.append("ld_preload")
    sc = e.get("syscall")
    if sc in ("ptrace", "process_vm_writev"):
        out.append("process_injection")
    if sc == "memfd_create":
        out.append("memfd_create")
    return out


_FD_PATH = re.compile(r"^/(?:proc/(?:self|thread-self|\d+)|dev)/fd/(\d+)$")


def _exec_fd(e: Mapping[str, Any]) -> Any:
    """The file descriptor an exec runs, if it runs one: ``/proc/self/fd/N``,
    ``/proc/<pid>/fd/N``, ``/dev/fd/N``, or ``execveat(N, "", AT_EMPTY_PATH)`` (fexecve)."""
    a = e.get("args")
    if not a:
        return None
    fn = a.get("filename")
    if isinstance(fn, str) and fn:
        m = _FD_PATH.match(fn)
        return int(m.group(1)) if m else None
    flags = a.get("flags") or ()
    if e.get("syscall") == "execveat" and "AT_EMPTY_PATH" in flags:
        return a.get("dirfd")
    return None


#: Computed fields: cheap facts derived from the event that conditions can test directly.
VIRTUAL: dict[str, Getter] = {
    "path": _path_of,
    "env": _env,
    "exec.fd": _exec_fd,
    "behavior": _behavior,
    "path.name": _path_name,
    "path.typed": _path_typed,
    "container.id": _container_id,
    "container.present": _in_container,
    "exe.name": _exe_name,
    "parent.exe": _parent_exe,
    "parent.comm": _parent_comm,
    "parent.name": lambda e: _basename(_parent_exe(e)) or _parent_comm(e),
    "ancestors.exe": lambda e: [a.get("exe") for a in (e.get("process") or {}).get("ancestors") or ()],
    "ancestors.comm": lambda e: [a.get("comm") for a in (e.get("process") or {}).get("ancestors") or ()],
    "ancestors.name": lambda e: [
        _basename(a.get("exe")) or a.get("comm") for a in (e.get("process") or {}).get("ancestors") or ()
    ],
}


def inline_source(name: str, var: str, tmp: str, getter: str, execs: bool | None) -> list[str] | None:
    """Source lines (at depth 0, on the event ``e``) that set ``var`` as the computed field
    ``name`` does, for the common ones whose function call costs more than its steps
    (``exe.name``; ``path`` and ``path.typed`` when whether the event is an exec is known,
    ``execs``); None for the others. An unusual shape (args or process not a dict) calls
    ``getter`` (the name of the field's getter). ``tmp`` is a scratch local."""
    path = resolve(name)
    if path == "exe.name":
        return [
            f"{tmp} = e.get('process')",
            f"if {tmp}.__class__ is dict:",
            f"    {var} = {tmp}.get('exe')",
            f"    {var} = {var}.rsplit('/', 1)[-1] if {var} else {tmp}.get('comm')",
            "else:",
            f"    {var} = {getter}(e)",
        ]
    if path not in ("path", "path.typed") or execs is None:
        return None
    if path == "path":
        order = ["exe_path", "path", "filename"] if execs else ["path", "filename"]
    else:
        order = ["path_typed", "filename", "path"]
    out = [
        f"{tmp} = e.get('args')",
        f"if {tmp}.__class__ is dict and {tmp}:",
        f"    {var} = {tmp}.get({order[0]!r})",
    ]
    for k in order[1:]:
        out += [f"    if {var} is None:", f"        {var} = {tmp}.get({k!r})"]
    if path == "path":
        out += [
            f"    if isinstance({var}, str) and {var}.startswith('/proc/'):",
            f"        {var} = proc_self({var}, e)",
        ]
    out += [
        f"elif {tmp}.__class__ is dict or {tmp} is None:",
        f"    {var} = None",
        "else:",
        f"    {var} = {getter}(e)",
    ]
    return out


def resolve(path: str) -> str:
    return ALIASES.get(path, path)


def _walk(value: Any, parts: tuple[str, ...]) -> Any:
    for i, part in enumerate(parts):
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list):
            rest = parts[i:]
            out: list[Any] = []
            for item in value:
                v = _walk(item, rest)
                if isinstance(v, list):
                    out.extend(v)
                elif v is not None:
                    out.append(v)
            return out
        else:
            return None
    return value


def compile_getter(path: str) -> Getter:
    """A fast getter for a dotted path (aliases and virtual fields resolved)."""
    path = resolve(path)
    if path in VIRTUAL:
        return VIRTUAL[path]
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (k,) = parts
        return lambda e: e.get(k)
    if len(parts) == 2:
        k1, k2 = parts

        def get2(e: Mapping[str, Any]) -> Any:
            d = e.get(k1)
            if type(d) is dict:  # the common case, without the slower ABC isinstance check
                return d.get(k2)
            if isinstance(d, Mapping):
                return d.get(k2)
            return _walk(d, (k2,)) if isinstance(d, list) else None

        return get2
    return lambda e: _walk(e, parts)


def get(event: Mapping[str, Any], path: str) -> Any:
    return compile_getter(path)(event)
