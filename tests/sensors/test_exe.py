"""sensors.exe without a kernel: which image an exec started, and whether it was a #! script."""

from __future__ import annotations

import pytest

from sensors.exe import busybox_applet, exec_exe, script_run


@pytest.mark.parametrize(
    ("filename", "argv"),
    [
        ("/etc/svc/hook", ["/bin/sh", "/etc/svc/hook"]),  # #!/bin/sh
        ("./hook", ["/bin/sh", "-e", "./hook", "start"]),  # #!/bin/sh -e, with the caller's args
        ("/usr/sbin/x", ["/bin/bash", "-eu", "/usr/sbin/x"]),
        ("/usr/bin/x", ["/bin/sh", "-", "/usr/bin/x"]),  # #!/bin/sh - (setuid-script idiom)
        ("/opt/x", ["/usr/bin/python3", "-u", "/opt/x"]),
    ],
)
def test_a_script_run(filename: str, argv: list[str]) -> None:
    assert script_run(filename, argv)


@pytest.mark.parametrize(
    ("filename", "argv"),
    [
        ("/bin/sh", ["sh", "-c", "id"]),
        ("/bin/sh", ["sh", "script.sh"]),  # a shell given a script operand is a shell
        ("./k", ["./k"]),  # a symlink to dash
        ("./k", ["./k", "-s", "./k"]),  # -s: the shell reads stdin, the operand is only $1
        ("./k", ["./k", "-c", "./k"]),  # -c: the operand is a command
        ("./k", ["./k", "-ic", "./k"]),
        ("./k", ["./k", "-x", "cmd", "./k"]),  # the file must be the first operand
        ("./k", ["./k", "--rcfile=./k", "./k"]),
        ("", ["sh", ""]),
        ("/x", []),
    ],
)
def test_not_a_script_run(filename: str, argv: list[str]) -> None:
    assert not script_run(filename, argv)


def test_exec_exe_prefers_the_kernel_path() -> None:
    assert exec_exe({"filename": "./k", "exe_path": "/usr/bin/dash"}) == ("/usr/bin/dash", "kernel")
    assert exec_exe({"filename": "./k", "exe_path": "/usr/x", "exe_path_truncated": True}) == ("./k", "typed")
    assert exec_exe({"exe_memfd": True, "exe_name": "memfd:x", "filename": "/proc/self/fd/3"}) == (
        "memfd:x",
        "kernel",
    )


@pytest.mark.parametrize(
    ("argv", "applet"),
    [
        (["sh", "-c", "id"], "sh"),
        (["/tmp/a b/sh"], "sh"),
        (["-sh"], "sh"),  # a login shell
        (["busybox", "sh", "-c", "id"], "sh"),
        (["/bin/busybox", "/x/ash"], "ash"),
        (["busybox.static", "wget", "x"], "wget"),
        (["busybox", "--list"], None),
        (["busybox"], None),
        (["busybox", "--install", "-s"], None),
        ([], None),
    ],
)
def test_busybox_applet(argv: list[str], applet: str | None) -> None:
    assert busybox_applet(argv) == applet
