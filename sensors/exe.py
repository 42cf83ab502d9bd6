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


#: Letters an interpreter option may carry for the exec to still count as a ``#!`` script run:
#: ``c`` (command string), ``i`` (interactive) and ``s`` (read stdin) would make the
#: interpreter run something other than the file, so a hand-made argv with them is no script.
_SCRIPT_OPT_DENY = frozenset("cis")


def script_run(filename: str, argv: list[str]) -> bool:
    """True when the kernel ran ``filename`` as a ``#!`` script, so ``exe_path`` is its interpreter.

    binfmt_script rewrites the new image's argv to ``[interpreter, (one option), filename,
    argv[1:]...]``; the sensor reads argv from that image. A shell reached through a symlink
    (``/tmp/x -> /bin/sh``) has its caller's argv, which names the file as the interpreter's
    operand only if the caller asks the shell to read its own binary as a script. ``-c``,
    ``-i`` and ``-s`` are refused as the option, since with them the file is not what runs."""
    if not filename or len(argv) < 2:
        return False
    if argv[1] == filename:
        return True
    if len(argv) < 3 or argv[2] != filename:
        return False
    opt = argv[1]
    if opt in ("-", "--"):
        return True
    return opt.startswith("-") and opt[1:].isalpha() and not _SCRIPT_OPT_DENY & set(opt[1:].lstrip("-"))


def busybox_argv(argv: list[str]) -> list[str] | None:
    """The argv the busybox applet sees, as busybox decides it from the kernel's copy: argv
    itself, or argv[1:] when argv[0] names busybox (``busybox sh -c id``); None for busybox's
    own options (``--list``, ``--install``) or no applet at all."""
    if not argv:
        return None
    if argv[0].rsplit("/", 1)[-1].removeprefix("-").startswith("busybox"):
        argv = argv[1:]
        if not argv or argv[0].startswith("--"):
            return None
    return argv


def busybox_applet(argv: list[str]) -> str | None:
    """The applet busybox runs for this argv: the base name of the applet's argv[0] (a login
    shell's leading ``-`` dropped). ``execve("/bin/busybox", ["sh", ...])`` runs a shell
    whatever the comm."""
    own = busybox_argv(argv)
    return (own[0].rsplit("/", 1)[-1].removeprefix("-") or None) if own else None


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
