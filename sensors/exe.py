"""Which executable a process runs: the kernel's answer, whichever way it was learned.

``process.exe`` must name the file the kernel executed, not the text an exec was given:
``cd /tmp && ./x``, ``//usr/./bin//dash``, a symlink named ``nginx`` and ``sh`` (→ dash)
all resolve to the one file. Two routes feed the process table, and both give the same
spelling:

* an exec event: ``args.exe_path`` (``mm->exe_file`` resolved by the sensor's dentry and
  mount walk); a memfd image is ``memfd:<name>``, as the kernel names it;
* a process that existed before the sensor (or was evicted): ``readlink /proc/PID/exe``,
  the same file. The kernel's own link text is normalised to the walk's spelling:
  ``/memfd:x (deleted)`` → ``memfd:x``; ``/tmp/x (deleted)`` → ``/tmp/x`` when the file
  really has no link left (the walk reports a deleted file by its last name, and
  ``exe_file.nlink`` tells it is gone).

A file that is itself the root of a mount no longer attached anywhere has no name the
kernel can give: runc 1.1 bind-mounts /proc/self/exe onto a temporary file, detaches it
and re-executes it, and both the walk and /proc/PID/exe read ``/``. ``/`` is never taken
for an executable's path: the exec's typed filename is used (``typed``), or none.

``process.exe_source`` says which: ``kernel`` (the exec's resolved path or memfd name),
``proc`` (/proc/PID/exe) or ``typed`` (the exec's filename as written: only when the
kernel walk could not finish, ``exe_path_truncated``, or gave nothing). Patterns that
grant exceptions by executable path should not trust a ``typed`` exe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KERNEL = "kernel"
PROC = "proc"
TYPED = "typed"
_DELETED = " (deleted)"


def exec_exe(args: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(exe, exe_source) of the image a successful exec event started."""
    name = args.get("exe_name")
    if args.get("exe_memfd") and name:
        return f"memfd:{name[6:]}", KERNEL  # the kernel's dentry name, "memfd:<name>"
    path = args.get("exe_path")
    if path and path != "/" and not args.get("exe_path_truncated"):
        return path, KERNEL
    typed = args.get("filename")
    return (typed, TYPED) if typed else (None, None)


def proc_exe(base: Path) -> str | None:
    """``readlink /proc/PID/exe`` in the exec walk's spelling (module docstring); None if unreadable."""
    try:
        link = os.readlink(base / "exe")
    except OSError:
        return None
    if link == "/":
        return None  # a file that is the root of a detached mount: the kernel has no name for it
    if link.startswith("/memfd:"):
        link = link[1:]
        return link[: -len(_DELETED)] if link.endswith(_DELETED) else link
    if link.endswith(_DELETED):
        try:
            gone = os.stat(base / "exe").st_nlink == 0
        except OSError:
            gone = False
        if gone:
            return link[: -len(_DELETED)]
    return link
