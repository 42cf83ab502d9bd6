"""Pattern examples: compact event sketches filled out to full events and run through an engine.

An example is one event, or a list of events fed in order (sequences, thresholds). Each
event is written with only what matters to the pattern; the rest is filled from
``BASE_EVENT``: ``process.comm``/``cmdline`` follow ``exe``/``argv`` (an exec sketch giving
only ``process.cmdline`` gets it split on spaces as ``args.argv``), an exec's
``process.exe`` follows ``args.exe_path`` (the file the kernel executed), else
``args.filename``, and its ``comm`` the invoked name, ``time`` is an offset in seconds from the
example's start (default: 0.1 s after the previous event), a ``container`` gets a
``container_id``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from patterns.engine.api import PatternError
from schemas.alerts import Alert

EXAMPLE_T0 = 1_700_000_000.0
EXAMPLE_CONTAINER_ID = "c0ffee" + "0" * 58
BASE_EVENT: dict[str, Any] = {
    "v": 1,
    "host": "example-host",
    "syscall": "execve",
    "ret": 0,
    "args": {},
    "process": {
        "pid": 4242,
        "tid": 4242,
        "ppid": 4000,
        "uid": 1000,
        "gid": 1000,
        "comm": "sh",
        "exe": "/usr/bin/dash",
        "cmdline": "sh",
        "ancestors": [{"pid": 4000, "exe": "/usr/bin/bash", "comm": "bash", "cmdline": "bash"}],
    },
    "cgroup_id": 0,
    "container_id": None,
    "container": None,
    "source": "syscall",
}
EXEC_SYSCALLS = ("execve", "execveat")


def fill_event(sketch: Mapping[str, Any], n: int, prev_time: float | None) -> dict[str, Any]:
    e = copy.deepcopy(BASE_EVENT)
    proc_in = dict(sketch.get("process") or {})
    args_in = dict(sketch.get("args") or {})
    for k, v in sketch.items():
        if k not in ("process", "args"):
            e[k] = copy.deepcopy(v)
    e["args"] = copy.deepcopy(args_in)
    p = e["process"]
    if e["syscall"] in EXEC_SYSCALLS and "exe" not in proc_in and isinstance(args_in.get("filename"), str):
        # the sensor's process.exe is the file the kernel executed (exe_path), comm the invoked name
        p["exe"] = args_in["exe_path"] if isinstance(args_in.get("exe_path"), str) else args_in["filename"]
        p["comm"] = args_in["filename"].rsplit("/", 1)[-1][:15]
        p["cmdline"] = args_in["filename"]
    if e["syscall"] in EXEC_SYSCALLS and "argv" not in args_in and isinstance(proc_in.get("cmdline"), str):
        # the sensor's command line is the exec's argv joined: a sketch may give either
        e["args"]["argv"] = args_in["argv"] = proc_in["cmdline"].split(" ")
    if e["syscall"] in EXEC_SYSCALLS and "cmdline" not in proc_in and isinstance(args_in.get("argv"), list):
        p["cmdline"] = " ".join(str(x) for x in args_in["argv"])
        if "exe" not in proc_in and not isinstance(args_in.get("filename"), str):
            p["comm"] = str(args_in["argv"][0]).rsplit("/", 1)[-1][:15]
    if "exe" in proc_in and isinstance(proc_in["exe"], str):
        p["comm"] = proc_in["exe"].rsplit("/", 1)[-1][:15]
        p["cmdline"] = proc_in["exe"]
    p.update(copy.deepcopy(proc_in))
    if "pid" in proc_in and "tid" not in proc_in:
        p["tid"] = proc_in["pid"]
    t = sketch.get("time")
    if isinstance(t, int | float) and t < 1e9:
        e["time"] = EXAMPLE_T0 + float(t)
    elif t is None:
        e["time"] = EXAMPLE_T0 if prev_time is None else prev_time + 0.1
    e["ts_ns"] = int((e["time"] - EXAMPLE_T0) * 1e9) + n
    cont = e.get("container")
    if isinstance(cont, dict):
        cont.setdefault("id", e.get("container_id") or EXAMPLE_CONTAINER_ID)
        e["container_id"] = e.get("container_id") or cont["id"]
    elif e.get("container_id"):
        e["container"] = {"id": e["container_id"]}
    if "id" not in sketch:
        e["id"] = f"{e['host']}:{e['ts_ns']}:{p['tid']}"
    return e


def fill_example(example: Any) -> list[dict[str, Any]]:
    sketches = example if isinstance(example, list) else [example]
    out: list[dict[str, Any]] = []
    prev: float | None = None
    for n, s in enumerate(sketches):
        if not isinstance(s, Mapping):
            raise ValueError("an example is an event (mapping) or a list of events")
        e = fill_event(s, n, prev)
        prev = e["time"]
        out.append(e)
    return out


def run_example(cp: Any, allow: Any, example: Any) -> list[Alert]:
    """Feed one example to a fresh engine holding only ``cp``; return its alerts (all due ones)."""
    from patterns.engine.core import PatternEngine

    eng = PatternEngine([cp], allow)
    events = fill_example(example)
    alerts = eng.process_batch(events)
    if cp.window:
        alerts.extend(eng.flush(events[-1]["time"] + cp.window + 1.0))
    return [a for a in alerts if a.rule.id == cp.id]


def check_examples(cp: Any, allow: Any, require: bool = False) -> list[PatternError]:
    """Every ``match`` example must raise an alert of this pattern; no ``no_match`` one may."""
    ex = cp.spec.examples
    f, pid = cp.info.file, cp.id
    if ex is None:
        return (
            [PatternError(f, pid, "examples", "missing (match and no_match are required)")] if require else []
        )
    errs: list[PatternError] = []
    for i, item in enumerate(ex.match):
        try:
            if not run_example(cp, allow, item):
                errs.append(PatternError(f, pid, f"examples.match[{i}]", "did not raise an alert"))
        except (ValueError, TypeError, KeyError) as exc:
            errs.append(PatternError(f, pid, f"examples.match[{i}]", f"bad example: {exc}"))
    for i, item in enumerate(ex.no_match):
        try:
            if run_example(cp, allow, item):
                errs.append(PatternError(f, pid, f"examples.no_match[{i}]", "raised an alert"))
        except (ValueError, TypeError, KeyError) as exc:
            errs.append(PatternError(f, pid, f"examples.no_match[{i}]", f"bad example: {exc}"))
    return errs
